import Foundation
import HardwareTestSupport
import QForgeInteger
import TestSupport
import XCTest

/// `qforge compile`, `sim` and `lint` on a small integer model file.
final class HardwareCLITests: XCTestCase {
    func writeModel(_ tmp: TemporaryDirectory) throws -> String {
        let path = tmp.file("small.int")
        try IntegerModelFile.save(smallDenseModel(), to: path)
        return path
    }

    func toolAvailable(_ name: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/\(name)")
        }
    }

    func testCompileSimulateAndLint() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        let compile = try runQForge(["compile", model, "-o", "build", "--fold", "3x2,2x6", "--samples", "6", "--json"], in: tmp)
        XCTAssertEqual(compile.status, 0, "\(compile)")
        let c = try compile.jsonObject()
        XCTAssertEqual(c["vectors"] as? Int, 6)
        let expected = try XCTUnwrap(c["expected_cycles_per_inference"] as? Int)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("build/qf_l0_weights.coe")))

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
}
