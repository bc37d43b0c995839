import Foundation
import HardwareTestSupport
import QForgeEDA
import QForgeHardware
import QForgeInteger
import QForgeTensor
import TestSupport
import XCTest

/// Layer taps (`qforge compile --taps`): the testbench checks the stream after every unit but
/// the last against the integer model and names each failed sample's first differing layer.
final class LayerTapTests: XCTestCase {
    /// A random three-layer model, simulated in Icarus with random stalls: the design as
    /// generated passes every sample; with the second unit's weights zeroed, the samples that
    /// fail name layer 1 (not 0); with one wrong word in the first tap file (the design right,
    /// its outputs right), exactly that sample fails and names layer 0.
    func testTapsNameTheFirstDifferingLayer() throws {
        try requireResource(Tool.iverilog.isAvailable() && Tool.vvp.isAvailable(), "iverilog/vvp not found (Debian package iverilog)")
        var seed: UInt64 = 300
        var model: IntegerModel
        repeat {
            var generator = RandomIntegerModel(seed: seed)
            model = generator.model(maxLayers: 3, maxSize: 12)
            seed += 1
        } while model.layers.count < 3
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 8, seed: seed), source: "random", taps: true)
        XCTAssertEqual(vectors.layerCodes?.count, 2)
        let graph = try HardwareGraph(model)
        let design = HardwareDesign(graph, vectors: vectors, integerModel: model)
        XCTAssertEqual(design.manifest.vectors.taps, ["vectors/tap0.hex", "vectors/tap1.hex"])
        XCTAssertEqual(design.files["vectors/tap1.hex"]?.split(separator: "\n").count, 8 * graph.units[1].outputWordsPerInference)
        let dir = try TemporaryDirectory()
        func simulateCopy(_ name: String, change: (String) throws -> Void) throws -> SimulationReport {
            let path = dir.file(name)
            try design.write(to: path)
            try change(path)
            return try simulate(directory: path, simulator: .icarus, options: SimulationOptions(seed: 3)).report
        }

        let clean = try simulateCopy("clean") { _ in }
        XCTAssertEqual(clean.passed, 8, "\(clean.failures)")
        XCTAssertEqual(clean.failed, 0, "\(clean.failures)")

        let zeroed = try simulateCopy("zeroed") { path in
            let rom = (path as NSString).appendingPathComponent(try XCTUnwrap(design.manifest.layers[1].weightMemory))
            let lines = try String(contentsOfFile: rom, encoding: .utf8).split(separator: "\n")
            try (lines.map { _ in "0" }.joined(separator: "\n") + "\n").write(toFile: rom, atomically: true, encoding: .utf8)
        }
        let named = zeroed.failures.filter { $0.contains("first differing layer") }
        // `failed` also counts the timing burst's samples; each sample of the run names its layer once.
        XCTAssertLessThan(zeroed.passed, 8)
        XCTAssertEqual(named.count, 8 - zeroed.passed, "\(zeroed.failures)")
        for line in named {
            XCTAssertTrue(line.hasSuffix("first differing layer 1 (\(graph.units[1].layerName))"), line)
        }

        let wrongTap = try simulateCopy("wrong-tap") { path in
            let file = (path as NSString).appendingPathComponent("vectors/tap0.hex")
            var lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init)
            let i = 3 * graph.units[0].outputWordsPerInference
            let last = try XCTUnwrap(Int(String(lines[i].last!), radix: 16))
            lines[i] = String(lines[i].dropLast()) + String(last ^ 1, radix: 16)
            try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        }
        XCTAssertEqual(wrongTap.passed, 7, "\(wrongTap.failures)")
        XCTAssertEqual(wrongTap.failed, 1, "\(wrongTap.failures)")
        XCTAssertEqual(wrongTap.failures, ["FAIL sample 3: first differing layer 0 (\(graph.units[0].layerName))"])
    }
}
