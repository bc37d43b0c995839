import Foundation

/// Runs `python3 -c script args…` and returns its standard output; throws if it cannot start
/// or exits non-zero (the error carries its standard error).
public func runPython(_ script: String, arguments: [String] = []) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw NSError(domain: "python3", code: Int(process.terminationStatus),
                      userInfo: [NSLocalizedDescriptionKey: String(decoding: stderr, as: UTF8.self)])
    }
    return String(decoding: stdout, as: UTF8.self)
}

/// Whether `python3` runs `imports` (e.g. "import numpy, onnxruntime") without error.
public func pythonCanRun(_ imports: String) -> Bool { (try? runPython(imports)) != nil }
