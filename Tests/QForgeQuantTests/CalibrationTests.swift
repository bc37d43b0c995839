import Foundation
import QForgeData
@testable import QForgeQuant
import QForgeNN
import QForgeTensor
import TestSupport
import XCTest

final class CalibrationTests: XCTestCase {
    /// Dense(3 → 4) → ReLU → Dense(4 → 2) with fixed weights, and two calibration batches.
    func tinyModel() throws -> (Model, [Tensor]) {
        let float = try Model(ModelDescription(name: "t", input: [3], layers: [
            .init(type: "Dense", out: 4), .init(type: "ReLU"), .init(type: "Dense", out: 2),
        ]), seed: 4)
        let batches = [randomTensor([32, 3], seed: 1, low: 0, high: 1), randomTensor([32, 3], seed: 2, low: 0, high: 2)]
        return (float, batches)
    }

    func testMaxCalibrationSetsScalesFromTheLargestValueSeen() throws {
        let (float, batches) = try tinyModel()
        var q = try quantize(float, policy: .uniform(weightBits: 8, activationBits: 4))
        let report = try calibrate(&q, batches: batches, options: CalibrationOptions(method: .max))
        // Input quantizer: max over both batches of |x| / 255; the ReLU's: max of relu(x·Wqᵀ + b) / 15
        // with the 8-bit weights Wq = round(w / s)·s, s = max|w| / 127 (activations pass unquantized
        // while statistics are collected, weights are quantized).
        let inputMax = batches.flatMap(\.scalars).map(abs).max()!
        let dense = float.network.layers[0] as! Dense
        let s = dense.weight.value.scalars.map(abs).max()! / 127
        let wq = Tensor(shape: dense.weight.value.shape, scalars: dense.weight.value.scalars.map { ($0 / s).rounded(.toNearestOrEven) * s })
        let hiddenMax = batches.flatMap { b in withoutGradients { Tensor.linear(b, weight: wq, bias: dense.bias!.value).relu() }.scalars }.max()!
        let scales = Dictionary(uniqueKeysWithValues: report.scales.map { ($0.0, $0.1) })
        XCTAssertEqual(try XCTUnwrap(scales["layers.0.act_quant"])[0], inputMax / 255, accuracy: 1e-7)
        XCTAssertEqual(try XCTUnwrap(scales["layers.2.act_quant"])[0], hiddenMax / 15, accuracy: 1e-7)
        let w = (float.network.layers[0] as! Dense).weight.value
        XCTAssertEqual(try XCTUnwrap(scales["layers.1.weight_quant"])[0], w.scalars.map(abs).max()! / 127, accuracy: 1e-8)
        // Calibrated scales are final: training-phase calls do not recalibrate them.
        let relu = q.network.layers[2] as! QuantReLU
        _ = LayerContext.with(.training) { relu.quantizer(Tensor(repeating: 100, shape: [4])) }
        XCTAssertEqual(relu.quantizer.parameter!.value.item, hiddenMax / 15, accuracy: 1e-7)
    }

    func testPercentileIsTheRequestedOrderStatistic() {
        // 1…10000: the 99.99th percentile sits at index round(0.9999 · 9999) = 9998 → 9999.
        let x = Tensor(shape: [10_000], scalars: (1...10_000).map { Float($0) }.shuffled())
        XCTAssertEqual(percentileAbs(x, 0.9999), 9999)
        XCTAssertEqual(percentileAbs(x, 0.5), 5001)  // index round(4999.5) = 5000 (ties away from zero)
    }

    func testQuickselectAgreesWithSorting() {
        var rng = SeededRandom(seed: 9)
        for n in [1, 2, 3, 7, 100, 1000] {
            for _ in 0..<5 {
                // Few distinct values, so duplicates of the pivot are common.
                let v = (0..<n).map { _ in Float(Int(rng.uniform(0, 6))) }
                let sorted = v.sorted()
                for k in Set([0, n / 2, n - 1]) {
                    var copy = v
                    XCTAssertEqual(select(&copy, k), sorted[k], "n \(n) k \(k)")
                }
            }
        }
    }

    func testMSEScaleIsExactOnGridValuesAndClipsOutliers() {
        let settings = QuantizerSettings.activations(bits: 2)  // levels 0…3
        // Values on the grid 0, 1, 2, 3: the scale 1 quantizes them with no error.
        let onGrid = (0..<400).map { Float($0 % 4) }
        XCTAssertEqual(mseOptimalScale(onGrid, maxAbs: 3, settings: settings), 1)
        // 999 ones and one outlier at 20: max/3 rounds every 1 to 0 (error 999); a scale near 1
        // clips the outlier to 3 instead (error 17² = 289).
        let outlier = [Float](repeating: 1, count: 999) + [20]
        let s = mseOptimalScale(outlier, maxAbs: 20, settings: settings)
        func error(_ s: Float) -> Float { outlier.reduce(0) { e, x in let q = min(max((x / s).rounded(), 0), 3) * s; return e + (q - x) * (q - x) } }
        XCTAssertEqual(s, 1.0667, accuracy: 0.001)  // 999·(1.0667 − 1)² + (20 − 3.2)² = 286.7 < 289
        XCTAssertLessThan(error(s), error(20 / 3))
    }

    func testMSECalibrationGivesFixedPerChannelWeightScalesThatSaveAndLoad() throws {
        let (float, batches) = try tinyModel()
        var q = try quantize(float, policy: .uniform(weightBits: 3, activationBits: 4, perChannel: true))
        _ = try calibrate(&q, batches: batches, options: CalibrationOptions(method: .mse))
        let dense = q.network.layers[1] as! QuantDense
        XCTAssertEqual(dense.weightQuantizer.settings.source, .fixed)
        XCTAssertEqual(dense.weightQuantizer.fixedScale?.shape, [4, 1])
        // Each channel's scale is no larger than max|w_c| / 3 (MSE never picks beyond the range).
        let w = dense.dense.weight.value
        for c in 0..<4 {
            let m = (0..<3).map { abs(w.scalars[c * 3 + $0]) }.max()!
            XCTAssertLessThanOrEqual(dense.weightQuantizer.fixedScale!.scalars[c], m / 3 * 1.0001)
        }
        // A quantized bias survives the swap to fixed weight scales, still linked to its input.
        var withBias = QuantPolicy.uniform(weightBits: 3, activationBits: 4, perChannel: true)
        withBias.biasBits = 32
        var qb = try quantize(float, policy: withBias)
        _ = try calibrate(&qb, batches: batches, options: CalibrationOptions(method: .mse))
        let denseB = qb.network.layers[1] as! QuantDense
        XCTAssertEqual(denseB.weightQuantizer.settings.source, .fixed)
        XCTAssertTrue(denseB.biasQuantizer?.input === (qb.network.layers[0] as! QuantIdentity).quantizer)
        let dir = try TemporaryDirectory()
        try q.save(to: dir.file("ptq.safetensors"))
        let back = try Model.loadAny(from: dir.file("ptq.safetensors"))
        XCTAssertEqual(back.predict(batches[1]).scalars, q.predict(batches[1]).scalars)
    }

    func testBiasCorrectionRemovesTheMeanErrorOfTheFirstLayer() throws {
        let (float, batches) = try tinyModel()
        let original = (float.network.layers[0] as! Dense).bias!.value.scalars
        var q = try quantize(float, policy: .uniform(weightBits: 2, activationBits: 8))
        let report = try calibrate(&q, batches: batches, options: CalibrationOptions(method: .max, biasCorrection: true))
        XCTAssertEqual(report.biasCorrected, ["layers.1", "layers.3"])
        // For the first weight layer, the mean over the calibration data of the quantized layer's
        // output equals the mean of the float layer with the original bias.
        let quantLayer = q.network.layers[1] as! QuantDense
        let inputQuant = q.network.layers[0]
        var meanQ = [Double](repeating: 0, count: 4), meanF = [Double](repeating: 0, count: 4)
        var n = 0
        for b in batches {
            let x = withoutGradients { inputQuant(b) }
            let yq = withoutGradients { quantLayer(x) }
            let yf = withoutGradients { Tensor.linear(x, weight: quantLayer.dense.weight.value, bias: Tensor(shape: [4], scalars: original)) }
            for r in 0..<x.shape[0] {
                for c in 0..<4 { meanQ[c] += Double(yq.scalars[r * 4 + c]); meanF[c] += Double(yf.scalars[r * 4 + c]) }
            }
            n += x.shape[0]
        }
        for c in 0..<4 { XCTAssertEqual(meanQ[c] / Double(n), meanF[c] / Double(n), accuracy: 1e-5) }
        XCTAssertNotEqual(quantLayer.dense.bias!.value.scalars, original)
    }

    func testBiasCorrectionOfABiasFreeConvGoesIntoItsBatchNorm() throws {
        let float = try Model(ModelDescription(name: "c", input: [1, 5, 5], layers: [
            .init(type: "Conv2d", out: 3, kernel: 3, padding: 1, bias: false), .init(type: "BatchNorm"), .init(type: "ReLU"),
            .init(type: "Flatten"), .init(type: "Dense", out: 2, bias: false),
        ]), seed: 6)
        let bn = float.network.layers[1] as! BatchNorm
        bn.runningVariance.value = Tensor(shape: [3], scalars: [0.25, 1, 4])
        bn.gamma.assign(Tensor(shape: [3], scalars: [1, 2, -1]))
        let batches = [randomTensor([16, 1, 5, 5], seed: 8, low: 0, high: 1)]
        let originalBeta = bn.beta.value.scalars
        var q = try quantize(float, policy: .uniform(weightBits: 2, activationBits: 8))
        let report = try calibrate(&q, batches: batches, options: CalibrationOptions(method: .max, biasCorrection: true))
        XCTAssertEqual(report.biasCorrected, ["layers.1 (through layers.2)"])
        XCTAssertEqual(report.biasSkipped, ["layers.5"])
        // The BatchNorm output's channel means now match those of the float-weight conv with the old shift.
        let x = withoutGradients { q.network.layers[0](batches[0]) }
        let conv = q.network.layers[1] as! QuantConv2d
        let (scale, _) = bn.inferenceAffine()
        for c in 0..<3 {
            func mean(_ t: Tensor) -> Double {
                var s = 0.0
                for b in 0..<16 { for j in 0..<25 { s += Double(t.scalars[(b * 3 + c) * 25 + j]) } }
                return s / 400
            }
            let quantized = withoutGradients { conv(x) }, reference = withoutGradients { conv.conv(x) }
            let expected = mean(reference) * Double(scale[c]) + Double(originalBeta[c]) - Double(bn.runningMean.value.scalars[c]) * Double(scale[c])
            let got = mean(quantized) * Double(scale[c]) + Double(bn.beta.value.scalars[c]) - Double(bn.runningMean.value.scalars[c]) * Double(scale[c])
            XCTAssertEqual(got, expected, accuracy: 1e-5, "channel \(c)")
        }
    }

    func testCalibrationRejectsNoDataAndBadScales() throws {
        let (float, _) = try tinyModel()
        var q = try quantize(float, policy: .uniform(weightBits: 8, activationBits: 8))
        XCTAssertThrowsError(try calibrate(&q, batches: [], options: CalibrationOptions(method: .max))) {
            XCTAssertEqual("\($0)", "calibration needs at least one batch of data")
        }
        let relu = q.network.layers[2] as! QuantReLU
        for bad: Float in [0, -1, .nan, .infinity] {
            XCTAssertThrowsError(try relu.quantizer.setLearnedScale(bad)) {
                XCTAssertEqual("\($0)", "calibrated scale: scale \(bad) must be a positive finite number")
            }
        }
    }
}
