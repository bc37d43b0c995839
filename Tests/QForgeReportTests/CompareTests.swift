import Foundation
import QForgeData
import QForgeInteger
import QForgeNN
import QForgeQuant
import QForgeReport
import QForgeTensor
import TestSupport
import XCTest

/// A quantized convolutional model, trained briefly, streamlined and compared.
final class CompareTests: XCTestCase {
    func trainedModel(weightBits: Int = 4, activationBits: Int = 3, perChannel: Bool = true) throws -> (Model, Dataset) {
        let desc = ModelDescription(name: "qc", input: [1, 6, 6], layers: [
            .init(type: "Conv2d", out: 4, kernel: 3, padding: 1, bias: false), .init(type: "BatchNorm"), .init(type: "ReLU"),
            .init(type: "MaxPool2d", kernel: 2), .init(type: "Flatten"), .init(type: "Dense", out: 5), .init(type: "ReLU"),
            .init(type: "Dense", out: 3),
        ])
        let float = try Model(desc, seed: 2)
        var q = try quantize(float, policy: .uniform(weightBits: weightBits, activationBits: activationBits, perChannel: perChannel))
        let x = randomTensor([64, 1, 6, 6], seed: 3, low: 0, high: 1)
        let data = Dataset(name: "toy", inputs: x, targets: .classes(IntTensor(shape: [64], scalars: (0..<64).map { $0 % 3 }), classCount: 3))
        _ = try Trainer.train(&q, on: data, test: nil, options: TrainingOptions(epochs: 3, batchSize: 16))
        // A negative BatchNorm scale on channel 1 makes its epilogue decrease: streamlining must
        // negate that channel's weights.
        let bn = q.network.layers[2] as! BatchNorm
        var gamma = bn.gamma.value.scalars
        gamma[1] = -abs(gamma[1]) - 0.5
        bn.gamma.assign(Tensor(shape: [4], scalars: gamma))
        return (q, data)
    }

    func testIntegerModelMatchesTheFakeQuantizedModelOnEveryCode() throws {
        let (q, data) = try trainedModel()
        let integer = try q.integerModel()
        XCTAssertEqual(integer.layers.map(\.name), ["layers.3/act_quant", "layers.7/act_quant", "layers.8"])
        XCTAssertEqual(integer.layers[0].flipped, [false, true, false, false])
        let report = try compare(q, integer: integer, on: data, batchSize: 20)
        XCTAssertEqual(report.samples, 64)
        XCTAssertEqual(report.outputMismatches, 0)
        XCTAssertEqual(report.layers.map(\.float32OtherMismatches), [0, 0, 0])
        XCTAssertEqual(report.top1Agreement, 1)
        XCTAssertEqual(report.integerAccuracy, report.fakeQuantAccuracy)
        // Integer activations dequantize to the fake-quantized ones (Float32 rounding aside).
        for l in report.layers { XCTAssertLessThan(l.fakeQuantVsInteger.max, 1e-4, l.name) }
        // The float model (quantizers bypassed) differs, and the table says by how much.
        XCTAssertGreaterThan(report.layers[0].floatVsFakeQuant.max, 0)
        // Integer predictions evaluate like the fake-quantized model.
        let e = try evaluateInteger(q, integer: integer, on: data)
        XCTAssertEqual(e.accuracy, try q.evaluate(data).accuracy)
    }

    func testIntegerModelFileRoundTrips() throws {
        let (q, data) = try trainedModel()
        let dir = try TemporaryDirectory()
        for options in [StreamlineOptions(), StreamlineOptions(form: .multiplier, accumulatorBits: 12, overflow: .wrap)] {
            let integer = try q.integerModel(options: options)
            try IntegerModelFile.save(integer, to: dir.file("m.int"))
            let back = try IntegerModelFile.load(dir.file("m.int"))
            XCTAssertEqual(back, integer)
            let codes = integer.quantizeInput(q.prepareInputs(data.inputs))
            XCTAssertEqual(back.run(codes).outputs, integer.run(codes).outputs)
        }
        // A float model file is not an integer model.
        try q.save(to: dir.file("q.safetensors"))
        XCTAssertThrowsError(try IntegerModelFile.load(dir.file("q.safetensors"))) {
            XCTAssertTrue("\($0)".contains("is not an integer model"), "\($0)")
        }
    }

    func testBipolarWeightsSaveLoadAndStreamline() throws {
        let (q, data) = try trainedModel(weightBits: 1, activationBits: 2, perChannel: false)
        let conv = q.network.layers[1] as! QuantConv2d
        XCTAssertTrue(conv.weightQuantizer.settings.bipolar)
        // Every effective weight is ±mean|w|.
        let w = conv.conv.weight.value
        let mean = w.scalars.map(abs).reduce(0, +) / Float(w.count)
        for v in withoutGradients({ conv.weightQuantizer(w) }).scalars { XCTAssertEqual(abs(v), mean, accuracy: 1e-6) }
        let dir = try TemporaryDirectory()
        try q.save(to: dir.file("b.safetensors"))
        let back = try Model.loadAny(from: dir.file("b.safetensors"))
        XCTAssertEqual(back.predict(data.inputs).scalars, q.predict(data.inputs).scalars)
        let integer = try back.integerModel()
        XCTAssertEqual(Set(integer.layers[0].product.weights.values.map { abs($0) }), [1])
        let report = try compare(back, integer: integer, on: data)
        XCTAssertEqual(report.outputMismatches, 0)
        XCTAssertEqual(report.top1Agreement, 1)
    }

    func testAccumulatorBoundsAreExactAndCapsBehaveAsDefined() throws {
        let (q, _) = try trainedModel()
        let integer = try q.integerModel()
        let layer = integer.layers[1]  // Dense 36 → 5 on 3-bit codes 0…7
        let k = layer.product.weights.shape[1]
        XCTAssertEqual(k, 36)
        // The interval bound is reached by the extreme inputs and never exceeded by random ones.
        let (minimizing, maximizing) = IntegerOps.extremeInputs(weight: layer.product.weights, inputs: 0...7)
        for c in 0..<5 {
            let row = { (t: QTensor) in QTensor(shape: [1, k], values: Array(t.values[(c * k)..<((c + 1) * k)])) }
            XCTAssertEqual(IntegerOps.matmul(row(maximizing), weight: layer.product.weights).values[c], layer.accumulatorRange[c].upperBound)
            XCTAssertEqual(IntegerOps.matmul(row(minimizing), weight: layer.product.weights).values[c], layer.accumulatorRange[c].lowerBound)
        }
        var rng = SeededRandom(seed: 5)
        let random = QTensor(shape: [200, k], values: (0..<(200 * k)).map { _ in Int32(rng.uniform(0, 8)) })
        let acc = IntegerOps.matmul(random, weight: layer.product.weights)
        for (i, v) in acc.values.enumerated() { XCTAssertTrue(layer.accumulatorRange[i % 5].contains(v)) }
        XCTAssertEqual(layer.accumulatorBits, layer.accumulatorRange.map { IntegerOps.signedBitsNeeded(min: $0.lowerBound, max: $0.upperBound) }.max())
        // A cap below the exact width: saturation clamps, wrap keeps the low bits (the layer
        // max-pools and flattens its 4×6×6 input codes first).
        let pooledInput = QTensor(shape: [50, 4, 6, 6], values: (0..<(50 * 144)).map { _ in Int32(rng.uniform(0, 8)) })
        let exact = layer.accumulate(pooledInput)
        let capped = try q.integerModel(options: StreamlineOptions(accumulatorBits: 4, overflow: .saturate))
        XCTAssertEqual(capped.layers[1].accumulatorCap, AccumulatorCap(bits: 4, overflow: .saturate))
        XCTAssertEqual(capped.layers[1].accumulate(pooledInput).values, exact.values.map { min(max($0, -8), 7) })
        let wrapped = try q.integerModel(options: StreamlineOptions(accumulatorBits: 4, overflow: .wrap)).layers[1].accumulate(pooledInput)
        XCTAssertEqual(wrapped.values, exact.values.map { (($0 + 8) & 15) - 8 })
        XCTAssertNotEqual(wrapped.values, exact.values)
    }
}
