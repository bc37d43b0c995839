import Foundation
import QForgeHardware

/// Where a design is synthesized.
public enum SynthesisTarget: String, CaseIterable, Sendable, Codable {
    /// Yosys onto the OSU 0.18 µm standard cells, then OpenSTA: cells, µm², slack, power.
    case asic
    /// Yosys `synth_ice40`, then nextpnr-ice40: logic cells, block RAMs, DSPs, fit, Fmax.
    case ice40
    /// Yosys `synth_xilinx` (7-series): LUT, FF, DSP48 and block RAM counts.
    case xilinx
}

/// The iCE40 parts nextpnr places on.
public enum ICE40Device: String, CaseIterable, Sendable, Codable {
    case up5k
    case hx8k

    /// The package nextpnr assumes (named, to silence its warning).
    var package: String { self == .up5k ? "sg48" : "ct256" }
    /// Only the UP5K has DSPs (SB_MAC16).
    var hasDSP: Bool { self == .up5k }
}

extension Tool {
    public static let sta = Tool(name: "sta", variable: "QFORGE_STA", package: "opensta")
    public static let nextpnrICE40 = Tool(name: "nextpnr-ice40", variable: "QFORGE_NEXTPNR_ICE40", package: "nextpnr-ice40")
}

/// A standard-cell library (liberty file) found through an environment variable, then at
/// the path its Debian package installs it to.
public struct CellLibrary: Equatable, Sendable {
    public var name: String
    public var variable: String
    public var defaultPath: String
    public var package: String

    public static let osu018 = CellLibrary(name: "OSU 0.18 µm liberty", variable: "QFORGE_LIBERTY",
                                           defaultPath: "/usr/share/qflow/tech/osu018/osu018_stdcells.lib", package: "qflow")

    public func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let path = environment[variable], !path.isEmpty {
            guard FileManager.default.isReadableFile(atPath: path) else { throw EDAError.invalid("\(variable)=\(path) is not a readable liberty file") }
            return path
        }
        guard FileManager.default.isReadableFile(atPath: defaultPath) else {
            throw EDAError.invalid("\(name) not found at \(defaultPath): install the Debian package '\(package)' (sudo apt-get install -y \(package)), or set \(variable) to a liberty file")
        }
        return defaultPath
    }

    public func isAvailable(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        (try? locate(environment: environment)) != nil
    }
}

/// How to synthesize.
public struct SynthesisOptions: Sendable {
    public var target: SynthesisTarget
    /// The clock the design is constrained to (asic: STA period; ice40: nextpnr's target).
    public var clockMHz: Double
    public var device: ICE40Device
    /// The clock input port.
    public var clockPort: String
    /// OpenSTA power: the toggle rate of every input per clock cycle, propagated through the
    /// logic (OpenSTA's `set_power_activity -input`); registers toggle as the logic makes them.
    public var inputActivity: Double
    public var environment: [String: String]

    public init(target: SynthesisTarget, clockMHz: Double = 100, device: ICE40Device = .up5k, clockPort: String = "clk_i",
                inputActivity: Double = 0.1, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.target = target; self.clockMHz = clockMHz; self.device = device; self.clockPort = clockPort
        self.inputActivity = inputActivity; self.environment = environment
    }

    public var periodNs: Double { 1000 / clockMHz }
}

/// One command of a synthesis flow.
public struct SynthesisStep: Sendable {
    public var name: String
    public var command: Command
    /// Where its output is saved (relative to the directory the flow runs in).
    public var log: String
    /// nextpnr: a failure because the design does not fit is a result, not an error.
    public var failureMayMeanNoFit: Bool
}

/// A synthesis flow as data: the files to write (scripts) and the commands to run, in the
/// design's directory (so `$readmemh` finds the memory files). Building it runs nothing.
public struct SynthesisPlan: Sendable {
    public var target: SynthesisTarget
    public var top: String
    public var options: SynthesisOptions
    public var directory: String
    /// The subdirectory holding scripts, logs, netlists and report.json: `synth-<target>`.
    public var outputDirectory: String
    /// `synth-<target>`, `synth-ice40-<device>` for iCE40.
    public static func outputDirectory(_ options: SynthesisOptions) -> String {
        options.target == .ice40 ? "synth-ice40-\(options.device.rawValue)" : "synth-\(options.target.rawValue)"
    }

    /// Relative path → text.
    public var files: [String: String]
    public var steps: [SynthesisStep]

    /// The modules that hold memories: the ASIC flow keeps them out of the standard cells.
    public var memoryModules: [String]

    /// The flow for the RTL files `rtl` (relative to `directory`) with top module `top`.
    /// `memoryModules` (default: the modules of files named `*_rom.v`, one module per file) are
    /// the ROMs: block RAM on the FPGA targets, ports of the netlist on the ASIC target.
    public init(directory: String, top: String, rtl: [String], memoryModules: [String]? = nil, options: SynthesisOptions) throws {
        guard options.clockMHz > 0, options.clockMHz.isFinite else { throw EDAError.invalid("the clock must be a positive frequency, not \(options.clockMHz) MHz") }
        guard !rtl.isEmpty else { throw EDAError.invalid("no RTL files to synthesize") }
        target = options.target
        self.top = top
        self.options = options
        self.directory = directory
        self.memoryModules = memoryModules ?? rtl.filter { $0.hasSuffix("_rom.v") }.map { String(($0 as NSString).lastPathComponent.dropLast(2)) }
        let out = Self.outputDirectory(options)
        outputDirectory = out
        let yosys = try Tool.yosys.locate(environment: options.environment)
        let header = "# Generated by QForge \(qforgeHardwareVersion): \(options.target.rawValue) synthesis of \(top). Do not edit."
        // -defer: modules are elaborated only with the parameters they are instantiated with
        // (a ROM's default has no memory file).
        let read = "read_verilog -defer " + rtl.joined(separator: " ")
        func yosysStep(_ script: String) -> SynthesisStep {
            SynthesisStep(name: "yosys", command: Command(executable: yosys, arguments: ["-s", "\(out)/synth.ys"], directory: directory),
                          log: "\(out)/yosys.log", failureMayMeanNoFit: false)
        }
        switch options.target {
        case .asic:
            let liberty = try CellLibrary.osu018.locate(environment: options.environment)
            let sta = try Tool.sta.locate(environment: options.environment)
            let picoseconds = Int((options.periodNs * 1000).rounded())
            // OSU 0.18 µm has no memory macros: each ROM instance leaves the netlist (expose -evert),
            // its read data becoming input ports and its address and enable output ports (its
            // clock is dropped), so that cells, area and power are the logic's and STA times the
            // paths from and to the memories against the clock like any port, with no access
            // time. The memories' bits are reported apart.
            // Parameterized modules are named $paramod$<hash>\rom or $paramod\rom\Width=...
            let derived = self.memoryModules.map { "$paramod*\\\($0)*" }
            let memories = derived.isEmpty ? [] : ["hierarchy -top \(top)", "blackbox " + derived.joined(separator: " ")]
            let evert = derived.isEmpty ? [] : ["expose -evert " + derived.map { "t:\($0)" }.joined(separator: " "),
                                                "delete -output w:*.\(options.clockPort)"]
            let script = [header, read] + memories + [
                          "synth -flatten -top \(top)"] + evert + [
                          "dfflibmap -liberty \(liberty)",
                          // Yosys's own liberty script, then ABC's fanout buffering and gate sizing:
                          // without them a register's or input's fanout of hundreds of pins puts
                          // tens of ns on one INVX1 (there is no placement to repair it later).
                          "abc -D \(picoseconds) -liberty \(liberty) -script \(abcScript)",
                          "opt_clean -purge",
                          "setundef -zero",
                          "splitnets -ports",
                          "stat -liberty \(liberty)",
                          // One bit per assign: OpenSTA reads no concatenations.
                          "write_verilog -noattr -noexpr -nohex -nodec -simple-lhs \(out)/netlist.v"]
            let clock = options.clockPort
            let tcl = [header.replacingOccurrences(of: "synthesis", with: "timing and power"),
                       "read_liberty \(liberty)",
                       "read_verilog \(out)/netlist.v",
                       "link_design \(top)",
                       "create_clock -name clk -period \(format(options.periodNs)) [get_ports \(clock)]",
                       "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports \(clock)]]",
                       "set_output_delay 0 -clock clk [all_outputs]",
                       "set_power_activity -input -activity \(format(options.inputActivity))",
                       "report_checks -path_delay max -digits 3",
                       "report_worst_slack -digits 3",
                       "report_power -digits 6",
                       "exit"]
            files = ["\(out)/synth.ys": script.joined(separator: "\n") + "\n", "\(out)/sta.tcl": tcl.joined(separator: "\n") + "\n"]
            steps = [yosysStep(script.joined(separator: "\n")),
                     SynthesisStep(name: "sta", command: Command(executable: sta, arguments: ["-no_splash", "-exit", "\(out)/sta.tcl"], directory: directory),
                                   log: "\(out)/sta.log", failureMayMeanNoFit: false)]
        case .ice40:
            let nextpnr = try Tool.nextpnrICE40.locate(environment: options.environment)
            let device = options.device
            let synth = "synth_ice40 -top \(top) -json \(out)/netlist.json"
            // With DSPs: flatten, narrow the multipliers to their operands (wreduce), map those
            // wider than multiplierLogicMaxBits to SB_MAC16 with synth_ice40 -dsp's own commands
            // (only the minimum widths raised), then the rest of synth_ice40; the others become logic.
            let minimum = multiplierLogicMaxBits + 1
            let dsp = ["opt_expr", "opt_clean", "wreduce t:$mul",
                       "techmap -map +/mul2dsp.v -map +/ice40/dsp_map.v -D DSP_A_MAXWIDTH=16 -D DSP_B_MAXWIDTH=16 "
                           + "-D DSP_A_MINWIDTH=\(minimum) -D DSP_B_MINWIDTH=\(minimum) -D DSP_Y_MINWIDTH=11 -D DSP_NAME=$__MUL16X16",
                       "select a:mul2dsp", "setattr -unset mul2dsp", "opt_expr -fine", "wreduce", "select -clear", "ice40_dsp",
                       "chtype -set $mul t:$__soft_mul"]
            let body = device.hasDSP ? ["\(synth) -run :coarse"] + dsp + ["\(synth) -run coarse:"] : [synth]
            let script = [header, read] + body + ["stat"]
            files = ["\(out)/synth.ys": script.joined(separator: "\n") + "\n"]
            steps = [yosysStep(script.joined(separator: "\n")),
                     SynthesisStep(name: "nextpnr-ice40",
                                   command: Command(executable: nextpnr,
                                                    arguments: ["--\(device.rawValue)", "--package", device.package, "--json", "\(out)/netlist.json",
                                                                "--freq", format(options.clockMHz), "--timing-allow-fail", "--asc", "\(out)/design.asc"],
                                                    directory: directory),
                                   log: "\(out)/nextpnr.log", failureMayMeanNoFit: true)]
        case .xilinx:
            let synth = "synth_xilinx -flatten -family xc7 -top \(top)"
            let script = [header, read, "\(synth) -run :map_dsp"] + narrowMultipliersToLogic + ["\(synth) -run map_dsp:", "stat"]
            files = ["\(out)/synth.ys": script.joined(separator: "\n") + "\n"]
            steps = [yosysStep(script.joined(separator: "\n"))]
        }
    }
}

/// The widest narrower operand of a multiplier that stays in logic (LUTs) instead of a DSP.
/// Measured with Yosys 0.23 on registered signed products: in 7-series LUTs 5×5 bits costs
/// 41 LUTs and 9×5 77, but 9×6 113 and 8×8 166; an xc7a35t has 231 LUTs per DSP48E1 (20,800 /
/// 90), so up to 5 bits a product costs at most a third of the fabric a DSP stands for, while
/// the wider ones approach it. On the iCE40 UP5K (8 SB_MAC16s) the narrow products of a
/// folded layer (PE × SIMD of them) would take every DSP for little logic each.
public let multiplierLogicMaxBits = 5

/// Yosys commands that hide multipliers with an operand of at most `multiplierLogicMaxBits`
/// bits from DSP mapping (`mul2dsp` maps `$mul` only; the flows turn `$__soft_mul` back into
/// `$mul` after it, and those become logic).
let narrowMultipliersToLogic = ["A", "B"].map { "chtype -set $__soft_mul t:$mul r:\($0)_WIDTH<=\(multiplierLogicMaxBits) %i" }

/// Yosys 0.23's ABC script for `-liberty` with `-D` (ABC substitutes {D}), plus `buffer -p`
/// (fanout trees, primary inputs included: register outputs are ABC's inputs), `upsize`, `dnsize`.
let abcScript = "+strash;&get,-n;&fraig,-x;&put;scorr;dc2;dretime;strash;&get,-n;&dch,-f;&nf,{D};&put;buffer,-p;upsize,{D};dnsize,{D}"

private func format(_ x: Double) -> String {
    x == x.rounded() && abs(x) < 1e9 ? String(Int(x)) : String(format: "%.6g", x)
}

/// The figures of one synthesis run. Fields a target does not produce are nil.
public struct SynthesisReport: Codable, Equatable, Sendable {
    public var target: SynthesisTarget
    public var device: String
    public var top: String
    public var clockMHz: Double
    public var cells: Int?
    public var areaUm2: Double?
    public var slackNs: Double?
    public var fmaxMHz: Double?
    public var powerMW: Double?
    public var powerInternalMW: Double?
    public var powerSwitchingMW: Double?
    public var powerLeakageMW: Double?
    /// The stated activity behind the power figures.
    public var inputActivity: Double?
    public var luts: Int?
    public var ffs: Int?
    /// Block RAM primitives (iCE40 SB_RAM40_4K; Xilinx RAMB36E1 + RAMB18E1).
    public var brams: Int?
    public var dsps: Int?
    public var fits: Bool?
    /// Why it does not fit ("ICESTORM_LC 13355/5280").
    public var fitProblem: String?
    /// Bits of the design's ROMs (from its manifest). The ASIC figures exclude them: the
    /// netlist has the memories' ports, not their cells (OSU 0.18 µm has no memory macros).
    public var memoryBits: Int?
    public var cellTypes: [String: Int]
    public var seconds: Double

    /// The names in report.json, the same as `qforge synth --json` prints.
    enum CodingKeys: String, CodingKey {
        case target, device, top, cells, luts, ffs, brams, dsps, fits, seconds
        case clockMHz = "clock_mhz", areaUm2 = "area_um2", slackNs = "slack_ns", fmaxMHz = "fmax_mhz", powerMW = "power_mw"
        case powerInternalMW = "power_internal_mw", powerSwitchingMW = "power_switching_mw", powerLeakageMW = "power_leakage_mw"
        case inputActivity = "input_activity", fitProblem = "fit_problem", cellTypes = "cell_types", memoryBits = "memory_bits"
    }

    public init(target: SynthesisTarget, device: String, top: String, clockMHz: Double, cellTypes: [String: Int] = [:], seconds: Double = 0) {
        self.target = target; self.device = device; self.top = top; self.clockMHz = clockMHz; self.cellTypes = cellTypes; self.seconds = seconds
    }

    /// Fills the figures from the tools' logs: pure, so a saved run can be re-read.
    public static func from(target: SynthesisTarget, device: String, top: String, clockMHz: Double, inputActivity: Double,
                            yosysLog: String, staLog: String? = nil, nextpnrLog: String? = nil, nextpnrStatus: Int32 = 0) throws -> SynthesisReport {
        guard let stat = YosysStat.parse(yosysLog) else { throw EDAError.invalid("the Yosys log has no statistics (stat) block; see its log") }
        var r = SynthesisReport(target: target, device: device, top: top, clockMHz: clockMHz, cellTypes: stat.cellTypes)
        r.cells = stat.cells
        switch target {
        case .asic:
            r.areaUm2 = stat.area
            r.ffs = stat.count { $0.hasPrefix("DFF") || $0 == "LATCH" }
            if let staLog {
                let sta = StaReport.parse(staLog)
                guard sta.errors.isEmpty else { throw EDAError.invalid("OpenSTA: " + sta.errors.prefix(3).joined(separator: "; ")) }
                r.slackNs = sta.worstSlack
                if let slack = sta.worstSlack {
                    let period = 1000 / clockMHz
                    let critical = period - slack
                    r.fmaxMHz = critical > 0 ? 1000 / critical : nil
                }
                if let p = sta.power {
                    r.powerMW = p.totalWatts * 1000
                    r.powerInternalMW = p.internalWatts * 1000
                    r.powerSwitchingMW = p.switchingWatts * 1000
                    r.powerLeakageMW = p.leakageWatts * 1000
                    r.inputActivity = inputActivity
                }
            }
        case .ice40:
            r.luts = stat.count { $0 == "SB_LUT4" }
            r.ffs = stat.count { $0.hasPrefix("SB_DFF") }
            r.brams = stat.count { $0.hasPrefix("SB_RAM40") }
            r.dsps = stat.count { $0 == "SB_MAC16" }
            if let nextpnrLog {
                let pnr = NextpnrReport.parse(nextpnrLog)
                if let lc = pnr.utilisation["ICESTORM_LC"] { r.luts = lc.used }
                if let ram = pnr.utilisation["ICESTORM_RAM"] { r.brams = ram.used }
                if let dsp = pnr.utilisation["ICESTORM_DSP"] { r.dsps = dsp.used }
                if nextpnrStatus == 0 {
                    r.fits = true
                    r.fmaxMHz = pnr.fmax
                } else if pnr.didNotFit {
                    r.fits = false
                    if !pnr.overfull.isEmpty {
                        r.fitProblem = pnr.overfull.joined(separator: ", ")
                    } else if let io = pnr.utilisation["SB_IO"], pnr.errors.contains(where: { $0.contains("$sb_io") }) {
                        r.fitProblem = "SB_IO \(io.used) pins, more than the package bonds"
                    } else {
                        r.fitProblem = pnr.errors.first.map { String($0.prefix(200)) }
                    }
                } else {
                    throw EDAError.invalid("nextpnr-ice40 failed: " + (pnr.errors.first ?? "no ERROR line; see its log"))
                }
            }
        case .xilinx:
            r.luts = stat.count { $0.range(of: #"^LUT[1-6]$"#, options: .regularExpression) != nil }
                + stat.count { $0.hasPrefix("SRL") || $0 == "INV" }  // Vivado maps INV to a LUT1
            r.ffs = stat.count { $0.range(of: #"^FD[RSCP]E(_1)?$"#, options: .regularExpression) != nil }
            r.dsps = stat.count { $0.hasPrefix("DSP48") }
            r.brams = stat.count { $0.hasPrefix("RAMB18") || $0.hasPrefix("RAMB36") }
        }
        return r
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self) + "\n"
    }
}

/// Runs `plan`: writes its files, runs its steps, saves their logs, parses them, and writes
/// `report.json` beside the logs.
public func synthesize(_ plan: SynthesisPlan) throws -> SynthesisReport {
    let fm = FileManager.default
    let options = plan.options
    for (name, text) in plan.files {
        let path = (plan.directory as NSString).appendingPathComponent(name)
        try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }
    var logs: [String: String] = [:]
    var status: [String: Int32] = [:]
    var seconds = 0.0
    for step in plan.steps {
        let output = try run(step.command, allowFailure: true)
        let log = output.stdout + output.stderr
        try? Data(log.utf8).write(to: URL(fileURLWithPath: (plan.directory as NSString).appendingPathComponent(step.log)))
        seconds += output.seconds
        if output.status != 0 && !(step.failureMayMeanNoFit && NextpnrReport.parse(log).didNotFit) {
            throw EDAError.failed(command: step.command.description, status: output.status, stderr: log)
        }
        logs[step.name] = log
        status[step.name] = output.status
    }
    var report = try SynthesisReport.from(
        target: plan.target, device: plan.target == .ice40 ? options.device.rawValue : plan.target == .asic ? "osu018" : "xc7",
        top: plan.top, clockMHz: options.clockMHz, inputActivity: options.inputActivity,
        yosysLog: logs["yosys"] ?? "", staLog: logs["sta"], nextpnrLog: logs["nextpnr-ice40"], nextpnrStatus: status["nextpnr-ice40"] ?? 0)
    report.seconds = seconds
    try? Data(report.json().utf8).write(to: URL(fileURLWithPath: (plan.directory as NSString).appendingPathComponent("\(plan.outputDirectory)/report.json")))
    return report
}

/// Synthesizes the design `qforge compile` wrote to `directory`.
public func synthesize(directory: String, options: SynthesisOptions) throws -> SynthesisReport {
    let manifest = try HardwareManifest.load(directory)
    var report = try synthesize(try SynthesisPlan(directory: directory, top: manifest.top, rtl: manifest.rtl, options: options))
    report.memoryBits = manifest.memoryBits
    try? Data(report.json().utf8).write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("\(SynthesisPlan.outputDirectory(options))/report.json")))
    return report
}

extension HardwareManifest {
    /// Bits held in the layers' ROMs; nil when the design has none (the parallel style).
    public var memoryBits: Int? {
        let bits = layers.compactMap(\.memoryBits)
        return bits.isEmpty ? nil : bits.reduce(0, +)
    }
}

/// Throughput and efficiency of a design from its manifest and a synthesis report.
public struct DesignFigures: Codable, Equatable, Sendable {
    /// Multiply-accumulates per inference (Σ inputs × outputs over the layers).
    public var macsPerInference: Int
    public var cyclesPerInference: Int
    public var latencyCycles: Int
    /// At Fmax (nil without one).
    public var inferencesPerSecond: Double?
    public var latencyNs: Double?
    /// 2 × MACs × inferences/s.
    public var opsPerSecond: Double?
    /// Operations per joule at the analysis clock (where the power was computed).
    public var opsPerWatt: Double?
    /// At Fmax, per mm² of cell area.
    public var opsPerMm2: Double?

    public init(macsPerInference: Int, cyclesPerInference: Int, latencyCycles: Int, report: SynthesisReport) {
        self.macsPerInference = macsPerInference
        self.cyclesPerInference = cyclesPerInference
        self.latencyCycles = latencyCycles
        let ops = { (mhz: Double) in 2 * Double(macsPerInference) * mhz * 1e6 / Double(max(1, cyclesPerInference)) }
        if let fmax = report.fmaxMHz, fmax > 0 {
            inferencesPerSecond = fmax * 1e6 / Double(max(1, cyclesPerInference))
            latencyNs = Double(latencyCycles) * 1000 / fmax
            opsPerSecond = ops(fmax)
            if let area = report.areaUm2, area > 0 { opsPerMm2 = ops(fmax) / (area / 1e6) }
        }
        if let power = report.powerMW, power > 0 { opsPerWatt = ops(report.clockMHz) / (power / 1000) }
    }

    public init(manifest: HardwareManifest, report: SynthesisReport) {
        self.init(macsPerInference: manifest.layers.map { $0.inputs * $0.outputs }.reduce(0, +),
                  cyclesPerInference: manifest.expectedCyclesPerInference, latencyCycles: manifest.expectedLatency, report: report)
    }
}
