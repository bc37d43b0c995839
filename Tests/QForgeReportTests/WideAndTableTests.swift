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

/// Seed 000's int32 fixed-point activations with power-of-two scales and 4-bit biases, and
/// seed 003's lookup-table activations, from QAT to an exact integer model.
final class WideAndTableTests: XCTestCase {
    /// Two inputs, two noisy regression targets.
    func regressionData(_ n: Int, seed: UInt64) -> Dataset {
        var rng = SeededRandom(seed: seed)
        let xs = (0..<(n * 2)).map { _ in rng.uniform(-3, 3) }
        let ys = (0..<n).flatMap { i -> [Float] in [xs[2 * i] - 0.5 * xs[2 * i + 1] + 1, max(xs[2 * i + 1], 0) - 0.25] }
        return Dataset(name: "r", inputs: Tensor(shape: [n, 2], scalars: xs), targets: .regression(Tensor(shape: [n, 2], scalars: ys)))
    }

    func testThirtyTwoBitPowerOfTwoActivationsStreamlineToShiftsExactly() throws {
        let data = regressionData(240, seed: 5)
        let float = try Model(ModelDescription(name: "w32", input: [2], task: .regression,
                                               layers: [.init(type: "Dense", out: 12), .init(type: "ReLU"), .init(type: "Dense", out: 8),
                                                        .init(type: "ReLU"), .init(type: "Dense", out: 2)]), seed: 4)
        var policy = QuantPolicy.uniform(weightBits: 4, activationBits: 32, powerOfTwo: true)
        policy.input?.bitWidth = 32
        policy.biasBits = 4
        policy.biasScaling = .own
        var q = try quantize(float, policy: policy)
        _ = try Trainer.train(&q, on: data, test: nil, options: TrainingOptions(epochs: 4, batchSize: 20, learningRate: 3e-3))
        // 32-bit activations are signed int32 grids (a ReLU keeps them ≥ 0).
        let relu = q.network.layers[2] as! QuantReLU
        XCTAssertEqual(relu.quantizer.settings.grid.minInt, -2_147_483_648)
        // Biases: 4-bit codes at their own power-of-two scale.
        let dense = q.network.layers[3] as! QuantDense
        let b = dense.dense.bias!.value.scalars
        let sb = dense.biasQuantizer!.scale(bias: b, weightScale: [1], channels: 1)[0]
        XCTAssertEqual(log2f(sb), log2f(sb).rounded())
        XCTAssertGreaterThanOrEqual(sb * 7, b.map(abs).max()!)

        let dir = try TemporaryDirectory()
        try q.save(to: dir.file("w32.safetensors"))
        let back = try Model.loadAny(from: dir.file("w32.safetensors"))
        XCTAssertEqual((back.network.layers[3] as! QuantDense).biasQuantizer?.scaling, .own)
        XCTAssertEqual(back.predict(data.inputs).scalars, q.predict(data.inputs).scalars)

        // The default form (thresholds) cannot hold 2^32 − 1 levels: hidden layers shift.
        let integer = try back.integerModel()
        XCTAssertEqual(integer.layers.map(\.requantization.formName), ["shift", "shift", "output"])
        XCTAssertEqual(integer.inputQuantizer.grid.bitWidth, 32)
        // 32-bit codes × 4-bit weights: accumulators beyond 32 bits, held exactly.
        XCTAssertGreaterThan(integer.layers[1].accumulatorBits, 32)
        guard case let .multiplyShift(m) = integer.layers[0].requantization else { return XCTFail("no shift") }
        XCTAssertEqual(m.lowest, 0)  // the ReLU on a signed grid
        XCTAssertTrue(m.multipliers.allSatisfy { $0 == 1 })
        // The 4-bit bias is an exact multiple of the accumulator unit: bias/(s_in·s_w) · s_in·s_w = bias.
        let sIn = Double(integer.layers[1].input.scale), sW = Double((back.network.layers[3] as! QuantDense).weightQuantizer
            .scaleValues(for: (back.network.layers[3] as! QuantDense).dense.weight.value)[0])
        let fakeBias = withoutGradients { back.network.layers[3](Tensor(zeros: [1, 12])) }.scalars
        for (c, r) in integer.layers[1].roundedBias!.enumerated() { XCTAssertEqual(Double(r) * sIn * sW, Double(fakeBias[c]), "channel \(c)") }

        let report = try compare(back, integer: integer, on: data)
        XCTAssertEqual(report.outputMismatches, 0)
        // Float32 cannot hold 32-bit codes exactly: the fake-quantized model's own sums differ
        // from the exact ones by many steps, always within their error bound.
        XCTAssertEqual(report.layers.map(\.float32OtherMismatches), [0, 0, 0])
        XCTAssertGreaterThan(report.layers[0].float32BoundedDifferences, 0)
        XCTAssertGreaterThan(report.layers[0].maxBoundedDifference, 1)
        XCTAssertLessThan(report.layers.last!.fakeQuantVsInteger.max, 1e-4)
        // Saved and loaded, the integer model is the same and runs the same.
        try IntegerModelFile.save(integer, to: dir.file("w32.int"))
        let loaded = try IntegerModelFile.load(dir.file("w32.int"))
        XCTAssertEqual(loaded, integer)
        let codes = integer.quantizeInput(back.prepareInputs(data.inputs))
        XCTAssertEqual(loaded.run(codes).outputs, integer.run(codes).outputs)
        // Inputs far outside the range clamp to the int32 extremes, never trap.
        let extreme = integer.quantizeInput(Tensor(shape: [1, 2], scalars: [1e30, -1e30]))
        XCTAssertEqual(extreme.values, [Int32.max, Int32.min])

        // Without power-of-two scales there is no exact form for 32-bit outputs: a clear error.
        var plain = policy
        plain.weights.powerOfTwo = false
        plain.activations.powerOfTwo = false
        plain.input?.powerOfTwo = false
        var p = try quantize(float, policy: plain)
        _ = try Trainer.train(&p, on: data, test: nil, options: TrainingOptions(epochs: 1, batchSize: 20, learningRate: 3e-3))
        XCTAssertThrowsError(try p.integerModel()) {
            XCTAssertTrue("\($0)".hasPrefix("node layers.2/act_quant: a 32-bit output needs 4294967295 thresholds per channel (at most 65535), so it requantizes with a shift, but the scale chain"), "\($0)")
            XCTAssertTrue("\($0)".hasSuffix("use the multiplier form, or train with power-of-two scales"), "\($0)")
        }
    }

    func testWideActivationQuantizersCalibrateWithHeadroom() throws {
        var s = QuantizerSettings.activations(bits: 32, powerOfTwo: true)
        s.signed = true
        let q = Quantizer(s, calibrationBatches: 3)
        for top: Float in [3, 5, 4] {
            _ = LayerContext.with(.training) { q(Tensor(shape: [3], scalars: [-1, 0.5, top])) }
        }
        // Twice the largest |x| seen (5) on 2^31 − 1 levels is 2^−27.68, rounded to the nearest
        // power of two 2^−28: the grid then reaches 8 > 5.
        XCTAssertEqual(q.scaleValues(for: Tensor(zeros: [1]))[0], exp2f(-28))
        var unsigned = QuantizerSettings.activations(bits: 32)
        XCTAssertThrowsError(try unsigned.validate("a", activation: true)) { XCTAssertTrue("\($0)".hasPrefix("a: an unsigned 32-bit grid does not fit int32 codes")) }
        unsigned.bitWidth = 33
        XCTAssertThrowsError(try unsigned.validate("a", activation: true)) { XCTAssertEqual("\($0)", "a: bit width 33 is outside 1...32") }
        let float = try Model(ModelDescription(name: "w", input: [2], layers: [.init(type: "Dense", out: 2)]), seed: 1)
        XCTAssertThrowsError(try quantize(float, policy: .uniform(weightBits: 17, activationBits: 8))) {
            XCTAssertEqual("\($0)", "layers.0 weights: bit width 17 is outside 1...16")
        }
    }

    func testSigmoidAndTanhBecomeExactLookupTables() throws {
        var rng = SeededRandom(seed: 21)
        let n = 300
        let xs = (0..<(n * 4)).map { _ in rng.uniform(-2, 2) }
        let labels = (0..<n).map { i -> Int in
            let product: Float = xs[4 * i] * xs[4 * i + 1]
            return product + xs[4 * i + 2] > 0 ? 1 : 0
        }
        let data = Dataset(name: "t", inputs: Tensor(shape: [n, 4], scalars: xs), targets: .classes(IntTensor(shape: [n], scalars: labels), classCount: 2))
        let float = try Model(ModelDescription(name: "lut", input: [4], layers: [
            .init(type: "Dense", out: 10), .init(type: "Sigmoid"), .init(type: "Dense", out: 8), .init(type: "Tanh"), .init(type: "Dense", out: 2),
        ]), seed: 6)
        var q = try quantize(float, policy: .uniform(weightBits: 4, activationBits: 6))
        _ = try Trainer.train(&q, on: data, test: nil, options: TrainingOptions(epochs: 4, batchSize: 25, learningRate: 1e-2))
        let sigmoid = try XCTUnwrap(q.network.layers[2] as? QuantTableActivation)
        XCTAssertEqual(sigmoid.quantizer.scaleValues(for: Tensor(zeros: [1]))[0], 1 / 63)
        let dir = try TemporaryDirectory()
        try q.save(to: dir.file("lut.safetensors"))
        let (graph, _, _) = try ModelFile.load(dir.file("lut.safetensors"))
        XCTAssertEqual(graph.nodes.filter { $0.name.hasPrefix("layers.2") }.map(\.op), [.quant, .sigmoid, .quant])
        let back = try Model.loadAny(from: dir.file("lut.safetensors"))
        XCTAssertEqual(back.predict(data.inputs).scalars, q.predict(data.inputs).scalars)

        for form in [RequantizationForm.thresholds, .multiplier] {
            let integer = try back.integerModel(options: StreamlineOptions(form: form))
            XCTAssertEqual(integer.layers.map(\.name), ["layers.2/act_quant", "layers.4/act_quant", "layers.5"])
            let lookup = try XCTUnwrap(integer.layers[0].lookup)
            XCTAssertEqual(lookup.table.codes.count, 64)  // one entry per signed 6-bit code
            XCTAssertEqual(lookup.table.lo, -32)
            // By hand: code q stands for q·s; sigmoid(q·s) / s′ rounded half to even, with the
            // output scale s′ = Float32(1/63).
            let s = lookup.input.scale, out = Double(Float(1) / 63)
            for code in [-32, -1, 0, 1, 31] {
                let expected = Int32((1 / (1 + exp(-Double(code) * s)) / out).rounded(.toNearestOrEven))
                XCTAssertEqual(lookup.table.apply(Int64(code)), expected, "code \(code)")
            }
            // sigmoid(0) = 0.5 is 31.4999998 steps of Float32(1/63), which is a little above 1/63.
            XCTAssertEqual(lookup.table.apply(Int64(0)), 31)
            let tanh = try XCTUnwrap(integer.layers[1].lookup)
            XCTAssertEqual(tanh.table.apply(Int64(0)), 0)
            for code in Int64(1)...31 { XCTAssertEqual(tanh.table.apply(-code), -tanh.table.apply(code), "tanh is odd, ties round to even: code \(code)") }
            let report = try compare(back, integer: integer, on: data)
            if form == .thresholds {
                XCTAssertEqual(report.outputMismatches, 0)
                XCTAssertEqual(report.layers.map(\.float32OtherMismatches), [0, 0, 0])
            }
            try IntegerModelFile.save(integer, to: dir.file("lut.int"))
            XCTAssertEqual(try IntegerModelFile.load(dir.file("lut.int")), integer)
        }
        // The multiplier form of the same model is close: at most one step on the table's input.
        let multiplier = try compare(back, integer: try back.integerModel(options: StreamlineOptions(form: .multiplier)), on: data)
        XCTAssertLessThan(multiplier.layers[0].fakeQuantVsInteger.max, 0.1)

        // A sigmoid wider than a table allows is refused when quantizing.
        XCTAssertThrowsError(try quantize(float, policy: .uniform(weightBits: 4, activationBits: 32))) {
            XCTAssertEqual("\($0)", "layers.1: a quantized sigmoid or tanh becomes a lookup table of 2^bits entries; use 2…16 activation bits, not 32")
        }
    }
}
