import Foundation
import QForgeData
import QForgeInteger
import QForgeNN
import QForgeQuant
import QForgeReport
import QForgeTensor
import TestSupport
import XCTest

/// Issue 7, acceptance 2: the Brevitas fixtures, imported, compile to folded Verilog and
/// simulate in Verilator bit-exact (every output accumulator against the integer model) on the
/// fixture's own 100 reference images; the accumulators the hardware must produce, read as
/// logits, give Brevitas' class on every image. Release mode only (Verilator builds and runs the designs).
final class QONNXHardwareTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/qonnx").path

    func testMLPW4A4SimulatesBitExactInVerilator() throws {
        #if DEBUG
        throw XCTSkip(ReleaseTrainingTests.debugSkipMessage)
        #else
        try compileAndSimulate("mlp_w4a4")
        #endif
    }

    func testMLPW8A8SimulatesBitExactInVerilator() throws {
        #if DEBUG
        throw XCTSkip(ReleaseTrainingTests.debugSkipMessage)
        #else
        try compileAndSimulate("mlp_w8a8")
        #endif
    }

    /// The convolutional fixture (three 3×3 convolutions, two max-pools, two dense layers):
    /// sliding windows with zero padding, pool units, the flatten reorder.
    func testCNNW4A4SimulatesBitExactInVerilator() throws {
        #if DEBUG
        throw XCTSkip(ReleaseTrainingTests.debugSkipMessage)
        #else
        try compileAndSimulate("cnn_w4a4")
        #endif
    }

    /// Raw little-endian values of a fixture array (`NAME.KIND.f32.bin` / `.i32.bin`).
    func fixtureWords(_ file: String) throws -> [UInt32] {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/\(file)"))
        return data.withUnsafeBytes { p in (0..<(data.count / 4)).map { UInt32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) } }
    }

    func compileAndSimulate(_ name: String) throws {
        let tmp = try TemporaryDirectory()
        let pixels = try fixtureWords("\(name).inputs.f32.bin").map(Float.init(bitPattern:))
        let brevitas = try fixtureWords("\(name).argmax.i32.bin").map { Int(Int32(bitPattern: $0)) }
        XCTAssertEqual(pixels.count, 100 * 784)
        XCTAssertEqual(brevitas.count, 100)
        try writeNpy(Tensor(shape: [100, 784], scalars: pixels), to: tmp.file("x.npy"))

        let imported = try runQForge(["import", "\(Self.fixtures)/\(name).qonnx.onnx", "-o", "m.safetensors"], in: tmp)
        XCTAssertEqual(imported.status, 0, "\(imported)")
        let compile = try runQForge(["compile", "m.safetensors", "-o", "build", "--input", "x.npy", "--json"], in: tmp, timeout: 900)
        XCTAssertEqual(compile.status, 0, "\(compile)")
        print(compile.stdout)
        XCTAssertEqual(try compile.jsonObject()["vectors"] as? Int, 100)
        XCTAssertTrue(compile.stdout.contains("vectors: 100 from x.npy"), "\(compile)")

        // The expected accumulators (the integer model's) pick Brevitas' class on every image.
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.file("build/manifest.json")))) as? [String: Any])
        let output = try XCTUnwrap(manifest["output"] as? [String: Any])
        let bits = try XCTUnwrap(output["value_bits"] as? Int)
        let words = try String(contentsOfFile: tmp.file("build/vectors/expected.hex"), encoding: .utf8)
            .split(separator: "\n").map { hex -> Int64 in
                let raw = Int64(UInt64(hex, radix: 16)! & ((1 << UInt64(bits)) - 1))
                return raw >= (1 << Int64(bits - 1)) ? raw - (1 << Int64(bits)) : raw
            }
        XCTAssertEqual(words.count, 100 * 10)
        // Through the last layer's epilogue (scales and float bias), as logits.
        let integer = try Model.loadAny(from: tmp.file("m.safetensors")).integerModel()
        let logits = integer.dequantized(AccTensor(shape: [100, 10], values: words))
        let classes = (0..<100).map { i -> Int in  // the first largest, as torch.argmax
            var best = 0
            for k in 1..<10 where logits[i * 10 + k] > logits[i * 10 + best] { best = k }
            return best
        }
        XCTAssertEqual(zip(classes, brevitas).filter { $0 != $1 }.count, 0, "argmax of the expected hardware outputs vs Brevitas")

        try requireResource(toolAvailable("verilator"), "verilator not found (Debian package verilator)")
        let sim = try runQForge(["sim", "build", "--simulator", "verilator", "--json"], in: tmp, timeout: 1800)
        print(sim.stdout)
        XCTAssertEqual(sim.status, 0, "\(sim)")
        XCTAssertTrue(sim.stdout.contains("verilator: 100 passed, 0 failed"), "\(sim)")
        let s = try sim.jsonObject()
        XCTAssertEqual(s["passed"] as? Int, 100)
        XCTAssertEqual(s["failed"] as? Int, 0)
        XCTAssertEqual(s["cycles_per_inference"] as? Int, s["expected_cycles_per_inference"] as? Int)
    }
}
