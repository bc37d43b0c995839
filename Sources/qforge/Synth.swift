import ArgumentParser
import Foundation
import QForgeEDA
import QForgeHardware

extension SynthesisTarget: ExpressibleByArgument {}
extension ICE40Device: ExpressibleByArgument {}

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Synthesize a compiled design: asic (Yosys onto OSU 0.18 µm cells, then OpenSTA), ice40 (Yosys, nextpnr-ice40) or xilinx (Yosys synth_xilinx, 7-series).",
        discussion: """
            Scripts, logs, netlists and report.json go to <directory>/synth-<target> (ice40: synth-ice40-<device>). \
            Throughput comes from the manifest: inferences/s = Fmax / cycles per inference, OPS/s = 2 × MACs × \
            inferences/s; OPS/W uses the power at the analysis clock (inputs toggling with --activity per cycle).

            Memories: on ice40 and xilinx the weight and parameter ROMs of a folded design map to block RAM \
            (SB_RAM40_4K; RAMB18E1/RAMB36E1), the smallest ones to logic. OSU 0.18 µm has no memory macros, so the \
            asic netlist leaves the ROMs out: their ports become ports of the netlist (timed against the clock, with no access time), \
            cells, area and power are the logic's alone, and memory_bits says how many bits the ROMs hold. \
            Multipliers with an operand of at most 5 bits are built from logic, wider ones from DSPs (xilinx; \
            ice40 on the UP5K).
            """)

    @Argument(help: "The build directory written by qforge compile.")
    var directory: String

    @Option(help: "asic, ice40 or xilinx.")
    var target: SynthesisTarget = .asic

    @Option(name: .customLong("clock-mhz"), help: "The clock to constrain to and analyse at (MHz).")
    var clockMHz: Double = 100

    @Option(help: "iCE40 part: up5k or hx8k.")
    var device: ICE40Device = .up5k

    @Option(help: "ASIC power: toggles per clock cycle of every input (OpenSTA propagates them).")
    var activity: Double = 0.1

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard clockMHz > 0, clockMHz.isFinite else { throw ValidationError("--clock-mhz must be positive") }
        guard (0...1).contains(activity) else { throw ValidationError("--activity must be 0...1") }
    }

    func run() throws {
        let manifest: HardwareManifest
        let report: SynthesisReport
        do {
            manifest = try HardwareManifest.load(directory)
            report = try synthesize(directory: directory, options: SynthesisOptions(target: target, clockMHz: clockMHz, device: device, inputActivity: activity))
        } catch let e as EDAError {
            throw CommandError("\(e)")
        } catch let e as HardwareError {
            throw CommandError("\(e)")
        }
        let figures = DesignFigures(manifest: manifest, report: report)
        printSynthesisTable([("\(manifest.model) (\(manifest.top))", report, figures)])
        if let bits = report.memoryBits {
            print("ROMs: \(bits) bits" + (target == .asic ? " (outside the asic figures: OSU 0.18 µm has no memory macros)" : ""))
        }
        if report.fits == false { print("does not fit the \(report.device): \(report.fitProblem ?? "see the nextpnr log")") }
        print(String(format: "%d MACs per inference, %d cycles per inference, latency %d cycles; %@ took %.1f s",
                     figures.macsPerInference, figures.cyclesPerInference, figures.latencyCycles, target.rawValue, report.seconds))
        if output.json { printJSON(synthesisJSON(report, figures)) }
    }
}

/// One row per report: the figures the target produces, "—" for the rest.
/// `perInference: false` (single units): no inferences/s or latency columns.
func printSynthesisTable(_ rows: [(String, SynthesisReport, DesignFigures)], extra: [String] = [], extraValues: [[String]] = [],
                         perInference: Bool = true) {
    guard let first = rows.first?.1 else { return }
    var header = ["design"] + extra
    switch first.target {
    case .asic: header += ["cells", "area µm²", "slack ns", "Fmax MHz", "power mW"] + (perInference ? ["inf/s", "latency ns"] : [])
        + ["GOPS", "GOPS/W", "GOPS/mm²"]
    case .ice40: header += ["LCs", "FFs", "BRAMs", "DSPs", "fits", "Fmax MHz", "inf/s", "latency ns", "GOPS"]
    case .xilinx: header += ["LUTs", "FFs", "BRAMs", "DSPs"]
    }
    var table = [header]
    for (i, (name, r, f)) in rows.enumerated() {
        var cells = [name] + (i < extraValues.count ? extraValues[i] : [])
        switch r.target {
        case .asic:
            cells += [show(r.cells), show(r.areaUm2, "%.0f"), show(r.slackNs, "%.3f"), show(r.fmaxMHz, "%.1f"), show(r.powerMW, "%.3f")]
                + (perInference ? [show(f.inferencesPerSecond, "%.3g"), show(f.latencyNs, "%.1f")] : [])
                + [show(f.opsPerSecond.map { $0 / 1e9 }, "%.3g"),
                      show(f.opsPerWatt.map { $0 / 1e9 }, "%.3g"), show(f.opsPerMm2.map { $0 / 1e9 }, "%.3g")]
        case .ice40:
            cells += [show(r.luts), show(r.ffs), show(r.brams), show(r.dsps), r.fits.map { $0 ? "yes" : "no" } ?? "—", show(r.fmaxMHz, "%.1f"),
                      show(f.inferencesPerSecond, "%.3g"), show(f.latencyNs, "%.1f"), show(f.opsPerSecond.map { $0 / 1e9 }, "%.3g")]
        case .xilinx:
            cells += [show(r.luts), show(r.ffs), show(r.brams), show(r.dsps)]
        }
        table.append(cells)
    }
    printMarkdownTable(table)
}

private func show(_ x: Int?) -> String { x.map(String.init) ?? "—" }
private func show(_ x: Double?, _ format: String) -> String { x.map { String(format: format, $0) } ?? "—" }

/// The report and the derived figures under the JSON names the CLI promises.
func synthesisJSON(_ r: SynthesisReport, _ f: DesignFigures) -> [String: Any] {
    var o: [String: Any] = ["target": r.target.rawValue, "device": r.device, "top": r.top, "clock_mhz": r.clockMHz,
                            "macs_per_inference": f.macsPerInference, "cycles_per_inference": f.cyclesPerInference,
                            "latency_cycles": f.latencyCycles, "seconds": r.seconds]
    let optional: [(String, Any?)] = [
        ("cells", r.cells), ("area_um2", r.areaUm2), ("fmax_mhz", r.fmaxMHz), ("slack_ns", r.slackNs), ("power_mw", r.powerMW),
        ("power_internal_mw", r.powerInternalMW), ("power_switching_mw", r.powerSwitchingMW), ("power_leakage_mw", r.powerLeakageMW),
        ("input_activity", r.inputActivity), ("luts", r.luts), ("ffs", r.ffs), ("brams", r.brams), ("dsps", r.dsps), ("fits", r.fits),
        ("fit_problem", r.fitProblem), ("memory_bits", r.memoryBits), ("inferences_per_second", f.inferencesPerSecond), ("latency_ns", f.latencyNs),
        ("ops_per_second", f.opsPerSecond), ("ops_per_watt", f.opsPerWatt), ("ops_per_mm2", f.opsPerMm2),
    ]
    for (k, v) in optional { o[k] = v ?? NSNull() }
    return o
}
