import Foundation
import QForgeEDA
import TestSupport
import XCTest

/// Synthesis report parsers on saved real logs (Fixtures/): Yosys 0.23, OpenSTA 2.0.17 and
/// nextpnr-ice40 0.4 from Debian 12, run on 4-bit MACs (Fixtures/qf_mac_b4.v, written by
/// `qforge units mac --bits 4 --clock-ns 1.5`, for the ASIC logs; Fixtures/mac4.v, its
/// hand-written equivalent, for the iCE40 and Xilinx logs) and on a small
/// compiled network (27→8→6, 4-bit) that does not fit an UP5K; and Fixtures/rom_mac.v (block
/// RAM and the split of products between logic and DSPs) through the xilinx and UP5K scripts.
final class SynthesisParserTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    func testYosysStatWithLiberty() throws {
        let stat = try XCTUnwrap(YosysStat.parse(try fixture("asic-mac4-yosys.log")))
        XCTAssertEqual(stat.cells, 145)
        XCTAssertEqual(stat.area, 5568)
        XCTAssertEqual(stat.cellTypes["DFFPOSX1"], 8)
        XCTAssertEqual(stat.cellTypes["NAND2X1"], 30)
        XCTAssertEqual(stat.cellTypes.values.reduce(0, +), 145)
        XCTAssertNil(YosysStat.parse("Yosys 0.23\nEnd of script.\n"))
    }

    func testOpenSTASlackAndPower() throws {
        let sta = StaReport.parse(try fixture("asic-mac4-sta.log"))
        XCTAssertEqual(sta.worstSlack, -0.636)
        let p = try XCTUnwrap(sta.power)
        XCTAssertEqual(p.internalWatts, 2.319053e-03)
        XCTAssertEqual(p.switchingWatts, 4.343465e-04)
        XCTAssertEqual(p.leakageWatts, 1.258584e-08)
        XCTAssertEqual(p.totalWatts, 2.753412e-03)
        XCTAssertEqual(sta.errors, [])
        XCTAssertEqual(StaReport.parse("Error: sta.tcl, 11 report_worst_slack -max is not a known keyword or flag.\n").errors.count, 1)
    }

    func testASICReportFromLogs() throws {
        let r = try SynthesisReport.from(target: .asic, device: "osu018", top: "qf_mac_b4", clockMHz: 1000 / 1.5, inputActivity: 0.1,
                                         yosysLog: try fixture("asic-mac4-yosys.log"), staLog: try fixture("asic-mac4-sta.log"))
        XCTAssertEqual(r.cells, 145)
        XCTAssertEqual(r.areaUm2, 5568)
        XCTAssertEqual(r.ffs, 8)
        XCTAssertEqual(r.slackNs, -0.636)
        XCTAssertEqual(try XCTUnwrap(r.fmaxMHz), 1000 / 2.136, accuracy: 1e-9)  // the critical path is 1.5 + 0.636 ns
        XCTAssertEqual(try XCTUnwrap(r.powerMW), 2.753412, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(r.powerLeakageMW), 1.258584e-05, accuracy: 1e-15)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.json().utf8)) as? [String: Any])
        for key in ["cells", "area_um2", "slack_ns", "fmax_mhz", "power_mw", "clock_mhz", "power_leakage_mw", "cell_types"] {
            XCTAssertNotNil(json[key], "report.json lacks \(key)")
        }
        XCTAssertEqual(try JSONDecoder().decode(SynthesisReport.self, from: Data(r.json().utf8)), r)
        XCTAssertThrowsError(try SynthesisReport.from(target: .asic, device: "osu018", top: "mac4", clockMHz: 100, inputActivity: 0.1,
                                                      yosysLog: try fixture("asic-mac4-yosys.log"), staLog: "Error: cannot read netlist.v\n")) { e in
            XCTAssertEqual("\(e)", "OpenSTA: Error: cannot read netlist.v")
        }
    }

    func testNextpnrFitAndFmax() throws {
        let pnr = NextpnrReport.parse(try fixture("ice40-mac4-nextpnr-up5k.log"))
        XCTAssertEqual(pnr.utilisation["ICESTORM_LC"], .init(used: 55, available: 5280))
        XCTAssertEqual(pnr.utilisation["ICESTORM_RAM"], .init(used: 0, available: 30))
        XCTAssertEqual(pnr.utilisation["ICESTORM_DSP"], .init(used: 0, available: 8))
        XCTAssertEqual(pnr.fmax, 58.41)
        XCTAssertFalse(pnr.didNotFit)
        let r = try SynthesisReport.from(target: .ice40, device: "up5k", top: "mac4", clockMHz: 100, inputActivity: 0.1,
                                         yosysLog: try fixture("ice40-mac4-yosys.log"), nextpnrLog: try fixture("ice40-mac4-nextpnr-up5k.log"))
        XCTAssertEqual(r.fits, true)
        XCTAssertEqual(r.luts, 55, "logic cells after packing")
        XCTAssertEqual(r.ffs, 8)
        XCTAssertEqual(r.brams, 0)
        XCTAssertEqual(r.dsps, 0)
        XCTAssertEqual(r.fmaxMHz, 58.41)
        XCTAssertEqual(r.cellTypes["SB_CARRY"], 4)
    }

    func testNextpnrDesignThatDoesNotFitIsAResult() throws {
        let log = try fixture("ice40-tiny-nextpnr-up5k-nofit.log")
        let pnr = NextpnrReport.parse(log)
        XCTAssertTrue(pnr.didNotFit)
        XCTAssertEqual(pnr.overfull, ["ICESTORM_DSP 24/8", "ICESTORM_LC 7461/5280"])
        XCTAssertNil(pnr.fmax)
        let r = try SynthesisReport.from(target: .ice40, device: "up5k", top: "qf_top", clockMHz: 12, inputActivity: 0.1,
                                         yosysLog: try fixture("ice40-mac4-yosys.log"), nextpnrLog: log, nextpnrStatus: 1)
        XCTAssertEqual(r.fits, false)
        XCTAssertEqual(r.fitProblem, "ICESTORM_DSP 24/8, ICESTORM_LC 7461/5280")
        XCTAssertEqual(r.luts, 7461)
        XCTAssertNil(r.fmaxMHz)
        // Too many I/Os for the package: the die has room (SB_IO 47/96) but sg48 bonds fewer pins.
        let io = NextpnrReport.parse(try fixture("ice40-tinyf-nextpnr-up5k-io.log"))
        XCTAssertTrue(io.didNotFit)
        XCTAssertEqual(io.overfull, [])
        let ior = try SynthesisReport.from(target: .ice40, device: "up5k", top: "qf_top", clockMHz: 12, inputActivity: 0.1,
                                           yosysLog: try fixture("ice40-mac4-yosys.log"), nextpnrLog: try fixture("ice40-tinyf-nextpnr-up5k-io.log"),
                                           nextpnrStatus: 255)
        XCTAssertEqual(ior.fits, false)
        XCTAssertEqual(ior.fitProblem, "SB_IO 47 pins, more than the package bonds")
        // A failure that is not about resources is an error carrying nextpnr's message.
        XCTAssertThrowsError(try SynthesisReport.from(target: .ice40, device: "up5k", top: "t", clockMHz: 12, inputActivity: 0.1,
                                                      yosysLog: try fixture("ice40-mac4-yosys.log"), nextpnrLog: "ERROR: failed to parse JSON file.\n",
                                                      nextpnrStatus: 1)) { e in
            XCTAssertEqual("\(e)", "nextpnr-ice40 failed: ERROR: failed to parse JSON file.")
        }
    }

    func testXilinxCounts() throws {
        let r = try SynthesisReport.from(target: .xilinx, device: "xc7", top: "mac4", clockMHz: 100, inputActivity: 0.1,
                                         yosysLog: try fixture("xilinx-mac4-yosys.log"))
        XCTAssertEqual(r.cells, 75)
        XCTAssertEqual(r.luts, 44, "LUT2…LUT6 and INV (a LUT1)")
        XCTAssertEqual(r.ffs, 8)
        XCTAssertEqual(r.dsps, 0)
        XCTAssertEqual(r.brams, 0)
        XCTAssertNil(r.fmaxMHz)
    }

    /// Fixtures/rom_mac.v (a 512 × 32-bit ROM, four 8 × 4-bit products, one 9 × 9-bit product)
    /// through the xilinx and UP5K flows' Yosys scripts: the ROM is block RAM, the narrow
    /// products logic, the wide one a DSP.
    func testBlockRAMAndDSPCounts() throws {
        let x = try SynthesisReport.from(target: .xilinx, device: "xc7", top: "rom_mac", clockMHz: 100, inputActivity: 0.1,
                                         yosysLog: try fixture("xilinx-rommac-yosys.log"))
        XCTAssertEqual(x.brams, 1, "512 × 32 bits: one RAMB18E1")
        XCTAssertEqual(x.cellTypes["RAMB18E1"], 1)
        XCTAssertEqual(x.dsps, 1, "only the 9 × 9 product")
        XCTAssertEqual(x.luts, 27 + 9 + 21 + 29 + 130)
        XCTAssertEqual(x.ffs, 11)
        XCTAssertEqual(x.cells, 425)
        let i = try SynthesisReport.from(target: .ice40, device: "up5k", top: "rom_mac", clockMHz: 12, inputActivity: 0.1,
                                         yosysLog: try fixture("ice40-rommac-yosys.log"))
        XCTAssertEqual(i.brams, 2, "the 16 ROM bits the products read, 512 × 16 = two SB_RAM40_4K")
        XCTAssertEqual(i.dsps, 1)
        XCTAssertEqual(i.luts, 218)
        XCTAssertEqual(i.ffs, 11)
        XCTAssertNil(i.fits, "no nextpnr log")
    }

    func testDesignFigures() {
        var r = SynthesisReport(target: .asic, device: "osu018", top: "t", clockMHz: 100)
        r.fmaxMHz = 200
        r.areaUm2 = 2_000_000  // 2 mm²
        r.powerMW = 10
        let f = DesignFigures(macsPerInference: 1000, cyclesPerInference: 50, latencyCycles: 120, report: r)
        XCTAssertEqual(f.inferencesPerSecond, 4e6)
        XCTAssertEqual(f.latencyNs, 600)
        XCTAssertEqual(f.opsPerSecond, 8e9)
        XCTAssertEqual(f.opsPerMm2, 4e9)
        XCTAssertEqual(f.opsPerWatt, 2 * 1000 * 2e6 / 0.01, "at the 100 MHz analysis clock")
        let none = DesignFigures(macsPerInference: 1, cyclesPerInference: 1, latencyCycles: 1,
                                 report: SynthesisReport(target: .xilinx, device: "xc7", top: "t", clockMHz: 100))
        XCTAssertNil(none.opsPerSecond)
        XCTAssertNil(none.opsPerWatt)
    }

    func testPlansAreDataAndMissingToolsNameTheirPackage() throws {
        let environment = ["PATH": "/usr/bin:/bin"]
        try requireTools(environment)
        let plan = try SynthesisPlan(directory: "/tmp/d", top: "qf_top", rtl: ["a.v", "b.v"],
                                     options: SynthesisOptions(target: .asic, clockMHz: 250, environment: environment))
        XCTAssertEqual(plan.steps.map(\.name), ["yosys", "sta"])
        let script = try XCTUnwrap(plan.files["synth-asic/synth.ys"])
        XCTAssertTrue(script.contains("read_verilog -defer a.v b.v\nsynth -flatten -top qf_top\n"), script)
        XCTAssertTrue(script.contains("abc -D 4000 -liberty "), script)
        let tcl = try XCTUnwrap(plan.files["synth-asic/sta.tcl"])
        XCTAssertTrue(tcl.contains("create_clock -name clk -period 4 [get_ports clk_i]"), tcl)
        XCTAssertTrue(tcl.contains("set_power_activity -input -activity 0.1"), tcl)
        let ice = try SynthesisPlan(directory: "/tmp/d", top: "t", rtl: ["a.v"], options: SynthesisOptions(target: .ice40, device: .hx8k, environment: environment))
        XCTAssertEqual(ice.outputDirectory, "synth-ice40-hx8k")
        XCTAssertEqual(Array(ice.steps[1].command.arguments.prefix(3)), ["--hx8k", "--package", "ct256"])
        XCTAssertFalse(try XCTUnwrap(ice.files["synth-ice40-hx8k/synth.ys"]).contains("mul2dsp"), "the HX8K has no DSPs")

        // Folded designs: the ROM module (from its file name) leaves the ASIC netlist; products
        // with an operand of at most 5 bits stay out of the DSPs.
        let folded = ["qf_rom.v", "qf_l0_mvau.v", "qf_top.v"]
        let asic = try SynthesisPlan(directory: "/tmp/d", top: "qf_top", rtl: folded, options: SynthesisOptions(target: .asic, environment: environment))
        XCTAssertEqual(asic.memoryModules, ["qf_rom"])
        let asicScript = try XCTUnwrap(asic.files["synth-asic/synth.ys"])
        XCTAssertTrue(asicScript.contains("hierarchy -top qf_top\nblackbox $paramod*\\qf_rom*\nsynth -flatten -top qf_top\n"
                                          + "expose -evert t:$paramod*\\qf_rom*\ndelete -output w:*.clk_i\n"), asicScript)
        let xilinx = try SynthesisPlan(directory: "/tmp/d", top: "qf_top", rtl: folded, options: SynthesisOptions(target: .xilinx, environment: environment))
        XCTAssertTrue(try XCTUnwrap(xilinx.files["synth-xilinx/synth.ys"]).contains(
            "-run :map_dsp\nchtype -set $__soft_mul t:$mul r:A_WIDTH<=5 %i\nchtype -set $__soft_mul t:$mul r:B_WIDTH<=5 %i\n"))
        let up5k = try SynthesisPlan(directory: "/tmp/d", top: "qf_top", rtl: folded, options: SynthesisOptions(target: .ice40, environment: environment))
        XCTAssertTrue(try XCTUnwrap(up5k.files["synth-ice40-up5k/synth.ys"]).contains("-D DSP_A_MINWIDTH=6 -D DSP_B_MINWIDTH=6 "))

        XCTAssertThrowsError(try SynthesisPlan(directory: "/tmp", top: "t", rtl: ["a.v"],
                                               options: SynthesisOptions(target: .asic, environment: ["PATH": "/nonexistent"]))) { e in
            XCTAssertEqual("\(e)", "yosys not found: install the Debian package 'yosys' (sudo apt-get install -y yosys), or set QFORGE_YOSYS to its path")
        }
        XCTAssertThrowsError(try SynthesisPlan(directory: "/tmp", top: "t", rtl: ["a.v"],
                                               options: SynthesisOptions(target: .asic, environment: environment.merging(["QFORGE_STA": "/nonexistent/sta"]) { $1 }))) { e in
            XCTAssertEqual("\(e)", "QFORGE_STA=/nonexistent/sta is not an executable file")
        }
        XCTAssertThrowsError(try CellLibrary.osu018.locate(environment: ["QFORGE_LIBERTY": "/nonexistent.lib"]))
        XCTAssertThrowsError(try SynthesisPlan(directory: "/tmp", top: "t", rtl: ["a.v"], options: SynthesisOptions(target: .asic, clockMHz: 0))) { e in
            XCTAssertEqual("\(e)", "the clock must be a positive frequency, not 0.0 MHz")
        }
    }

    func requireTools(_ environment: [String: String]) throws {
        for tool in [Tool.yosys, .sta, .nextpnrICE40] {
            try requireResource(tool.isAvailable(environment: environment), "\(tool.name) not found (Debian package \(tool.package))")
        }
        try requireResource(CellLibrary.osu018.isAvailable(), "OSU 0.18 µm liberty not found (Debian package qflow)")
    }
}
