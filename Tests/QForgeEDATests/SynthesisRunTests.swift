import Foundation
import HardwareTestSupport
import QForgeEDA
import QForgeHardware
import QForgeInteger
import TestSupport
import XCTest

/// Runs the real tools on small things: single units (simulated against their reference,
/// then synthesized for the ASIC cells) and the two-layer test model on all three targets.
/// Skipped without the tools unless CI is set.
final class SynthesisRunTests: XCTestCase {
    func require(_ tools: [Tool], liberty: Bool = false) throws {
        for tool in tools { try requireResource(tool.isAvailable(), "\(tool.name) not found (Debian package \(tool.package))") }
        if liberty { try requireResource(CellLibrary.osu018.isAvailable(), "OSU 0.18 µm liberty not found (Debian package qflow)") }
    }

    func testUnitsMatchTheirReferenceAndSynthesize() throws {
        try require([.iverilog, .vvp, .yosys, .sta], liberty: true)
        let tmp = try TemporaryDirectory()
        for unit: ArithmeticUnit in [.mac(bits: 4), .dpu(n: 4, bits: 4, output: .lsb), .dpu(n: 3, bits: 3, output: .msb), .dpu(n: 2, bits: 4, output: .full)] {
            let design = try ArithmeticUnitDesign(unit, vectors: 60, seed: 7)
            let dir = tmp.file(unit.module)
            try design.write(to: dir)
            let plan = try SimulationPlan(directory: dir, sources: design.rtl + [design.testbenchFile], testbench: unit.testbench,
                                          simulator: .icarus, options: SimulationOptions())
            let sim = try simulate(plan).report
            XCTAssertEqual(sim.failed, 0, "\(unit): \(sim.failures)")
            XCTAssertEqual(sim.passed, 60, "\(unit)")

            // A wrong expectation is caught.
            let expectedPath = (dir as NSString).appendingPathComponent("\(unit.module)_expected.hex")
            var lines = try String(contentsOfFile: expectedPath, encoding: .utf8).split(separator: "\n").map(String.init)
            let last = lines[5].removeLast()
            lines[5].append(last == "1" ? "0" : "1")
            try (lines.joined(separator: "\n") + "\n").write(toFile: expectedPath, atomically: true, encoding: .utf8)
            XCTAssertEqual(try simulate(plan).report.failed, 1, "\(unit)")
        }
        let options = SynthesisOptions(target: .asic, clockMHz: 500)
        let dir = tmp.file("qf_mac_b4")
        let report = try synthesize(try SynthesisPlan(directory: dir, top: "qf_mac_b4", rtl: ["qf_mac_b4.v"], options: options))
        XCTAssertGreaterThan(report.cells ?? 0, 20)
        XCTAssertGreaterThan(report.areaUm2 ?? 0, 1000)
        XCTAssertEqual(report.ffs, 8)
        XCTAssertNotNil(report.slackNs)
        XCTAssertGreaterThan(report.powerMW ?? 0, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("qf_mac_b4/synth-asic/report.json")))
    }

    func testSmallDesignOnAllTargets() throws {
        try require([.yosys, .sta, .nextpnrICE40], liberty: true)
        let tmp = try TemporaryDirectory()
        let model = smallDenseModel()
        let graph = try HardwareGraph(model, foldings: [Folding(pe: 2, simd: 2), Folding(pe: 1, simd: 3)])
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 4, seed: 5), source: "random")
        let manifest = HardwareDesign(graph, vectors: vectors, integerModel: model).manifest
        try HardwareDesign(graph, vectors: vectors, integerModel: model).write(to: tmp.path)

        let asic = try synthesize(directory: tmp.path, options: SynthesisOptions(target: .asic, clockMHz: 100))
        XCTAssertGreaterThan(asic.areaUm2 ?? 0, 0)
        // The ROMs stay out of the cells: their ports are the netlist's. Layer 0's weight words
        // are 2 × 2 × 4 = 16 bits wide; layer 1 holds 2 × 2 words of 1 × 3 × 4 bits.
        XCTAssertEqual(asic.memoryBits, manifest.memoryBits)
        XCTAssertEqual(manifest.layers[1].memoryBits, 48)
        let netlist = try String(contentsOfFile: tmp.file("synth-asic/netlist.v"), encoding: .utf8)
        XCTAssertTrue(netlist.contains("\\u_l0.u_weights.data_o[15] "), "the weight ROM's read data should be a port of the netlist")
        XCTAssertFalse(netlist.contains("u_weights.clk_i"))
        XCTAssertNotNil(asic.fmaxMHz)
        let figures = DesignFigures(manifest: manifest, report: asic)
        XCTAssertEqual(figures.macsPerInference, 4 * 6 + 6 * 2)
        XCTAssertEqual(figures.cyclesPerInference, graph.expectedCyclesPerInference)
        XCTAssertNotNil(figures.opsPerWatt)

        let ice = try synthesize(directory: tmp.path, options: SynthesisOptions(target: .ice40, clockMHz: 12))
        XCTAssertEqual(ice.fits, true, ice.fitProblem ?? "")
        XCTAssertGreaterThan(ice.luts ?? 0, 0)
        XCTAssertGreaterThan(ice.fmaxMHz ?? 0, 0)

        let xilinx = try synthesize(directory: tmp.path, options: SynthesisOptions(target: .xilinx))
        XCTAssertGreaterThan(xilinx.luts ?? 0, 0)
        XCTAssertGreaterThan(xilinx.ffs ?? 0, 0)
    }

    /// One folded 256 → 16 layer at 8-bit inputs and 4-bit weights, PE 1, SIMD 4: its weight ROM
    /// (1024 words of 16 bits) must become block RAM, and its four 8 × 4-bit products logic, not
    /// DSPs. (Yosys builds a ROM of up to about 8 kbit from LUTs on xilinx: 512 × 16 bits does.)
    /// Yosys only (the place and route of iCE40 adds nothing to what is mapped).
    func testFoldedWeightsBecomeBlockRAMAndNarrowProductsLogic() throws {
        try require([.yosys, .nextpnrICE40])
        let tmp = try TemporaryDirectory()
        let model = jetShapedModel(seed: 3, sizes: [256, 16])
        let graph = try HardwareGraph(model, foldings: [Folding(pe: 1, simd: 4)])
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 2, seed: 1), source: "random")
        let design = HardwareDesign(graph, vectors: vectors, integerModel: model)
        try design.write(to: tmp.path)
        XCTAssertEqual(design.manifest.memoryBits, 1024 * 16)

        func yosysOnly(_ options: SynthesisOptions) throws -> SynthesisReport {
            var plan = try SynthesisPlan(directory: tmp.path, top: design.manifest.top, rtl: design.manifest.rtl, options: options)
            plan.steps = plan.steps.filter { $0.name == "yosys" }
            return try synthesize(plan)
        }
        let xilinx = try yosysOnly(SynthesisOptions(target: .xilinx))
        XCTAssertGreaterThanOrEqual(xilinx.brams ?? 0, 1, "\(xilinx.cellTypes)")
        XCTAssertEqual(xilinx.dsps, 0, "\(xilinx.cellTypes)")
        let ice = try yosysOnly(SynthesisOptions(target: .ice40, device: .up5k))
        XCTAssertGreaterThanOrEqual(ice.brams ?? 0, 4, "16 kbit: at least four SB_RAM40_4K; \(ice.cellTypes)")
        XCTAssertEqual(ice.dsps, 0, "\(ice.cellTypes)")
    }

    func testAFailingToolRunCarriesItsMessages() throws {
        try require([.yosys], liberty: true)
        let tmp = try TemporaryDirectory()
        try tmp.write("bad.v", text: "module bad (input wire clk_i; endmodule\n")
        XCTAssertThrowsError(try synthesize(try SynthesisPlan(directory: tmp.path, top: "bad", rtl: ["bad.v"], options: SynthesisOptions(target: .xilinx)))) { e in
            XCTAssertTrue("\(e)".contains("failed with status"), "\(e)")
            XCTAssertTrue("\(e)".contains("ERROR"), "\(e)")
        }
    }
}
