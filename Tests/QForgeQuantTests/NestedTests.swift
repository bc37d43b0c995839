import Foundation
import QForgeData
@testable import QForgeQuant
import QForgeNN
import QForgeTensor
import TestSupport
import XCTest

final class NestedTests: XCTestCase {
    func testInnerCodesKeepTheSignAndAWindowOfMagnitudeBits() {
        let w2 = NestedWindow(outerBits: 8, innerBits: 4, shift: 2)
        XCTAssertEqual(w2.innerCode(45), 7)    // 0101101: bits 2…4 = 011 but bit 5 is set → saturate at 7
        XCTAssertEqual(w2.innerCode(-27), -6)  // 0011011 >> 2 = 110
        XCTAssertEqual(w2.innerCode(3), 0)     // below the window
        XCTAssertEqual(w2.innerCode(-31), -7)  // 0011111 >> 2 = 111
        let w4 = NestedWindow(outerBits: 8, innerBits: 4, shift: 4)
        XCTAssertEqual(w4.innerCode(127), 7)
        XCTAssertEqual(w4.innerCode(-16), -1)
        XCTAssertEqual(w4.innerCode(15), 0)
        XCTAssertEqual(w4.outerMax, 127)
        XCTAssertEqual(w4.innerMax, 7)
    }

    func testRoundingWindowsRoundHalfAwayFromZeroAtTheirLowestBit() {
        let w = NestedWindow(outerBits: 8, innerBits: 4, shift: 2, rounds: true)
        XCTAssertEqual(w.roundingTerm, 2)
        XCTAssertEqual([45, -27, 3, 5, 6, -2, 1, 29, 30].map(w.innerCode), [7, -7, 1, 1, 2, -1, 0, 7, 7])
        XCTAssertEqual(NestedWindow(outerBits: 8, innerBits: 4, shift: 0, rounds: true).innerCode(5), 5)  // nothing below bit 0
        // Gradient passes up to |q| = 29 ((29 + 2) >> 2 = 7) and stops at 30 (8: saturated).
        let x = Tensor(shape: [3], scalars: [29, 30, -6]).trackingGradients()
        let y = x.nestedFakeQuantized(scale: Tensor(shape: [1], scalars: [1]), window: w)
        XCTAssertEqual(y.scalars, [28, 28, -8])
        y.sum().backward()
        XCTAssertEqual(x.gradient?.scalars, [1, 0, 1])
    }

    func testNestedFakeQuantizationValuesAndStraightThroughGradient() {
        let window = NestedWindow(outerBits: 8, innerBits: 4, shift: 2)
        // scale 0.5: x/s = 45.2 → 45 → saturated 7 → 7·4·0.5 = 14; 12 → 3 → 6; −27 → −6 → −12;
        // 280 → clamped to 127 → 7 → 14; 1.2 → 2 → 0.
        let x = Tensor(shape: [5], scalars: [22.6, 6.0, -13.5, 140, 0.6])
        let tx = x.trackingGradients()
        let y = tx.nestedFakeQuantized(scale: Tensor(shape: [1], scalars: [0.5]), window: window)
        XCTAssertEqual(y.scalars, [14, 6, -12, 14, 0])
        // The gradient passes where the window is not saturated and the outer code not clamped.
        y.sum().backward()
        XCTAssertEqual(tx.gradient?.scalars, [0, 1, 1, 0, 1])
        // Per output channel scales: rows with their own scale.
        let rows = Tensor(shape: [2, 2], scalars: [4, -4, 4, -4])
        let r = rows.nestedFakeQuantized(scale: Tensor(shape: [2, 1], scalars: [1, 0.5]), window: NestedWindow(outerBits: 8, innerBits: 4, shift: 0))
        XCTAssertEqual(r.scalars, [4, -4, 3.5, -3.5])  // 4 → 4; 8 → saturated 7 → 3.5
    }

    func testWindowChoiceMinimisesTheSquaredError() {
        let q = Quantizer(QuantizerSettings(bitWidth: 8, signed: true, narrow: true, source: .maxAbs, nested: .init(innerBits: 4)))
        // Codes all below 8 fit the lowest window exactly; codes that are multiples of 16 fit shift 4.
        let small = Tensor(shape: [4], scalars: [127, 1, -3, 7].map { Float($0) / 127 })
        let errorsSmall = NestedWindow.squaredErrors(small, scale: Tensor(shape: [1], scalars: [1 / 127]), outerBits: 8, innerBits: 4, rounding: .round)
        XCTAssertEqual(errorsSmall.count, 5)
        let coarse = Tensor(shape: [4], scalars: [112, -16, 32, 48].map { Float($0) })
        XCTAssertEqual(q.bestNestedShift(coarse, scale: Tensor(shape: [1], scalars: [1])), 4)
        XCTAssertEqual(NestedWindow.squaredErrors(coarse, scale: Tensor(shape: [1], scalars: [1]), outerBits: 8, innerBits: 4, rounding: .round)[4], 0)
        let fine = Tensor(shape: [4], scalars: [7, -1, 3, -7])
        XCTAssertEqual(q.bestNestedShift(fine, scale: Tensor(shape: [1], scalars: [1])), 0)
        // Hand-computed: shift 1 on codes 7, −1, 3, −7 gives 6, 0, 2, −6: error 1 + 1 + 1 + 1.
        XCTAssertEqual(NestedWindow.squaredErrors(fine, scale: Tensor(shape: [1], scalars: [1]), outerBits: 8, innerBits: 4, rounding: .round)[1], 4)
    }

    func testNestedSettingsAreValidated() {
        var s = QuantizerSettings.weights(bits: 8)
        s.nested = .init(innerBits: 4, shift: 5)
        XCTAssertThrowsError(try s.validate("layers.0 weights")) {
            XCTAssertEqual("\($0)", "a nested 4-bit window at magnitude bits 5…7 lies outside the 7 magnitude bits (0…6) of a 8-bit sign-magnitude weight; the shift must be 0…4")
        }
        s.nested = .init(innerBits: 4, shift: 4)
        XCTAssertNoThrow(try s.validate("w"))
        s.nested = .init(innerBits: 8)
        XCTAssertThrowsError(try s.validate("w")) { XCTAssertEqual("\($0)", "w: a nested inner width of 8 bits must be 2…7 for 8-bit weights") }
        var a = QuantizerSettings.activations(bits: 8)
        a.nested = .init(innerBits: 4)
        XCTAssertThrowsError(try a.validate("a")) { XCTAssertTrue("\($0)".contains("signed narrow-range"), "\($0)") }
    }

    func testNestedTrainingImprovesBothViewsAndTheFileKeepsTheWindows() throws {
        var rng = SeededRandom(seed: 3)
        let n = 256
        var xs: [Float] = [], ys: [Int] = []
        for i in 0..<n {
            let c = i % 3
            xs += [rng.nextNormal() * 0.3 + Float(c), rng.nextNormal() * 0.3 + Float(2 - c)]
            ys.append(c)
        }
        let data = Dataset(name: "blobs", inputs: Tensor(shape: [n, 2], scalars: xs), targets: .classes(IntTensor(shape: [n], scalars: ys), classCount: 3))
        let float = try Model(ModelDescription(name: "n", input: [2], layers: [.init(type: "Dense", out: 16), .init(type: "ReLU"), .init(type: "Dense", out: 3)]), seed: 1)
        var policy = QuantPolicy.uniform(weightBits: 8, activationBits: 8)
        policy.weights.nested = .init(innerBits: 4)
        var q = try quantize(float, policy: policy)
        var options = TrainingOptions(epochs: 15, batchSize: 32, learningRate: 1e-2)
        options.bothNestedViews = true
        _ = try Trainer.train(&q, on: data, test: nil, options: options)
        let outer = try q.evaluate(data), inner = try LayerContext.withNestedView(true) { try q.evaluate(data) }
        XCTAssertGreaterThan(outer.accuracy!, 0.9)
        XCTAssertGreaterThan(inner.accuracy!, 0.9)
        // Inner weights are sign · m · 2^shift · s with m ≤ 7.
        let dense = q.network.layers[1] as! QuantDense
        let shift = try XCTUnwrap(dense.weightQuantizer.nestedShift)
        let s = dense.weightQuantizer.scaleValues(for: dense.dense.weight.value)[0]
        let innerW = LayerContext.withNestedView(true) { withoutGradients { dense.weightQuantizer(dense.dense.weight.value) } }
        for v in innerW.scalars {
            let m = v / (s * Float(1 << shift))
            XCTAssertEqual(m, m.rounded(), accuracy: 1e-4)
            XCTAssertLessThanOrEqual(abs(m), 7.0001)
        }
        let dir = try TemporaryDirectory()
        try q.save(to: dir.file("n.safetensors"))
        let back = try Model.loadAny(from: dir.file("n.safetensors"))
        XCTAssertEqual((back.network.layers[1] as! QuantDense).weightQuantizer.nestedShift, shift)
        XCTAssertEqual(LayerContext.withNestedView(true) { back.predict(data.inputs).scalars },
                       LayerContext.withNestedView(true) { q.predict(data.inputs).scalars })
        XCTAssertEqual(back.predict(data.inputs).scalars, q.predict(data.inputs).scalars)
    }
}
