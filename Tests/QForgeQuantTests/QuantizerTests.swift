import Foundation
import QForgeData
import QForgeNN
import QForgeQuant
import QForgeTensor
import TestSupport
import XCTest

final class QuantizerTests: XCTestCase {
    func testSettingsValidation() {
        XCTAssertThrowsError(try QuantizerSettings.weights(bits: 0).validate("fc1 weights")) {
            XCTAssertEqual("\($0)", "fc1 weights: bit width 0 is outside 1...16")
        }
        XCTAssertThrowsError(try QuantizerSettings.weights(bits: 17).validate("fc1 weights")) {
            XCTAssertEqual("\($0)", "fc1 weights: bit width 17 is outside 1...16")
        }
        // 1-bit signed narrow has only the level 0.
        XCTAssertThrowsError(try QuantizerSettings.weights(bits: 1).validate("w")) { XCTAssertTrue("\($0)".contains("no positive level")) }
        XCTAssertNoThrow(try QuantizerSettings.activations(bits: 1).validate("a"))
    }

    func testWeightScaleFromMaxAbsPerTensorAndPerChannel() {
        let w = Tensor(shape: [2, 3], scalars: [0.7, -0.35, 0.1, 0.05, -0.2, 0.14])
        let q = Quantizer(.weights(bits: 4))
        XCTAssertEqual(q.scaleValues(for: w), [0.1])  // 0.7 / 7
        assertClose(q(w).scalars, [0.7, -0.4, 0.1, 0, -0.2, 0.1], accuracy: 1e-6)  // −3.5 → −4, 0.5 → 0 (half to even)
        let pc = Quantizer(.weights(bits: 4, perChannel: true))
        assertClose(pc.scaleValues(for: w), [0.1, 0.2 / 7], accuracy: 1e-7)
        // Power of two: 0.1 → 2^round(log2 0.1) = 2^-3.
        XCTAssertEqual(Quantizer(.weights(bits: 4, powerOfTwo: true)).scaleValues(for: w), [0.125])
    }

    func testLearnedActivationScaleCalibratesThenTrains() {
        let q = Quantizer(.activations(bits: 4), calibrationBatches: 2)
        let x = Tensor(shape: [1000], scalars: (0..<1000).map { Float($0) / 100 })  // |x| up to 9.99
        _ = LayerContext.with(.training) { q(x) }
        // The 99.999th percentile of 0…9.99 is 9.99; scale = 9.99 / 15.
        XCTAssertEqual(q.parameter!.value.item, 9.99 / 15, accuracy: 1e-4)
        _ = LayerContext.with(.training) { q(x * 0.5) }
        XCTAssertEqual(q.parameter!.value.item, (9.99 / 15 + 4.995 / 15) / 2, accuracy: 1e-4)
        // After calibration the scale is a trainable parameter with the LSQ gradient.
        let y = LayerContext.with(.training) { q(x) }
        XCTAssertEqual(q.batchesSeen, 2)
        y.sum().backward()
        XCTAssertNotNil(q.parameter!.gradient)
        // Inference does not calibrate.
        let before = q.parameter!.value.item
        _ = q(x * 3)
        XCTAssertEqual(q.parameter!.value.item, before)
    }

    func testPowerOfTwoLearnedScaleRoundsLog2() {
        let q = Quantizer(.activations(bits: 8, powerOfTwo: true), calibrationBatches: 1)
        let x = Tensor(shape: [4], scalars: [0, 1, 2, 3])
        _ = LayerContext.with(.training) { q(x) }
        // 3/255 → log2 ≈ −6.41 → scale 2^−6.
        XCTAssertEqual(q.scaleValues(for: x), [exp2f(-6)])
    }

    func testQuantizeSwapsLayersSharesWeightsAndChecksThePolicy() throws {
        let m = try Model(Presets.description("mlp"), seed: 0)
        let q = try quantize(m, policy: .uniform(weightBits: 4, activationBits: 4))
        XCTAssertEqual(q.network.layers.map { "\(type(of: $0))" },
                       ["QuantIdentity", "QuantDense", "QuantReLU", "QuantDense", "QuantReLU", "QuantDense"])
        XCTAssertTrue((q.network.layers[1] as! QuantDense).dense.weight === (m.network.layers[0] as! Dense).weight)
        var policy = QuantPolicy.uniform(weightBits: 4, activationBits: 4)
        policy.weightBits["layers.9"] = 2
        XCTAssertThrowsError(try quantize(m, policy: policy)) {
            XCTAssertEqual("\($0)", "policy names layer 'layers.9', which the model does not have (layers: layers.0, layers.1, layers.2, layers.3, layers.4)")
        }
        policy.weightBits = ["layers.2": 17]
        XCTAssertThrowsError(try quantize(m, policy: policy)) { XCTAssertEqual("\($0)", "layers.2 weights: bit width 17 is outside 1...16") }
        // Mixed precision by path: layers.0 keeps 8-bit weights.
        let mixed = try quantize(m, policy: QuantPolicy(weights: .weights(bits: 4), activations: .activations(bits: 4), weightBits: ["layers.0": 8]))
        XCTAssertEqual((mixed.network.layers[1] as! QuantDense).weightQuantizer.settings.bitWidth, 8)
        XCTAssertEqual((mixed.network.layers[3] as! QuantDense).weightQuantizer.settings.bitWidth, 4)
    }

    func testQuantizationAwareTrainingLearnsAndSavesAsQuantNodes() throws {
        var rng = SeededRandom(seed: 1)
        let n = 400
        var xs: [Float] = [], ys: [Int] = []
        for i in 0..<n {
            let c = i % 2
            xs += [rng.nextNormal() * 0.5 + (c == 0 ? -1 : 1) + 2, rng.nextNormal() * 0.5 + 2]
            ys.append(c)
        }
        let data = Dataset(name: "blobs", inputs: Tensor(shape: [n, 2], scalars: xs), targets: .classes(IntTensor(shape: [n], scalars: ys), classCount: 2))
        let float = try Model(ModelDescription(name: "t", input: [2], layers: [.init(type: "Dense", out: 8), .init(type: "ReLU"), .init(type: "Dense", out: 2)]), seed: 0)
        var q = try quantize(float, policy: .uniform(weightBits: 3, activationBits: 3))
        let r = try Trainer.train(&q, on: data, test: data, options: TrainingOptions(epochs: 20, batchSize: 32, learningRate: 1e-2))
        XCTAssertGreaterThan(r.final?.accuracy ?? 0, 0.95)
        // Every activation the quantized network computes sits on its 3-bit grid.
        let relu = q.network.layers[2] as! QuantReLU
        let s = relu.quantizer.parameter!.value.item
        let hidden = withoutGradients { Sequential(Array(q.network.layers[0...2]))(data.inputs) }
        for v in hidden.scalars { XCTAssertEqual((v / s).rounded(), v / s, accuracy: 1e-3); XCTAssertLessThanOrEqual(v / s, 7.001) }
        // Saved as QONNX-style Quant nodes and loaded back: the same outputs, bit for bit.
        let dir = try TemporaryDirectory()
        let path = dir.file("q.safetensors")
        try q.save(to: path)
        let back = try Model.loadAny(from: path)
        XCTAssertEqual(back.network.layers.map { "\(type(of: $0))" }, q.network.layers.map { "\(type(of: $0))" })
        XCTAssertEqual(back.predict(data.inputs).scalars, q.predict(data.inputs).scalars)
        // The float loader names what it cannot read.
        XCTAssertThrowsError(try Model.load(from: path)) { XCTAssertTrue("\($0)".contains("op Quant has no QForge layer"), "\($0)") }
    }
}

extension QuantizerTests {
    /// A convolutional model with per-channel power-of-two weights and power-of-two activations:
    /// the graph holds one Quant node per quantized value with its quantizer spec, and the model
    /// reloads to the same outputs and continues training.
    func testQuantizedConvModelRoundTripsThroughTheGraph() throws {
        let desc = ModelDescription(name: "qc", input: [1, 6, 6], layers: [
            .init(type: "Conv2d", out: 4, kernel: 3, padding: 1, bias: false), .init(type: "BatchNorm"), .init(type: "ReLU"),
            .init(type: "MaxPool2d", kernel: 2), .init(type: "Flatten"), .init(type: "Dense", out: 3),
        ])
        let float = try Model(desc, seed: 2)
        var q = try quantize(float, policy: .uniform(weightBits: 4, activationBits: 3, perChannel: true, powerOfTwo: true))
        let x = randomTensor([16, 1, 6, 6], seed: 3, low: 0, high: 1)
        let data = Dataset(name: "toy", inputs: x, targets: .classes(IntTensor(shape: [16], scalars: (0..<16).map { $0 % 3 }), classCount: 3))
        _ = try Trainer.train(&q, on: data, test: nil, options: TrainingOptions(epochs: 2, batchSize: 8))
        let (graph, tensors) = try q.lowered()
        XCTAssertEqual(graph.nodes.filter { $0.op == .quant }.map(\.name),
                       ["layers.0", "layers.1/weight_quant", "layers.3/act_quant", "layers.6/weight_quant"])
        let convScale = try XCTUnwrap(tensors["layers.1.weight_quant.scale"])
        XCTAssertEqual(convScale.shape, [4, 1, 1, 1])
        for v in convScale.scalars { XCTAssertEqual(exp2f(log2f(v).rounded()), v) }
        XCTAssertEqual(graph.quantizers["layers.3.act_quant.q"]?.bitWidth, 3)
        XCTAssertEqual(graph.quantizers["layers.1.weight_quant.q"]?.scale.count, 4)
        let dir = try TemporaryDirectory()
        try q.save(to: dir.file("qc.safetensors"))
        var back = try Model.loadAny(from: dir.file("qc.safetensors"))
        XCTAssertEqual(back.predict(x).scalars, q.predict(x).scalars)
        // Training continues from the file: the learned (log2) activation scale is a parameter again.
        XCTAssertTrue(back.network.namedParameters.map(\.0).contains("layers.3.act_quant.log2_scale"))
        let before = try back.evaluate(data).loss
        _ = try Trainer.train(&back, on: data, test: nil, options: TrainingOptions(epochs: 5, batchSize: 8, learningRate: 1e-2))
        XCTAssertLessThan(try back.evaluate(data).loss, before)
    }
}
