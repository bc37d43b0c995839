import ArgumentParser
import Foundation
import QForgeEDA
import QForgeHardware

extension DotOutput: ExpressibleByArgument {}

struct Units: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate single arithmetic units, check them in simulation against a reference model, and synthesize them for the ASIC cells.",
        subcommands: [MacUnitCommand.self, DpuUnitCommand.self])
}

/// What every unit command shares.
struct UnitOptions: ParsableArguments {
    @Option(name: .customLong("clock-ns"), help: "The clock period to constrain to and analyse at (ns).")
    var clockNs: Double = 10

    @Option(name: [.short, .customLong("out")], help: "Directory for the units (one subdirectory each).")
    var out: String = "units"

    @Option(help: "Random test vectors per unit.")
    var vectors: Int = 200

    @Option(help: "Seed of the test vectors.")
    var seed: UInt64 = 1

    @Option(help: "verilator or icarus.")
    var simulator: Simulator = .icarus

    @Option(help: "Power: toggles per clock cycle of every input.")
    var activity: Double = 0.1

    @Flag(help: "Simulate only; do not synthesize.")
    var noSynth = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard clockNs > 0, clockNs.isFinite else { throw ValidationError("--clock-ns must be positive") }
        guard vectors >= 1 else { throw ValidationError("--vectors must be positive") }
        guard (0...1).contains(activity) else { throw ValidationError("--activity must be 0...1") }
    }

    /// Generates, simulates and synthesizes each unit; prints the table, the area ratios and JSON.
    func run(_ units: [ArithmeticUnit], ratioLabel: (ArithmeticUnit) -> String) throws {
        var rows: [(String, SynthesisReport, DesignFigures)] = []
        var extra: [[String]] = []
        var json: [[String: Any]] = []
        let clockMHz = 1000 / clockNs
        for unit in units {
            let directory = (out as NSString).appendingPathComponent(unit.module)
            do {
                let design = try ArithmeticUnitDesign(unit, vectors: vectors, seed: seed)
                try design.write(to: directory)
                let plan = try SimulationPlan(directory: directory, sources: design.rtl + [design.testbenchFile], testbench: unit.testbench,
                                              simulator: simulator, options: SimulationOptions())
                let sim = try simulate(plan).report
                for f in sim.failures { print("\(unit.module): \(f)") }
                guard sim.failed == 0, sim.passed == vectors else {
                    throw CommandError("\(unit): \(sim.failed) of \(sim.passed + sim.failed) vectors differ from the reference model (\(directory))")
                }
                var entry: [String: Any] = ["unit": unit.description, "module": unit.module, "passed": sim.passed, "failed": sim.failed]
                if !noSynth {
                    let options = SynthesisOptions(target: .asic, clockMHz: clockMHz, inputActivity: activity)
                    let synthesisPlan = try SynthesisPlan(directory: directory, top: unit.module, rtl: design.rtl, options: options)
                    let report = try synthesize(synthesisPlan)
                    let figures = DesignFigures(macsPerInference: unit.macsPerCycle, cyclesPerInference: 1, latencyCycles: 1, report: report)
                    rows.append((unit.description, report, figures))
                    entry.merge(synthesisJSON(report, figures)) { $1 }
                }
                json.append(entry)
                note("\(unit): \(sim.passed) vectors passed in \(simulator.rawValue)")
            } catch let e as EDAError {
                throw CommandError("\(unit): \(e)")
            } catch let e as HardwareError {
                throw CommandError("\(e)")
            }
        }
        if !rows.isEmpty {
            let base = rows[0].1.areaUm2
            extra = rows.map { row in [String(format: "%.2f", (row.1.areaUm2 ?? .nan) / (base ?? .nan))] }
            printSynthesisTable(rows, extra: ["area ×"], extraValues: extra, perInference: false)
            // Ratios between neighbouring rows of the same kind (32→8, 8→4 bits; N=8→128, …).
            var ratios: [String] = []
            for i in 1..<rows.count {
                if let a = rows[i - 1].1.areaUm2, let b = rows[i].1.areaUm2, b > 0 {
                    ratios.append(String(format: "%@ / %@: %.2f", ratioLabel(units[i - 1]), ratioLabel(units[i]), a / b))
                }
            }
            if !ratios.isEmpty { print("area ratios: " + ratios.joined(separator: "; ")) }
            print(String(format: "clock %.3g ns (%.1f MHz); power with inputs toggling %.2f per cycle; OPS = 2 × MACs per cycle × clock (Fmax for GOPS, GOPS/mm²; the analysis clock for GOPS/W)",
                         clockNs, clockMHz, activity))
        }
        if output.json { printJSON(["units": json, "clock_ns": clockNs]) }
    }
}

struct MacUnitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mac",
        abstract: "A MAC per bit width: signed product added into a 2×bits accumulator register, the result on last_o.")

    @Option(help: "Bit widths, comma-separated (1…32).")
    var bits: String = "32,8,4"

    @OptionGroup var options: UnitOptions

    func run() throws {
        let widths = try parseList(bits, "--bits")
        try options.run(widths.map { .mac(bits: $0) }) { unit in
            if case let .mac(b) = unit { return "\(b)-bit" }
            return unit.description
        }
    }
}

struct DpuUnitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpu",
        abstract: "A one-cycle dot product of two N-element unsigned vectors, output registered: full width, the top bits (msb), or the low bits saturated (lsb).")

    @Option(help: "Vector lengths, comma-separated.")
    var n: String = "8,128"

    @Option(help: "Element widths, comma-separated (1…16); msb/lsb keep this many output bits.")
    var bits: String = "8"

    @Option(help: "Outputs, comma-separated: full, msb, lsb.")
    var output: String = "full,msb,lsb"

    @OptionGroup var options: UnitOptions

    func run() throws {
        let lengths = try parseList(n, "--n"), widths = try parseList(bits, "--bits")
        let outputs = try output.split(separator: ",").map { text -> DotOutput in
            guard let o = DotOutput(rawValue: text.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--output: '\(text)' is not full, msb or lsb")
            }
            return o
        }
        var units: [ArithmeticUnit] = []
        for n in lengths { for b in widths { for o in outputs { units.append(.dpu(n: n, bits: b, output: o)) } } }
        try options.run(units) { $0.description }
    }
}

/// "32,8,4" → [32, 8, 4]; an argument error naming the option otherwise.
func parseList(_ text: String, _ option: String) throws -> [Int] {
    let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let values = items.compactMap { Int($0) }
    guard !items.isEmpty, values.count == items.count, values.allSatisfy({ $0 > 0 }) else {
        throw ValidationError("\(option) must list positive integers separated by commas, not '\(text)'")
    }
    return values
}
