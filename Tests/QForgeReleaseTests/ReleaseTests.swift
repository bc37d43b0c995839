import Foundation
import QForgeData
import QForgeNN
import QForgeQuant
import QForgeReport
import TestSupport
import XCTest

/// Tests that train real models to reference quality. Too slow for debug builds, so each one
/// skips itself there; run them with
///
///     swift test -c release -Xswiftc -enable-testing --filter QForgeReleaseTests
///
/// (`make test` does.)
final class ReleaseTrainingTests: XCTestCase {
    static let debugSkipMessage = "release-mode test: run with swift test -c release -Xswiftc -enable-testing"

    /// Preset `mlp` (784-256-256-10) on the full Fashion-MNIST, with the recipe of the PyTorch
    /// reference (2.15, same init and data order: 0.888 test accuracy after 10 epochs).
    func testMLPFashionMNISTReachesPyTorchAccuracy() throws {
        #if DEBUG
        throw XCTSkip(Self.debugSkipMessage)
        #else
        let (train, test) = try loadFashionMNIST()
        XCTAssertEqual(train.count, 60_000)
        XCTAssertEqual(test.count, 10_000)
        var m = try Model(Presets.description("mlp"), seed: 0)
        let start = Date()
        let result = try Trainer.train(&m, on: train, test: test,
                                       options: TrainingOptions(epochs: 10, batchSize: 128, optimizer: .adam, learningRate: 1e-3,
                                                                seed: 0, evaluateEachEpoch: false))
        let seconds = Date().timeIntervalSince(start)
        let final = try result.final ?? m.evaluate(test)
        let accuracy = try XCTUnwrap(final.accuracy)
        print(String(format: "mlp on Fashion-MNIST: test accuracy %.4f, loss %.4f after %d epochs (%.0f s, %.0f samples/s)",
                     accuracy, final.loss, result.epochs.count, seconds, result.samplesPerSecond))
        XCTAssertGreaterThanOrEqual(accuracy, 0.885, "PyTorch reaches 0.888 with the same recipe")
        try checkQuantization(of: m, float: accuracy, train: train, test: test)
        #endif
    }

    /// From the trained float mlp: PTQ at w8a8 with each calibration method stays within 0.005
    /// of float; two epochs of QAT at w4a4 and of nested 8/4 training stay close to float.
    func checkQuantization(of float: Model, float accuracy: Double, train: Dataset, test: Dataset) throws {
        let order = train.batches(size: 128, shuffle: true, seed: 0, epoch: 0)
        let batches = (0..<16).map { float.prepareInputs(order[$0].inputs) }
        for method in CalibrationMethod.allCases {
            var policy = QuantPolicy.uniform(weightBits: 8, activationBits: 8)
            policy.meanScaleUpTo = 0
            var q = try quantize(float.copy(), policy: policy)
            _ = try calibrate(&q, batches: batches, options: CalibrationOptions(method: method))
            let a = try XCTUnwrap(q.evaluate(test).accuracy)
            print(String(format: "mlp PTQ w8a8 (%@): %.4f (float %.4f)", method.rawValue, a, accuracy))
            XCTAssertEqual(a, accuracy, accuracy: 0.005, "PTQ w8a8 with \(method)")
        }
        let options = TrainingOptions(epochs: 2, batchSize: 128, seed: 0, evaluateEachEpoch: false)
        var qat = try quantize(float.copy(), policy: .uniform(weightBits: 4, activationBits: 4))
        let r = try Trainer.train(&qat, on: train, test: test, options: options)
        let qatAccuracy = try XCTUnwrap(r.final?.accuracy)
        print(String(format: "mlp QAT w4a4, 2 epochs: %.4f (%.0f samples/s)", qatAccuracy, r.samplesPerSecond))
        XCTAssertGreaterThanOrEqual(qatAccuracy, 0.875)
        // Its integer model agrees on every code of every layer over the 10,000 test images.
        let report = try compare(qat, integer: try qat.integerModel(), on: test)
        print("mlp w4a4 integer model: \(report.outputMismatches) mismatches, \(report.float32TieFlips) float32 tie flips, "
              + String(format: "top-1 agreement %.4f, integer accuracy %.4f", report.top1Agreement ?? 0, report.integerAccuracy ?? 0))
        XCTAssertEqual(report.samples, 10_000)
        XCTAssertEqual(report.outputMismatches, 0)
        XCTAssertEqual(report.layers.reduce(0) { $0 + $1.float32OtherMismatches }, 0)
        XCTAssertEqual(report.integerAccuracy ?? 0, qatAccuracy, accuracy: 0.0005)
        var policy = QuantPolicy.uniform(weightBits: 8, activationBits: 8)
        policy.weights.nested = .init(innerBits: 4)
        var nested = try quantize(float.copy(), policy: policy)
        var nestedOptions = options
        nestedOptions.bothNestedViews = true
        _ = try Trainer.train(&nested, on: train, test: nil, options: nestedOptions)
        let outer = try XCTUnwrap(nested.evaluate(test).accuracy)
        let inner = try XCTUnwrap(LayerContext.withNestedView(true) { try nested.evaluate(test) }.accuracy)
        print(String(format: "mlp nested 8/4, 2 epochs: as 8-bit %.4f, as 4-bit %.4f", outer, inner))
        XCTAssertGreaterThanOrEqual(outer, 0.88)
        XCTAssertGreaterThanOrEqual(inner, 0.875)
    }

    /// Preset `magnet-small` on 20 000 generated magnetometer samples with `qforge demo`'s recipe
    /// (30 epochs, batch 128, Adam 1e-3, cosine schedule down to 1e-5, seed 0): every position
    /// output of the held-out set must reach R² ≥ 0.9.
    func testMagnetSmallRegressionR2() throws {
        #if DEBUG
        throw XCTSkip(Self.debugSkipMessage)
        #else
        let (train, test) = try DataCatalog.load(.init(name: "magnetometer", samples: 20_000))
        var m = try Model(Presets.description("magnet-small"), seed: 0)
        let epochs = 30
        let start = Date()
        let result = try Trainer.train(&m, on: train, test: test,
                                       options: TrainingOptions(epochs: epochs, batchSize: 128,
                                                                schedule: .cosine(epochs: epochs, minimum: 1e-5),
                                                                seed: 0, evaluateEachEpoch: false))
        let seconds = Date().timeIntervalSince(start)
        let e = try m.evaluate(test)
        let r2 = try XCTUnwrap(e.r2)
        let names = try XCTUnwrap(test.targetNames)
        XCTAssertEqual(names.prefix(3), ["x_cm", "y_cm", "z_cm"])
        print("magnet-small on magnetometer (\(train.count) train, \(test.count) held out, \(epochs) epochs, "
              + String(format: "%.0f s, %.0f samples/s): ", seconds, result.samplesPerSecond)
              + zip(names, r2).map { String(format: "R² %@ %.4f", $0, $1) }.joined(separator: ", "))
        for (name, value) in zip(names, r2).prefix(3) {
            XCTAssertGreaterThanOrEqual(value, 0.9, "R² of \(name) on the held-out set")
        }
        #endif
    }

    /// Fashion-MNIST from the default place (or $QFORGE_FASHION_MNIST): fails in CI when it is
    /// missing, skips elsewhere.
    private func loadFashionMNIST() throws -> (train: Dataset, test: Dataset) {
        do {
            return try DataCatalog.load(.init(name: "fashion-mnist"))
        } catch let e as DataError {
            if case .datasetNotFound = e {
                try requireResource(false, "Fashion-MNIST is not installed (\(e)); run 'make deps'")
            }
            throw e
        }
    }
}
