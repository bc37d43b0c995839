import Foundation
import XCTest

/// The `qforge` binary SwiftPM built next to the test bundle (`.build/<config>/qforge`):
/// a test target that runs it depends on the executable target, so it is built first.
/// `QFORGE_BINARY` overrides the search.
public func qforgeBinary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["QFORGE_BINARY"], !path.isEmpty { return path }
    var directories: [String] = []
    let bundle = Bundle.main.bundlePath
    directories.append(bundle)  // on Linux the main bundle of the test runner is its directory
    directories.append((bundle as NSString).deletingLastPathComponent)
    if let argument0 = CommandLine.arguments.first {
        let url = URL(fileURLWithPath: argument0).standardizedFileURL
        directories.append(url.deletingLastPathComponent().path)  // .build/debug/QForgePackageTests.xctest
        directories.append(url.deletingLastPathComponent().deletingLastPathComponent().path)
    }
    for dir in directories {
        let candidate = (dir as NSString).appendingPathComponent("qforge")
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
           FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
    }
    throw missingResource("qforge binary not found next to the test bundle (looked in \(directories)); build it with swift build")
}

/// What a run of `qforge` did.
public struct CLIResult: CustomStringConvertible {
    public var arguments: [String]
    public var status: Int32
    public var reason: Process.TerminationReason
    public var stdout: String
    public var stderr: String

    public var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
    public var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

    /// The last line of standard output parsed as a JSON object.
    public func jsonObject(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let last = try XCTUnwrap(stdoutLines.last, "no standard output: \(self)", file: file, line: line)
        let object = try JSONSerialization.jsonObject(with: Data(last.utf8))
        return try XCTUnwrap(object as? [String: Any], "last stdout line is not a JSON object: \(last)", file: file, line: line)
    }

    public var description: String {
        "qforge \(arguments.joined(separator: " ")) → \(reason == .exit ? "exit" : "signal") \(status)\n"
            + "--- stdout:\n\(stdout)--- stderr:\n\(stderr)---"
    }
}

/// Runs `qforge` with `arguments` in `directory` (standard input: /dev/null) and waits for it,
/// at most `timeout` seconds.
public func runQForge(_ arguments: [String], in directory: TemporaryDirectory, timeout: TimeInterval = 300,
               environment: [String: String] = [:]) throws -> CLIResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try qforgeBinary())
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory.path)
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    // Output goes to files (outside the working directory's listing): no pipe can fill up.
    let id = UUID().uuidString
    let outPath = (NSTemporaryDirectory() as NSString).appendingPathComponent("qforge-cli-\(id).stdout")
    let errPath = (NSTemporaryDirectory() as NSString).appendingPathComponent("qforge-cli-\(id).stderr")
    guard FileManager.default.createFile(atPath: outPath, contents: nil),
          FileManager.default.createFile(atPath: errPath, contents: nil) else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: outPath])
    }
    defer {
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
    }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning {
        process.terminate()
        process.waitUntilExit()
        XCTFail("qforge \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s")
    }
    process.waitUntilExit()
    try out.close()
    try err.close()
    let stdout = String(decoding: try Data(contentsOf: URL(fileURLWithPath: outPath)), as: UTF8.self)
    let stderr = String(decoding: try Data(contentsOf: URL(fileURLWithPath: errPath)), as: UTF8.self)
    return CLIResult(arguments: arguments, status: process.terminationStatus, reason: process.terminationReason,
                     stdout: stdout, stderr: stderr)
}

