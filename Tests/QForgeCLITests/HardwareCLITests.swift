import Foundation
import HardwareTestSupport
import QForgeInteger
import TestSupport
import XCTest

/// `qforge compile`, `sim` and `lint` on a small integer model file.
final class HardwareCLITests: XCTestCase {
    func testCompileSimulateAndLint() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        let compile = try runQForge(["compile", model, "-o", "build", "--fold", "3x2,2x6", "--samples", "6", "--taps", "--json"], in: tmp)
        XCTAssertEqual(compile.status, 0, "\(compile)")
        XCTAssertTrue(compile.stdout.contains("vectors: 6 from random (seed 0), with taps after 1 layers"), "\(compile)")
        let c = try compile.jsonObject()
        XCTAssertEqual(c["vectors"] as? Int, 6)
        let expected = try XCTUnwrap(c["expected_cycles_per_inference"] as? Int)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("build/qf_l0_weights.coe")))
        // The first layer's 6 codes leave its unit 3 per word: 2 words per sample.
        XCTAssertEqual(try String(contentsOfFile: tmp.file("build/vectors/tap0.hex"), encoding: .utf8).split(separator: "\n").count, 12)
        let parallel = try runQForge(["compile", model, "-o", "p", "--style", "parallel", "--taps"], in: tmp)
        XCTAssertNotEqual(parallel.status, 0)
        XCTAssertTrue(parallel.stderr.contains("--taps checks the streams between the units of the folded style"), "\(parallel)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("p")))

        try requireResource(toolAvailable("iverilog") && toolAvailable("vvp"), "iverilog not found (Debian package iverilog)")
        let sim = try runQForge(["sim", "build", "--simulator", "icarus", "--json"], in: tmp)
        XCTAssertEqual(sim.status, 0, "\(sim)")
        XCTAssertTrue(sim.stdout.contains("icarus: 6 passed, 0 failed"), "\(sim)")
        let s = try sim.jsonObject()
        XCTAssertEqual(s["passed"] as? Int, 6)
        XCTAssertEqual(s["failed"] as? Int, 0)
        XCTAssertEqual(s["cycles_per_inference"] as? Int, expected)
        XCTAssertEqual(s["expected_cycles_per_inference"] as? Int, expected)

        try requireResource(toolAvailable("verilator"), "verilator not found (Debian package verilator)")
        let lint = try runQForge(["lint", "build"], in: tmp)
        XCTAssertEqual(lint.status, 0, "\(lint)")
        XCTAssertTrue(lint.stdout.contains("lint clean"), "\(lint)")
    }

    /// `qforge demo` end to end, small: magnetometer data, magnet-small for one epoch, 8-bit PTQ,
    /// the folded design, Icarus on 8 held-out samples. An existing design directory is refused
    /// before any training, and left as it was.
    func testDemoGoesThroughCompileAndSimulation() throws {
        let tmp = try TemporaryDirectory()
        try tmp.write("taken/notes.txt", text: "keep")
        let refused = try runQForge(["demo", "--samples", "2000", "--epochs", "1", "--build", "taken"], in: tmp)
        assertCleanFailure(refused, path: "taken", problem: ["exists", "--force"])
        XCTAssertEqual(try String(contentsOfFile: tmp.file("taken/notes.txt"), encoding: .utf8), "keep")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("magnet-small.safetensors")), "nothing trained before the refusal")

        try requireResource(toolAvailable("iverilog") && toolAvailable("vvp"), "iverilog not found (Debian package iverilog)")
        let demo = try runQForge(["demo", "--samples", "2000", "--epochs", "1", "--sim-samples", "8", "--simulator", "icarus",
                                  "--build", "design", "-o", "m.safetensors"], in: tmp, timeout: 900)
        XCTAssertEqual(demo.status, 0, "\(demo)")
        for step in ["== 1. train", "== 2. qforge quantize", "== 3. qforge compile", "== 4. qforge sim"] {
            XCTAssertTrue(demo.stdout.contains(step), "missing \(step): \(demo.stdout)")
        }
        XCTAssertTrue(demo.stdout.contains("icarus: 8 passed, 0 failed"), "\(demo)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("m-w8a8.safetensors")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("design/manifest.json")))
    }

    func testCompileRefusesANonEmptyDirectoryAndBadFolding() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        try tmp.write("build/notes.txt", text: "keep")
        let busy = try runQForge(["compile", model, "-o", "build"], in: tmp)
        assertCleanFailure(busy, path: "build", problem: ["not empty", "--force"])
        XCTAssertEqual(try runQForge(["compile", model, "-o", "build", "--force"], in: tmp).status, 0)

        let fold = try runQForge(["compile", model, "-o", "other", "--fold", "4x2,1x1"], in: tmp)
        assertCleanFailure(fold, path: model, problem: ["layer fc0", "PE 4, SIMD 2 does not divide the layer", "6 outputs"])
        let count = try runQForge(["compile", model, "-o", "other", "--fold", "1x1"], in: tmp)
        assertCleanFailure(count, path: "--fold", problem: ["lists 1 layers, the model has 2"])
    }

    func testArgmaxOutputAndDatasetVectors() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        let compile = try runQForge(["compile", model, "-o", "build", "--argmax", "--samples", "6"], in: tmp)
        XCTAssertEqual(compile.status, 0, "\(compile)")
        XCTAssertTrue(compile.stdout.contains("output: the argmax of 2 accumulators, 1 bits"), "\(compile)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("build/qf_argmax.v")))
        // The data set's samples must fit the model's input (4 features here, 27 magnetometer features).
        let data = try runQForge(["compile", model, "-o", "other", "--dataset", "magnetometer", "--samples", "3"], in: tmp)
        assertCleanFailure(data, path: model, problem: ["the model takes 4 features, magnetometer samples have 27"])

        try requireResource(toolAvailable("iverilog") && toolAvailable("vvp"), "iverilog not found (Debian package iverilog)")
        let sim = try runQForge(["sim", "build", "--simulator", "icarus"], in: tmp)
        XCTAssertEqual(sim.status, 0, "\(sim)")
        XCTAssertTrue(sim.stdout.contains("icarus: 6 passed, 0 failed"), "\(sim)")
    }

    func testSynthAsicAndUnits() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        XCTAssertEqual(try runQForge(["compile", model, "-o", "build", "--fold", "2x2,1x3", "--samples", "4"], in: tmp).status, 0)
        try requireResource(toolAvailable("yosys") && toolAvailable("sta") && toolAvailable("iverilog")
                            && FileManager.default.fileExists(atPath: "/usr/share/qflow/tech/osu018/osu018_stdcells.lib"),
                            "yosys, sta, iverilog or the OSU liberty not found (Debian packages yosys, opensta, iverilog, qflow)")
        let synth = try runQForge(["synth", "build", "--target", "asic", "--clock-mhz", "200", "--json"], in: tmp)
        XCTAssertEqual(synth.status, 0, "\(synth)")
        XCTAssertTrue(synth.stdout.contains("| small (qf_top) |"), "\(synth)")
        let s = try synth.jsonObject()
        XCTAssertGreaterThan(s["area_um2"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(s["cells"] as? Int ?? 0, 0)
        XCTAssertNotNil(s["slack_ns"] as? Double)
        XCTAssertNotNil(s["fmax_mhz"] as? Double)
        XCTAssertGreaterThan(s["power_mw"] as? Double ?? 0, 0)
        XCTAssertEqual(s["macs_per_inference"] as? Int, 36)
        XCTAssertNotNil(s["ops_per_watt"] as? Double)
        XCTAssertTrue(s["luts"] is NSNull)
        // The ROMs (weights 6 × 16 + 4 × 12 bits, and layer 0's thresholds) are counted, not synthesized.
        let bits = s["memory_bits"] as? Int ?? 0
        XCTAssertGreaterThan(bits, 6 * 16 + 4 * 12)
        XCTAssertTrue(synth.stdout.contains("ROMs: \(bits) bits (outside the asic figures: OSU 0.18 µm has no memory macros)"), "\(synth)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("build/synth-asic/report.json")))

        let units = try runQForge(["units", "mac", "--bits", "4,2", "--clock-ns", "2", "--vectors", "40", "-o", "units", "--json"], in: tmp)
        XCTAssertEqual(units.status, 0, "\(units)")
        XCTAssertTrue(units.stdout.contains("area ratios: 4-bit / 2-bit: "), "\(units)")
        let u = try units.jsonObject()
        let list = try XCTUnwrap(u["units"] as? [[String: Any]])
        XCTAssertEqual(list.map { $0["passed"] as? Int }, [40, 40])
        XCTAssertGreaterThan(list[0]["area_um2"] as? Double ?? 0, list[1]["area_um2"] as? Double ?? .infinity)
    }

    func testSynthAndUnitsRefuseBadInput() throws {
        let tmp = try TemporaryDirectory()
        let missing = try runQForge(["synth", "nowhere", "--target", "xilinx"], in: tmp)
        assertCleanFailure(missing, path: "nowhere", problem: ["no manifest.json", "qforge compile"])
        let clock = try runQForge(["synth", "nowhere", "--clock-mhz", "0"], in: tmp)
        XCTAssertNotEqual(clock.status, 0)
        XCTAssertTrue(clock.stderr.contains("--clock-mhz must be positive"), "\(clock)")
        let target = try runQForge(["synth", "nowhere", "--target", "asics"], in: tmp)
        XCTAssertNotEqual(target.status, 0)
        XCTAssertFalse(target.stderr.contains("Fatal error"), "\(target)")
        let bits = try runQForge(["units", "mac", "--bits", "40", "--no-synth"], in: tmp)
        assertCleanFailure(bits, path: "MAC", problem: ["40 bits is outside 1…32"])
        let list = try runQForge(["units", "dpu", "--n", "8,x"], in: tmp)
        XCTAssertNotEqual(list.status, 0)
        XCTAssertTrue(list.stderr.contains("--n must list positive integers"), "\(list)")
        let output = try runQForge(["units", "dpu", "--output", "mid"], in: tmp)
        XCTAssertNotEqual(output.status, 0)
        XCTAssertTrue(output.stderr.contains("'mid' is not full, msb or lsb"), "\(output)")
    }
}
