import Foundation
import QForgeData
import QForgeGraph
import QForgeInteger
import QForgeNN
@testable import QForgeQuant
import QForgeReport
import QForgeTensor
import TestSupport
import XCTest

/// Asymmetric (learned zero point) activation quantizers, from QAT to the integer model.
final class ZeroPointTests: XCTestCase {
    func testLearnedZeroPointCalibratesRoundsAndTrains() {
        var s = QuantizerSettings.activations(bits: 8)
        s.zeroPoint = .learned
        let q = Quantizer(s, calibrationBatches: 1)
        let x = Tensor(shape: [100_001], scalars: (0...100_000).map { -1 + 4 * Float($0) / 100_000 })
        let y = LayerContext.with(.training) { q(x.trackingGradients()) }
        // Percentiles 0.001 % and 99.999 % of −1…3: −0.99996 and 2.99996; 255 steps between.
        let scale = q.parameter!.value.item
        XCTAssertEqual(scale, 3.99992 / 255, accuracy: 1e-6)
        XCTAssertEqual(q.zeroPointParameter!.value.item, 0.99996 / scale, accuracy: 1e-3)  // 63.75
        XCTAssertEqual(q.zeroPoint.item, 64)
        // Every output is (code − 64) · scale with a code in 0…255.
        for v in y.scalars.prefix(2000) + y.scalars.suffix(2000) {
            let code = v / scale + 64
            XCTAssertEqual(code, code.rounded(), accuracy: 1e-3)
            XCTAssertTrue((-0.001...255.001).contains(code))
        }
        // The zero point learns from clamped values (their gradient is −scale each, as QONNX's
        // LSQ rule): −1…3 all round inside the grid, 2× that range does not.
        let wide = LayerContext.with(.training) { q(x * 2) }
        wide.sum().backward()
        XCTAssertLessThan(q.zeroPointParameter!.gradient?.item ?? 0, 0)
        var weights = QuantizerSettings.weights(bits: 4)
        weights.zeroPoint = .learned
        XCTAssertThrowsError(try weights.validate("w")) { XCTAssertEqual("\($0)", "w: a learned zero point needs a learned per-tensor scale (activation quantizers)") }
    }

    func testAsymmetricModelSavesAndStreamlinesExactly() throws {
        var rng = SeededRandom(seed: 11)
        let n = 200
        let xs = (0..<(n * 4)).map { _ in rng.uniform(-1, 3) }
        let labels = (0..<n).map { xs[$0 * 4] + xs[$0 * 4 + 1] > 2 ? 1 : 0 }
        let data = Dataset(name: "shifted", inputs: Tensor(shape: [n, 4], scalars: xs), targets: .classes(IntTensor(shape: [n], scalars: labels), classCount: 2))
        let float = try Model(ModelDescription(name: "zp", input: [4], layers: [.init(type: "Dense", out: 8), .init(type: "ReLU"), .init(type: "Dense", out: 2)]), seed: 3)
        var q = try quantize(float, policy: .uniform(weightBits: 4, activationBits: 4, zeroPoint: .learned))
        _ = try Trainer.train(&q, on: data, test: nil, options: TrainingOptions(epochs: 5, batchSize: 20, learningRate: 1e-2))
        let input = (q.network.layers[0] as! QuantIdentity).quantizer
        XCTAssertGreaterThan(input.zeroPoint.item, 40)  // −1…3 on 0…255: zero near 64
        let dir = try TemporaryDirectory()
        try q.save(to: dir.file("zp.safetensors"))
        XCTAssertEqual(try ModelFile.load(dir.file("zp.safetensors")).graph.quantizers["layers.0.q"]?.zeroPoint, [input.zeroPoint.item])
        let back = try Model.loadAny(from: dir.file("zp.safetensors"))
        XCTAssertEqual(back.predict(data.inputs).scalars, q.predict(data.inputs).scalars)
        let integer = try back.integerModel()
        XCTAssertEqual(integer.inputQuantizer.zeroPoint, Int(input.zeroPoint.item))
        XCTAssertNotNil(integer.layers[0].product.bias)  // −z·Σw
        for form in [RequantizationForm.thresholds] {
            let report = try compare(back, integer: try back.integerModel(options: StreamlineOptions(form: form)), on: data)
            XCTAssertEqual(report.outputMismatches, 0, "\(form)")
            XCTAssertEqual(report.top1Agreement, 1, "\(form)")
        }
        // Multiplier form: the output zero point is its offset; close but not necessarily exact.
        let multiplier = try compare(back, integer: try back.integerModel(options: StreamlineOptions(form: .multiplier)), on: data)
        XCTAssertLessThanOrEqual(multiplier.layers[0].maxStepDifference, 1)
    }

    func testThirtyTwoBitBiasesAreIntegersAtTheAccumulatorScale() throws {
        var rng = SeededRandom(seed: 12)
        let n = 120
        let xs = (0..<(n * 3)).map { _ in rng.uniform(0, 1) }
        let data = Dataset(name: "b", inputs: Tensor(shape: [n, 3], scalars: xs),
                           targets: .classes(IntTensor(shape: [n], scalars: (0..<n).map { xs[$0 * 3] > 0.5 ? 1 : 0 }), classCount: 2))
        let float = try Model(ModelDescription(name: "b", input: [3], layers: [.init(type: "Dense", out: 6), .init(type: "ReLU"), .init(type: "Dense", out: 2)]), seed: 2)
        var policy = QuantPolicy.uniform(weightBits: 4, activationBits: 4)
        policy.biasBits = 32
        var q = try quantize(float, policy: policy)
        _ = try Trainer.train(&q, on: data, test: nil, options: TrainingOptions(epochs: 3, batchSize: 20, learningRate: 1e-2))
        let dense = q.network.layers[3] as! QuantDense
        let relu = q.network.layers[2] as! QuantReLU
        XCTAssertTrue(dense.biasQuantizer?.input === relu.quantizer)
        // The effective bias over (input scale × weight scale) is an integer.
        let s = relu.quantizer.scaleValues(for: Tensor(zeros: [1]))[0] * dense.weightQuantizer.scaleValues(for: dense.dense.weight.value)[0]
        let effective = withoutGradients { dense(Tensor(zeros: [1, 6])) }  // zero input: y = bias
        for v in effective.scalars { XCTAssertEqual(v / s, (v / s).rounded(), accuracy: 1e-3) }
        let dir = try TemporaryDirectory()
        try q.save(to: dir.file("b.safetensors"))
        let (graph, _, _) = try ModelFile.load(dir.file("b.safetensors"))
        XCTAssertEqual(graph.nodes.filter { $0.name.hasSuffix("/bias_quant") }.map(\.name), ["layers.1/bias_quant", "layers.3/bias_quant"])
        let back = try Model.loadAny(from: dir.file("b.safetensors"))
        XCTAssertEqual(back.predict(data.inputs).scalars, q.predict(data.inputs).scalars)
        let report = try compare(back, integer: try back.integerModel(), on: data)
        XCTAssertEqual(report.outputMismatches, 0)
        // Logits agree to Float32 precision (a few 2-class logits are exact ties, which Float32
        // and Double may break differently, so top-1 agreement is not the measure here).
        XCTAssertLessThan(report.layers.last!.fakeQuantVsInteger.max, 1e-5)
        // A quantized bias needs a quantized input: not after a float BatchNorm.
        let bn = try Model(ModelDescription(name: "bn", input: [3], layers: [.init(type: "Dense", out: 4, bias: false), .init(type: "BatchNorm"),
                                                                             .init(type: "Dense", out: 2)]), seed: 1)
        XCTAssertThrowsError(try quantize(bn, policy: policy)) {
            XCTAssertEqual("\($0)", "layers.3: a quantized bias needs a quantized input (an activation quantizer right before the layer)")
        }
    }

    func testPTQCalibratesAZeroPointFromTheRange() throws {
        let float = try Model(ModelDescription(name: "p", input: [2], layers: [.init(type: "Dense", out: 3), .init(type: "ReLU"), .init(type: "Dense", out: 2)]), seed: 1)
        var q = try quantize(float, policy: .uniform(weightBits: 8, activationBits: 8, zeroPoint: .learned))
        let batch = Tensor(shape: [3, 2], scalars: [-2, 0, 1, 3, 0.5, 6])  // min −2, max 6
        _ = try calibrate(&q, batches: [batch], options: CalibrationOptions(method: .max))
        let input = (q.network.layers[0] as! QuantIdentity).quantizer
        XCTAssertEqual(input.parameter!.value.item, 8 / 255, accuracy: 1e-7)
        XCTAssertEqual(input.zeroPoint.item, 64)  // round(2 / (8/255)) = round(63.75)
    }
}
