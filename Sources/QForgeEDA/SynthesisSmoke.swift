import Foundation
import QForgeHardware

/// What a generic Yosys synthesis of a design's RTL reported.
public struct SynthesisSummary: Equatable, Sendable {
    /// Cells of the flattened top after `synth` (generic gates, flip-flops, memories).
    public var cells: Int
    /// Yosys's `Warning:` lines.
    public var warnings: [String]

    public init(cells: Int, warnings: [String]) {
        self.cells = cells
        self.warnings = warnings
    }

    /// The last `Number of cells:` of a Yosys log (the flattened top's `stat`), and its warnings;
    /// nil when the log has no cell count.
    public static func parse(_ log: String) -> SynthesisSummary? {
        var cells: Int?
        var warnings: [String] = []
        for raw in log.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("Number of cells:"), let n = Int(line.dropFirst("Number of cells:".count).trimmingCharacters(in: .whitespaces)) {
                cells = n
            } else if line.hasPrefix("Warning:") {
                warnings.append(line)
            }
        }
        return cells.map { SynthesisSummary(cells: $0, warnings: warnings) }
    }
}

/// The Yosys command that synthesizes a design generically: every RTL file read with `-defer`
/// (the ROMs' `$readmemh` files are read once their parameters are known, relative to the
/// build directory), `synth -flatten -top <top>`, then `stat`.
public func synthesisCommand(directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Command {
    let manifest = try HardwareManifest.load(directory)
    let yosys = try Tool.yosys.locate(environment: environment)
    let script = "read_verilog -defer \(manifest.rtl.joined(separator: " ")); synth -flatten -top \(manifest.top); stat"
    return Command(executable: yosys, arguments: ["-p", script], directory: directory)
}

/// Runs the generic Yosys synthesis of the design in `directory` (a smoke check that the RTL is
/// synthesizable as written); throws with Yosys's output when it fails or prints no cell count.
public func synthesize(directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SynthesisSummary {
    let command = try synthesisCommand(directory: directory, environment: environment)
    let output = try run(command)
    guard let summary = SynthesisSummary.parse(output.stdout) else {
        throw EDAError.failed(command: command.description, status: output.status, stderr: "no cell count in the Yosys log:\n" + String(output.stdout.suffix(2000)))
    }
    return summary
}
