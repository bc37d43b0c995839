import Foundation
import HardwareTestSupport
import QForgeData
import QForgeEDA
import QForgeHardware
import QForgeInteger
import QForgeNN
import QForgeQuant
import QForgeReport
import TestSupport
import XCTest

/// The fully parallel style on real-shaped models in Verilator: `tfc` (784-64-64-64-10 with
/// BatchNorm) trained at w2a2 on Fashion-MNIST, and a `jet`-shaped (16-64-32-32-5) w4a4 integer
/// model with random numbers on random inputs (no jet data set on the build machines).
/// `QFORGE_TFC_SAMPLES` sets the test images simulated (default 1000), `QFORGE_TFC_EPOCHS` the
/// QAT epochs (default 1).
final class ParallelHardwareReleaseTests: XCTestCase {
    var environment: [String: String] { ProcessInfo.processInfo.environment }

    func testTFCW2A2ParallelIsBitExactOnFashionMNIST() throws {
        #if DEBUG
        throw XCTSkip(ReleaseTrainingTests.debugSkipMessage)
        #else
        try requireResource(Tool.verilator.isAvailable(), "verilator not found (Debian package verilator)")
        let (train, test) = try loadFashionMNISTOrSkip()
        let samples = Int(environment["QFORGE_TFC_SAMPLES"] ?? "") ?? 1000
        let epochs = Int(environment["QFORGE_TFC_EPOCHS"] ?? "") ?? 1
        var q = try quantize(try Model(Presets.description("tfc"), seed: 0), policy: .uniform(weightBits: 2, activationBits: 2))
        let r = try Trainer.train(&q, on: train, test: test, options: TrainingOptions(epochs: epochs, batchSize: 128, seed: 0, evaluateEachEpoch: false))
        let accuracy = try XCTUnwrap(r.final?.accuracy)
        XCTAssertGreaterThan(accuracy, 0.75, "tfc w2a2 after \(epochs) epochs")
        let integer = try q.integerModel()
        let images = test.subset(indices: Array(0..<samples)).inputs
        let vectors = TestVectors(model: integer, inputs: integer.quantizeInput(q.prepareInputs(images)), source: "fashion-mnist test set")
        let start = Date()
        let graph = try HardwareGraph.parallel(integer, argmax: false)
        let dir = try TemporaryDirectory()
        try HardwareDesign(graph, vectors: vectors, integerModel: integer).write(to: dir.path)
        let compileSeconds = Date().timeIntervalSince(start)
        XCTAssertEqual(try lint(directory: dir.path).map(\.description), [])
        let result = try simulate(directory: dir.path, simulator: .verilator)
        let report = result.report
        print(String(format: "tfc w2a2 (test accuracy %.4f) parallel: %d passed, %d failed; %d cycles/inference, latency %d; compile %.1f s, Verilator build %.1f s, run %.1f s",
                     accuracy, report.passed, report.failed, report.cyclesPerInference, report.latency, compileSeconds, result.buildSeconds, result.runSeconds))
        XCTAssertEqual(report.failed, 0, "\(report.failures.prefix(5))")
        XCTAssertEqual(report.passed, samples)
        XCTAssertEqual(report.cyclesPerInference, 1)
        XCTAssertEqual(report.latency, 4)
        #endif
    }

    func testJetShapedW4A4ParallelIsBitExactOnRandomInputs() throws {
        #if DEBUG
        throw XCTSkip(ReleaseTrainingTests.debugSkipMessage)
        #else
        try requireResource(Tool.verilator.isAvailable(), "verilator not found (Debian package verilator)")
        for (seed, argmax) in [(UInt64(5), false), (6, true)] {
            let model = jetShapedModel(seed: seed)
            XCTAssertEqual(model.layers.map(\.product.weights.shape), [[64, 16], [32, 64], [32, 32], [5, 32]])
            let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 2000, seed: seed), source: "random")
            // The hidden codes must not be constant, or the test would prove little.
            XCTAssertGreaterThan(Set(vectors.outputs.values).count, 100)
            let graph = try HardwareGraph.parallel(model, argmax: argmax)
            let dir = try TemporaryDirectory()
            try HardwareDesign(graph, vectors: vectors, integerModel: model).write(to: dir.path)
            XCTAssertEqual(try lint(directory: dir.path).map(\.description), [])
            let result = try simulate(directory: dir.path, simulator: .verilator)
            let report = result.report
            print(String(format: "jet-shaped w4a4 seed %d%@ parallel: %d passed, %d failed; %d cycles/inference, latency %d; Verilator build %.1f s, run %.1f s",
                         Int(seed), argmax ? " argmax" : "", report.passed, report.failed, report.cyclesPerInference, report.latency, result.buildSeconds, result.runSeconds))
            XCTAssertEqual(report.failed, 0, "\(report.failures.prefix(5))")
            XCTAssertEqual(report.passed, 2000)
            XCTAssertEqual(report.cyclesPerInference, 1)
            XCTAssertEqual(report.latency, argmax ? 5 : 4)
        }
        #endif
    }

    private func loadFashionMNISTOrSkip() throws -> (train: Dataset, test: Dataset) {
        do {
            return try DataCatalog.load(.init(name: "fashion-mnist"))
        } catch let e as DataError {
            if case .datasetNotFound = e { try requireResource(false, "Fashion-MNIST is not installed (\(e)); run 'make deps'") }
            throw e
        }
    }
}
