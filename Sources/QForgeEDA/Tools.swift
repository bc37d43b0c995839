import Foundation

/// Why an external tool could not do its job, in one line.
public enum EDAError: Error, CustomStringConvertible, Equatable {
    /// The tool is neither named by its environment variable nor on PATH.
    case toolMissing(tool: String, variable: String, package: String)
    /// The environment variable names something that is not an executable file.
    case badToolPath(variable: String, path: String)
    /// A run exited with a failure status.
    case failed(command: String, status: Int32, stderr: String)
    case invalid(String)

    public var description: String {
        switch self {
        case let .toolMissing(tool, variable, package):
            return "\(tool) not found: install the Debian package '\(package)' (sudo apt-get install -y \(package)), or set \(variable) to its path"
        case let .badToolPath(variable, path):
            return "\(variable)=\(path) is not an executable file"
        case let .failed(command, status, stderr):
            let tail = stderr.split(separator: "\n", omittingEmptySubsequences: true).suffix(20).joined(separator: "\n")
            return "\(command) failed with status \(status)" + (tail.isEmpty ? "" : ":\n\(tail)")
        case let .invalid(message): return message
        }
    }
}

/// An external program QForge runs: found through an environment variable, then on PATH.
public struct Tool: Equatable, Sendable {
    public var name: String
    public var variable: String
    public var package: String

    public init(name: String, variable: String, package: String) {
        self.name = name
        self.variable = variable
        self.package = package
    }

    public static let verilator = Tool(name: "verilator", variable: "QFORGE_VERILATOR", package: "verilator")
    public static let iverilog = Tool(name: "iverilog", variable: "QFORGE_IVERILOG", package: "iverilog")
    public static let vvp = Tool(name: "vvp", variable: "QFORGE_VVP", package: "iverilog")
    public static let yosys = Tool(name: "yosys", variable: "QFORGE_YOSYS", package: "yosys")
    public static let make = Tool(name: "make", variable: "QFORGE_MAKE", package: "make")

    /// The executable: `$variable` if set (it must be executable), else the first `name` on PATH.
    public func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let fm = FileManager.default
        if let path = environment[variable], !path.isEmpty {
            guard fm.isExecutableFile(atPath: path) else { throw EDAError.badToolPath(variable: variable, path: path) }
            return path
        }
        for dir in (environment["PATH"] ?? "").split(separator: ":") {
            let candidate = (String(dir) as NSString).appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue, fm.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        throw EDAError.toolMissing(tool: name, variable: variable, package: package)
    }

    /// Whether `locate` would succeed.
    public func isAvailable(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        (try? locate(environment: environment)) != nil
    }
}

/// One command of a build: a program, its arguments and the directory it runs in.
public struct Command: Equatable, Sendable, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    public var directory: String

    public var description: String { ([executable] + arguments).map(quoted).joined(separator: " ") }
}

/// What a finished command printed.
public struct CommandOutput: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var seconds: Double
}

private func quoted(_ s: String) -> String {
    s.isEmpty || s.contains(where: { " \"'$\\".contains($0) }) ? "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" : s
}

/// Runs `command` to completion, its output in temporary files (no pipe can fill up).
/// Throws `EDAError.failed` on a non-zero status unless `allowFailure`.
@discardableResult
public func run(_ command: Command, allowFailure: Bool = false) throws -> CommandOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: command.executable)
    process.arguments = command.arguments
    process.currentDirectoryURL = URL(fileURLWithPath: command.directory)
    let id = UUID().uuidString
    let outPath = (NSTemporaryDirectory() as NSString).appendingPathComponent("qforge-eda-\(id).out")
    let errPath = (NSTemporaryDirectory() as NSString).appendingPathComponent("qforge-eda-\(id).err")
    FileManager.default.createFile(atPath: outPath, contents: nil)
    FileManager.default.createFile(atPath: errPath, contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
    }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = err
    let start = Date()
    try process.run()
    process.waitUntilExit()
    try? out.close()
    try? err.close()
    let result = CommandOutput(
        status: process.terminationStatus,
        stdout: String(decoding: FileManager.default.contents(atPath: outPath) ?? Data(), as: UTF8.self),
        stderr: String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self),
        seconds: Date().timeIntervalSince(start))
    if result.status != 0 && !allowFailure {
        throw EDAError.failed(command: command.description, status: result.status, stderr: result.stderr + result.stdout)
    }
    return result
}
