import Foundation
import HardwareTestSupport
import QForgeInteger
import TestSupport
import XCTest

/// `qforge compile --style parallel`, `--target-fps`, `--max-multipliers` and `--fold file.json`
/// on the small integer model (4 → 6 → 2).
final class ParallelAndFoldingCLITests: XCTestCase {
    func testParallelCompileSimulateAndLint() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        let compile = try runQForge(["compile", model, "-o", "build", "--style", "parallel", "--samples", "20", "--json"], in: tmp)
        XCTAssertEqual(compile.status, 0, "\(compile)")
        XCTAssertTrue(compile.stdout.contains("style: fully parallel, 36 constant multipliers (Σ M·K)"), "\(compile)")
        XCTAssertTrue(compile.stdout.contains("expected: 1 cycles per inference, latency 2 cycles"), "\(compile)")
        let c = try compile.jsonObject()
        XCTAssertEqual(c["style"] as? String, "parallel")
        XCTAssertEqual(c["folding"] as? [String], ["6x4", "2x6"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("build/qf_rom.v")))

        try requireResource(toolAvailable("iverilog") && toolAvailable("vvp"), "iverilog not found (Debian package iverilog)")
        let sim = try runQForge(["sim", "build", "--simulator", "icarus", "--json"], in: tmp)
        XCTAssertEqual(sim.status, 0, "\(sim)")
        XCTAssertTrue(sim.stdout.contains("icarus: 20 passed, 0 failed"), "\(sim)")
        let s = try sim.jsonObject()
        XCTAssertEqual(s["cycles_per_inference"] as? Int, 1)
        XCTAssertEqual(s["latency"] as? Int, 2)

        try requireResource(toolAvailable("verilator"), "verilator not found (Debian package verilator)")
        let lint = try runQForge(["lint", "build"], in: tmp)
        XCTAssertEqual(lint.status, 0, "\(lint)")
        XCTAssertTrue(lint.stdout.contains("lint clean"), "\(lint)")
    }

    func testParallelRefusesModelsAboveTheLimit() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        let big = try runQForge(["compile", model, "-o", "build", "--style", "parallel", "--max-multipliers", "30"], in: tmp)
        assertCleanFailure(big, path: model, problem: ["needs 36 multipliers", "limit of 30", "--style folded"])
        let fold = try runQForge(["compile", model, "-o", "build", "--style", "parallel", "--fold", "1x1,1x1"], in: tmp)
        XCTAssertNotEqual(fold.status, 0)
        XCTAssertTrue(fold.stderr.contains("--style parallel has no folding"), "\(fold)")
        let style = try runQForge(["compile", model, "-o", "build", "--style", "wide"], in: tmp)
        XCTAssertNotEqual(style.status, 0)
        XCTAssertTrue(style.stderr.contains("--style must be folded or parallel"), "\(style)")
    }

    func testTargetFpsAndMaxMultipliersChooseTheFolding() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        // 1 MHz / 100,000 fps = 10 cycles. fc0 (24 MACs, also 4/SIMD input beats): PE·SIMD ≥ 2.4 → 3
        // (3×1: 8 cycles); fc1 (2 × 6): 2/PE · max(6/SIMD, PE) ≤ 10 at PE·SIMD = 2 (1×2: 6 cycles).
        let fps = try runQForge(["compile", model, "-o", "fps", "--target-fps", "100000", "--clock-mhz", "1", "--samples", "4", "--json"], in: tmp)
        XCTAssertEqual(fps.status, 0, "\(fps)")
        XCTAssertTrue(fps.stdout.contains("folding chosen for 100000.0 inferences/s at 1.0 MHz (at most 10 cycles per inference): 3x1,1x2 (PExSIMD per layer), 5 multipliers"), "\(fps)")
        XCTAssertEqual(try fps.jsonObject()["expected_cycles_per_inference"] as? Int, 8)
        // 3 multipliers: fc0 takes 2 (2×1 or 1×2: 12 cycles), fc1 one (12 cycles).
        let mult = try runQForge(["compile", model, "-o", "mult", "--max-multipliers", "3", "--samples", "4", "--json"], in: tmp)
        XCTAssertEqual(mult.status, 0, "\(mult)")
        XCTAssertEqual(try mult.jsonObject()["folding"] as? [String], ["1x2", "1x1"])
        XCTAssertEqual(try mult.jsonObject()["expected_cycles_per_inference"] as? Int, 12)

        let far = try runQForge(["compile", model, "-o", "far", "--target-fps", "1000000", "--clock-mhz", "1"], in: tmp)
        assertCleanFailure(far, path: model, problem: ["allows 1 cycles per inference", "layer fc1 needs at least 2"])
        let few = try runQForge(["compile", model, "-o", "few", "--max-multipliers", "1"], in: tmp)
        assertCleanFailure(few, path: model, problem: ["--max-multipliers 1 is less than the 2 layers"])
    }

    func testAutomaticFoldingOfConvolutions() throws {
        // The search counts a convolution's output pixels and SIMD | C: the chosen folding compiles
        // and its cycles per inference meet the goal.
        let tmp = try TemporaryDirectory()
        var generator = RandomIntegerModel(seed: 11, lookupChance: 0)  // (the file format stores tables that cover their grid)
        var model = generator.convModel(maxChannels: 2, maxSide: 4, maxDense: 2)
        while !model.layers.contains(where: { $0.product.kind != .gemm }) { model = generator.convModel(maxChannels: 2, maxSide: 4, maxDense: 2) }
        try IntegerModelFile.save(model, to: tmp.file("conv.int"))
        // Fewest multipliers (one per layer): everything folded.
        let m = try runQForge(["compile", "conv.int", "-o", "mult", "--max-multipliers", "\(model.layers.count)", "--samples", "2", "--json"], in: tmp)
        XCTAssertEqual(m.status, 0, "\(m)")
        XCTAssertEqual(try m.jsonObject()["folding"] as? [String], model.layers.map { _ in "1x1" })
        let slowest = try XCTUnwrap(try m.jsonObject()["expected_cycles_per_inference"] as? Int)
        // Twice that rate: some layer unfolds, and the design meets the budget.
        let budget = slowest / 2
        let r = try runQForge(["compile", "conv.int", "-o", "build", "--target-fps", "\(1e6 / Double(budget))", "--clock-mhz", "1",
                               "--samples", "2", "--json"], in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertLessThanOrEqual(try XCTUnwrap(try r.jsonObject()["expected_cycles_per_inference"] as? Int), budget)
        XCTAssertNotEqual(try r.jsonObject()["folding"] as? [String], model.layers.map { _ in "1x1" })
    }

    func testFoldFromAJSONFile() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        try tmp.write("fold.json", text: #"[{"pe": 3, "simd": 2}, {"pe": 2, "simd": 3}]"#)
        let r = try runQForge(["compile", model, "-o", "build", "--fold", "fold.json", "--samples", "4", "--json"], in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertEqual(try r.jsonObject()["folding"] as? [String], ["3x2", "2x3"])
        try tmp.write("layers.json", text: #"{"layers": [{"pe": 1, "simd": 4}, {"pe": 1, "simd": 1}]}"#)
        let l = try runQForge(["compile", model, "-o", "other", "--fold", "layers.json", "--samples", "4", "--json"], in: tmp)
        XCTAssertEqual(try l.jsonObject()["folding"] as? [String], ["1x4", "1x1"])
        try tmp.write("bad.json", text: #"[{"pe": 4, "simd": 2}, {"pe": 1, "simd": 1}]"#)
        let bad = try runQForge(["compile", model, "-o", "bad", "--fold", "bad.json"], in: tmp)
        assertCleanFailure(bad, path: model, problem: ["layer fc0", "PE 4, SIMD 2 does not divide the layer"])
    }
}
