import Foundation
import QForgeHardware

/// The simulators QForge drives.
public enum Simulator: String, CaseIterable, Sendable {
    case verilator
    case icarus
}

/// How to run a design's testbench.
public struct SimulationOptions: Sendable {
    /// Samples to check (nil: all the vectors).
    public var samples: Int?
    public var seed: Int
    /// Chance in percent that the input valid or the output ready drops in a cycle.
    public var stallPercent: Int
    /// Verilator: compile the model's C++ with -O1 instead of the default (faster builds of
    /// small designs, slower simulation of large ones).
    public var quickBuild: Bool
    public var environment: [String: String]
    /// Verilator: where the compiled Verilator runtime (verilated*.o, the same for every
    /// design) is kept between builds; nil: `$XDG_CACHE_HOME/qforge` or `~/.cache/qforge`.
    public var cacheDirectory: String?

    public init(samples: Int? = nil, seed: Int = 1, stallPercent: Int = 30, quickBuild: Bool = false,
                environment: [String: String] = ProcessInfo.processInfo.environment, cacheDirectory: String? = nil) {
        self.samples = samples; self.seed = seed; self.stallPercent = stallPercent; self.quickBuild = quickBuild
        self.environment = environment; self.cacheDirectory = cacheDirectory
    }

    /// The cache directory in use.
    var cache: String {
        if let cacheDirectory { return cacheDirectory }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return (xdg as NSString).appendingPathComponent("qforge") }
        return ((environment["HOME"] ?? NSTemporaryDirectory()) as NSString).appendingPathComponent(".cache/qforge")
    }
}

/// The commands that build and run a design's testbench: data, kept apart from running it.
public struct SimulationPlan: Sendable {
    public var simulator: Simulator
    public var build: [Command]
    public var run: Command
    /// Verilator: the object directory and the runtime cache (objects copied in after the
    /// first command and saved after the last).
    public var objectDirectory: String?
    public var runtimeCache: String?

    /// The plan for the design in `directory` (its manifest lists the files).
    public init(directory: String, manifest: HardwareManifest, simulator: Simulator, options: SimulationOptions) throws {
        try self.init(directory: directory, sources: manifest.rtl + [manifest.testbenchFile], testbench: manifest.testbench,
                      simulator: simulator, options: options)
    }

    /// The plan for the testbench module `testbench` in `sources` (relative to `directory`).
    public init(directory: String, sources: [String], testbench: String, simulator: Simulator, options: SimulationOptions) throws {
        self.simulator = simulator
        var plusargs = ["+seed=\(options.seed)", "+stall=\(options.stallPercent)"]
        if let n = options.samples { plusargs.append("+samples=\(n)") }
        switch simulator {
        case .verilator:
            let verilator = try Tool.verilator.locate(environment: options.environment)
            let make = try Tool.make.locate(environment: options.environment)
            let obj = "sim-verilator"
            let binary = "\(testbench)_sim"
            // Verilate, then make: between the two the runtime objects come from the cache.
            build = [
                Command(executable: verilator,
                        arguments: ["--cc", "--exe", "--main", "--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                                    "--Mdir", obj, "-o", binary, "--top-module", testbench] + sources,
                        directory: directory),
                Command(executable: make, arguments: ["-C", obj, "-f", "V\(testbench).mk", "-j", "2"]
                            + (options.quickBuild ? ["OPT_FAST=-O1"] : []),
                        directory: directory),
            ]
            run = Command(executable: (directory as NSString).appendingPathComponent("\(obj)/\(binary)"), arguments: plusargs, directory: directory)
            objectDirectory = (directory as NSString).appendingPathComponent(obj)
            let version = (try? QForgeEDA.run(Command(executable: verilator, arguments: ["--version"], directory: directory)))?.stdout ?? "unknown"
            let key = version.unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) }.map(String.init).joined().prefix(40)
            runtimeCache = (options.cache as NSString).appendingPathComponent("verilator-runtime-\(key)")
        case .icarus:
            let iverilog = try Tool.iverilog.locate(environment: options.environment)
            let vvp = try Tool.vvp.locate(environment: options.environment)
            let image = "sim-icarus/\(testbench).vvp"
            try FileManager.default.createDirectory(atPath: (directory as NSString).appendingPathComponent("sim-icarus"),
                                                    withIntermediateDirectories: true)
            build = [Command(executable: iverilog, arguments: ["-g2005", "-Wall", "-o", image, "-s", testbench] + sources,
                             directory: directory)]
            run = Command(executable: vvp, arguments: ["-n", image] + plusargs, directory: directory)
        }
    }
}

/// What a testbench run reported.
public struct SimulationReport: Equatable, Sendable {
    public var passed: Int
    public var failed: Int
    /// Steady-state cycles between inferences measured without stalls.
    public var cyclesPerInference: Int
    public var latency: Int
    public var expectedCyclesPerInference: Int
    public var expectedLatency: Int
    /// Clock cycles simulated in all.
    public var cycles: Int
    /// The `FAIL` lines.
    public var failures: [String]

    /// Parses a testbench's standard output; nil when it did not reach its summary line.
    public static func parse(_ log: String) -> SimulationReport? {
        var passed: Int?, failed: Int?
        var values: [String: Int] = [:]
        var failures: [String] = []
        for raw in log.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("FAIL") || line.hasPrefix("...") { failures.append(line) }
            if line.hasPrefix("QFORGE ") {
                for field in line.dropFirst(7).split(separator: " ") {
                    let kv = field.split(separator: "=")
                    if kv.count == 2, let v = Int(kv[1]) { values[String(kv[0])] = v }
                }
            }
            let words = line.split(separator: " ")
            if words.count == 4, words[1] == "passed,", words[3] == "failed", let p = Int(words[0]), let f = Int(words[2]) {
                passed = p
                failed = f
            }
        }
        guard let passed, let failed else { return nil }
        return SimulationReport(passed: passed, failed: failed, cyclesPerInference: values["interval"] ?? 0, latency: values["latency"] ?? 0,
                                expectedCyclesPerInference: values["expected_interval"] ?? 0, expectedLatency: values["expected_latency"] ?? 0,
                                cycles: values["cycles"] ?? 0, failures: failures)
    }
}

/// A finished simulation: the report and how long building and running took.
public struct SimulationResult: Sendable {
    public var report: SimulationReport
    public var buildSeconds: Double
    public var runSeconds: Double
    public var log: String

    /// Simulated clock cycles per second of wall time.
    public var cyclesPerSecond: Double { runSeconds > 0 ? Double(report.cycles) / runSeconds : 0 }
}

/// Builds and runs the testbench of the design in `directory`.
public func simulate(directory: String, simulator: Simulator, options: SimulationOptions = SimulationOptions()) throws -> SimulationResult {
    let manifest = try HardwareManifest.load(directory)
    return try simulate(try SimulationPlan(directory: directory, manifest: manifest, simulator: simulator, options: options))
}

/// Builds and runs the testbench `plan` describes.
public func simulate(_ plan: SimulationPlan) throws -> SimulationResult {
    var buildSeconds = 0.0
    for (i, c) in plan.build.enumerated() {
        if i == 1, let obj = plan.objectDirectory, let cache = plan.runtimeCache { restoreRuntime(from: cache, into: obj) }
        buildSeconds += try run(c).seconds
    }
    if let obj = plan.objectDirectory, let cache = plan.runtimeCache { saveRuntime(from: obj, into: cache) }
    let output = try run(plan.run, allowFailure: true)
    let log = output.stdout + output.stderr
    guard let report = SimulationReport.parse(output.stdout) else {
        throw EDAError.failed(command: plan.run.description, status: output.status, stderr: "the testbench ended without its summary line:\n" + log)
    }
    return SimulationResult(report: report, buildSeconds: buildSeconds, runSeconds: output.seconds, log: log)
}

/// The Verilator runtime objects every build compiles alike.
private func runtimeObjects(in directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        .filter { $0.hasPrefix("verilated") && ($0.hasSuffix(".o") || $0.hasSuffix(".d")) }
}

/// Copies cached runtime objects into a fresh object directory (newer than its makefiles, so
/// make keeps them). A missing or partial cache only costs the compile.
private func restoreRuntime(from cache: String, into obj: String) {
    for name in runtimeObjects(in: cache) {
        let target = (obj as NSString).appendingPathComponent(name)
        try? FileManager.default.removeItem(atPath: target)
        try? FileManager.default.copyItem(atPath: (cache as NSString).appendingPathComponent(name), toPath: target)
        try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: target)
    }
}

/// Saves the runtime objects of a finished build when the cache has none yet.
private func saveRuntime(from obj: String, into cache: String) {
    guard runtimeObjects(in: cache).isEmpty else { return }
    let names = runtimeObjects(in: obj)
    guard names.contains(where: { $0.hasSuffix(".o") }) else { return }
    let staging = cache + ".tmp-\(UUID().uuidString)"
    do {
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        for name in names {
            try FileManager.default.copyItem(atPath: (obj as NSString).appendingPathComponent(name), toPath: (staging as NSString).appendingPathComponent(name))
        }
        try? FileManager.default.removeItem(atPath: cache)
        try FileManager.default.moveItem(atPath: staging, toPath: cache)
    } catch {
        try? FileManager.default.removeItem(atPath: staging)
    }
}

/// One warning or error of a lint run.
public struct Diagnostic: Equatable, Sendable, CustomStringConvertible {
    public var severity: String
    public var code: String
    public var file: String
    public var line: Int
    public var message: String

    public init(severity: String, code: String, file: String, line: Int, message: String) {
        self.severity = severity; self.code = code; self.file = file; self.line = line; self.message = message
    }

    public var description: String { "\(file):\(line): \(severity)-\(code): \(message)" }

    /// Parses Verilator's `%Warning-CODE: file:line:col: message` (and `%Error…`) lines.
    public static func parseVerilator(_ log: String) -> [Diagnostic] {
        log.split(separator: "\n").compactMap { raw in
            let line = String(raw)
            guard line.hasPrefix("%Warning") || line.hasPrefix("%Error") else { return nil }
            let head = line.split(separator: ":", maxSplits: 1)
            guard head.count == 2 else { return nil }
            let kind = head[0].dropFirst()  // Warning-WIDTH
            let parts = kind.split(separator: "-", maxSplits: 1)
            let rest = head[1].trimmingCharacters(in: .whitespaces)
            let fields = rest.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            if fields.count >= 3, let n = Int(fields[1]) {
                let message = fields.count == 4 ? fields[3] : fields[2]
                return Diagnostic(severity: String(parts[0]), code: parts.count > 1 ? String(parts[1]) : "", file: fields[0], line: n, message: message)
            }
            return Diagnostic(severity: String(parts[0]), code: parts.count > 1 ? String(parts[1]) : "", file: "", line: 0, message: rest)
        }
    }
}

/// `verilator --lint-only -Wall` on the design's RTL; the diagnostics it printed (empty: clean).
public func lint(directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [Diagnostic] {
    let manifest = try HardwareManifest.load(directory)
    let verilator = try Tool.verilator.locate(environment: environment)
    let command = Command(executable: verilator, arguments: ["--lint-only", "-Wall", "--top-module", manifest.top] + manifest.rtl,
                          directory: directory)
    let output = try run(command, allowFailure: true)
    let diagnostics = Diagnostic.parseVerilator(output.stderr + output.stdout)
    if output.status != 0 && diagnostics.isEmpty {
        throw EDAError.failed(command: command.description, status: output.status, stderr: output.stderr)
    }
    return diagnostics
}
