import QForgeTensor
import TestSupport
import XCTest

/// QONNX IntQuant semantics, exact values, and the straight-through gradients.
final class FakeQuantTests: XCTestCase {
    let one = Tensor(shape: [1], scalars: [1]), zero = Tensor(shape: [1], scalars: [0])

    func testIntegerRanges() {
        for (b, s, n, lo, hi) in [(1, false, false, 0, 1), (1, true, false, -1, 0), (2, true, true, -1, 1), (2, true, false, -2, 1),
                                  (3, true, true, -3, 3), (4, false, false, 0, 15), (4, false, true, 0, 14), (8, true, true, -127, 127),
                                  (8, true, false, -128, 127), (8, false, false, 0, 255), (16, true, false, -32768, 32767),
                                  (16, false, false, 0, 65535)] {
            let g = IntQuantGrid(bitWidth: b, signed: s, narrow: n)
            XCTAssertEqual([g.minInt, g.maxInt], [lo, hi], "bits \(b) signed \(s) narrow \(n)")
        }
    }

    func testEveryRoundingModeOnTiesAndNonTies() {
        let x = Tensor(shape: [8], scalars: [2.5, -2.5, 1.6, -1.4, 0.5, -0.5, 3.0, -3.0])
        let expected: [RoundingMode: [Float]] = [
            .round: [2, -2, 2, -1, 0, -0, 3, -3], .halfUp: [3, -3, 2, -1, 1, -1, 3, -3],
            .halfDown: [2, -2, 2, -1, 0, -0, 3, -3], .floor: [2, -3, 1, -2, 0, -1, 3, -3],
            .ceil: [3, -2, 2, -1, 1, -0, 3, -3], .down: [2, -2, 1, -1, 0, -0, 3, -3], .up: [3, -3, 2, -2, 1, -1, 3, -3],
        ]
        for mode in RoundingMode.allCases {
            let g = IntQuantGrid(bitWidth: 8, signed: true, rounding: mode)
            XCTAssertEqual(x.fakeQuantized(scale: one, zeroPoint: zero, grid: g).scalars, expected[mode], "\(mode)")
            XCTAssertEqual(x.quantizedIntegers(scale: one, zeroPoint: zero, grid: g), expected[mode]!.map { Int($0) }, "\(mode)")
        }
        XCTAssertEqual(RoundingMode(qonnxName: "half_even"), .round)
        XCTAssertNil(RoundingMode(qonnxName: "STOCHASTIC"))
    }

    func testTiesAtScaleAndClampingFarOutside() {
        // scale 0.25: x/scale = k + 0.5 exactly for these x.
        let s = Tensor(shape: [1], scalars: [0.25])
        let x = Tensor(shape: [6], scalars: [0.125, 0.375, -0.125, -0.375, 1e6, -1e6])
        let g4 = IntQuantGrid(bitWidth: 4, signed: true, narrow: true)
        XCTAssertEqual(x.quantizedIntegers(scale: s, zeroPoint: zero, grid: g4), [0, 2, 0, -2, 7, -7])
        XCTAssertEqual(x.fakeQuantized(scale: s, zeroPoint: zero, grid: g4).scalars, [0, 0.5, 0, -0.5, 1.75, -1.75])
        let u3 = IntQuantGrid(bitWidth: 3, signed: false, rounding: .halfUp)
        XCTAssertEqual(x.quantizedIntegers(scale: s, zeroPoint: zero, grid: u3), [1, 2, 0, 0, 7, 0])
        // 1 bit: unsigned {0, 1}, signed {−1, 0}.
        XCTAssertEqual(x.quantizedIntegers(scale: s, zeroPoint: zero, grid: IntQuantGrid(bitWidth: 1, signed: false)), [0, 1, 0, 0, 1, 0])
        XCTAssertEqual(x.quantizedIntegers(scale: s, zeroPoint: zero, grid: IntQuantGrid(bitWidth: 1, signed: true)), [0, 0, 0, -1, 0, -1])
        // 16 bits keeps fine steps.
        let fine = Tensor(shape: [2], scalars: [1.0 / 1024, -3.5 / 1024])
        XCTAssertEqual(fine.quantizedIntegers(scale: Tensor(shape: [1], scalars: [1.0 / 4096]), zeroPoint: zero,
                                              grid: IntQuantGrid(bitWidth: 16, signed: true)), [4, -14])
    }

    func testZeroPointAndPerChannelScales() {
        // Unsigned 8-bit with zero point 10: q = clamp(round(x/s) + 10, 0, 255), y = (q − 10)·s.
        let x = Tensor(shape: [3], scalars: [-1, 0.3, 100])
        let g8 = IntQuantGrid(bitWidth: 8, signed: false)
        let s = Tensor(shape: [1], scalars: [0.1]), z = Tensor(shape: [1], scalars: [10])
        XCTAssertEqual(x.quantizedIntegers(scale: s, zeroPoint: z, grid: g8), [0, 13, 255])
        assertClose(x.fakeQuantized(scale: s, zeroPoint: z, grid: g8).scalars, [-1, 0.3, 24.5], accuracy: 1e-6)
        // Per output channel of a [2, 3] weight: scales [1, 0.5] as [2, 1].
        let w = Tensor(shape: [2, 3], scalars: [1.2, -2.6, 9, 1.2, -2.6, 9])
        let sc = Tensor(shape: [2, 1], scalars: [1, 0.5])
        XCTAssertEqual(w.quantizedIntegers(scale: sc, zeroPoint: zero, grid: IntQuantGrid(bitWidth: 4, signed: true, narrow: true)),
                       [1, -3, 7, 2, -5, 7])
    }

    /// The straight-through surrogate of IntQuant at a base point: rounding offsets c = round(u) − u
    /// (u = x/s + z) and the clamped set are frozen, so F = x + s·c inside the range and
    /// s·(q − z) where clamped. Its finite differences are what STE/LSQ gradients must equal.
    func surrogate(_ x: [Float], _ s: [Float], _ z: Float, base: (x: [Float], s: [Float]), grid: IntQuantGrid,
                   channelOf: (Int) -> Int) -> [Double] {
        let lo = Float(grid.minInt), hi = Float(grid.maxInt)
        return x.indices.map { i in
            let c = channelOf(i)
            let u0 = base.x[i] / base.s[c] + z, r0 = grid.rounding.apply(u0)
            if r0 >= lo && r0 <= hi {
                return Double(x[i]) + Double(s[c]) * Double(r0 - u0)
            }
            return Double(s[c]) * Double(Swift.min(Swift.max(r0, lo), hi) - z)
        }
    }

    func testStraightThroughAndScaleGradientsAgainstFiniteDifferences() {
        // Per-channel scales of a [2, 4] tensor; some entries clamped at either end.
        let xs: [Float] = [0.33, -0.62, 1.14, 5.0, -0.07, 0.83, -4.4, 0.52], ss: [Float] = [0.2, 0.25]
        let x = Tensor(shape: [2, 4], scalars: xs), s = Tensor(shape: [2, 1], scalars: ss), z = Tensor(shape: [1], scalars: [0])
        let g = IntQuantGrid(bitWidth: 4, signed: true, narrow: true)
        let r: [Float] = [0.3, -1.2, 0.7, 1.1, -0.4, 0.9, 0.5, -0.8]
        let tx = x.trackingGradients(), ts = s.trackingGradients()
        tx.fakeQuantized(scale: ts, zeroPoint: z, grid: g).backward(seed: Tensor(shape: [2, 4], scalars: r))
        func loss(_ xv: [Float], _ sv: [Float]) -> Double {
            zip(surrogate(xv, sv, 0, base: (xs, ss), grid: g, channelOf: { $0 / 4 }), r).map { $0 * Double($1) }.reduce(0, +)
        }
        let h: Float = 1e-3
        for i in 0..<8 {
            var p = xs, m = xs
            p[i] += h; m[i] -= h
            XCTAssertEqual(tx.gradient!.scalars[i], Float((loss(p, ss) - loss(m, ss)) / Double(2 * h)), accuracy: 1e-3, "x[\(i)]")
        }
        for c in 0..<2 {
            var p = ss, m = ss
            p[c] += h; m[c] -= h
            XCTAssertEqual(ts.gradient!.scalars[c], Float((loss(xs, p) - loss(xs, m)) / Double(2 * h)), accuracy: 1e-2, "scale[\(c)]")
        }
        // The x gradient is exactly the STE mask times the seed: clamped at 5.0/0.2 = 25 and −4.4/0.25 = −17.6.
        XCTAssertEqual(tx.gradient?.scalars, [0.3, -1.2, 0.7, 0, -0.4, 0.9, 0, -0.8])
        // LSQ's scale gradient by hand for channel 1: Σ r·(q − x/s) inside + r·q clamped.
        let hand = [(-0.07, -0.4), (0.83, 0.9), (0.52, -0.8)].map { (xv: Double, rv: Double) -> Double in
            let u = xv / 0.25
            return rv * (u.rounded(.toNearestOrEven) - u)
        }.reduce(0, +) + 0.5 * -7
        XCTAssertEqual(Double(ts.gradient!.scalars[1]), hand, accuracy: 1e-4)
    }

    func testZeroPointGradientWhereClamped() {
        // Unsigned 4-bit, zero point 2: −0.93/0.2 + 2 = −2.65 → clamped at 0; 9.1/0.2 + 2 = 47.5 → clamped at 15.
        let x = Tensor(shape: [4], scalars: [-0.93, 0.31, 0.77, 9.1])
        let tz = Tensor(shape: [1], scalars: [2]).trackingGradients()
        x.fakeQuantized(scale: Tensor(shape: [1], scalars: [0.2]), zeroPoint: tz, grid: IntQuantGrid(bitWidth: 4, signed: false))
            .sum().backward()
        XCTAssertEqual(tz.gradient!.item, -0.4, accuracy: 1e-6)  // −s for each of the two clamped entries
    }
}

extension FakeQuantTests {
    /// The vectorised block path (per-tensor, per-channel on axis 0) against the general
    /// broadcasting path on the transposed problem, for every rounding mode and with lengths
    /// that are not multiples of the vector width.
    func testBlockPathMatchesGeneralPath() {
        for mode in RoundingMode.allCases {
            let x = randomTensor([5, 37], seed: 7, low: -3, high: 3)
            let s = Tensor(shape: [5, 1], scalars: [0.1, 0.25, 0.3, 0.05, 0.5]), z = Tensor(shape: [5, 1], scalars: [0, 1, -2, 3, 0])
            let grid = IntQuantGrid(bitWidth: 4, signed: true, narrow: false, rounding: mode)
            let seed = randomTensor([5, 37], seed: 8)
            let (tx, ts, tz) = (x.trackingGradients(), s.trackingGradients(), z.trackingGradients())
            let yBlock = tx.fakeQuantized(scale: ts, zeroPoint: tz, grid: grid)
            yBlock.backward(seed: seed)
            // Transposed: scale [1, 5] broadcasts along the last axis, which takes the general path.
            let (ux, us, uz) = (x.T.trackingGradients(), s.reshaped(to: [1, 5]).trackingGradients(), z.reshaped(to: [1, 5]).trackingGradients())
            let yGeneral = ux.fakeQuantized(scale: us, zeroPoint: uz, grid: grid)
            yGeneral.backward(seed: seed.T)
            XCTAssertEqual(yBlock.scalars, yGeneral.T.scalars, "\(mode)")
            XCTAssertEqual(tx.gradient!.scalars, ux.gradient!.T.scalars, "\(mode)")
            assertClose(ts.gradient!.scalars, us.gradient!.scalars, accuracy: 1e-4)
            assertClose(tz.gradient!.scalars, uz.gradient!.scalars, accuracy: 1e-4)
            XCTAssertEqual(yBlock.scalars.map { $0 }, x.fakeQuantized(scale: s, zeroPoint: z, grid: grid).scalars)
        }
    }
}

extension FakeQuantTests {
    func testBipolarValuesAndClippedStraightThroughGradient() {
        let x = Tensor(shape: [2, 3], scalars: [0.3, -0.1, 0, -2, 0.5, 1.5]).trackingGradients()
        // Row scales 0.5 and 1: x ≥ 0 → +s, else −s.
        let y = x.bipolarQuantized(scale: Tensor(shape: [2, 1], scalars: [0.5, 1]))
        XCTAssertEqual(y.scalars, [0.5, -0.5, 0.5, -1, 1, 1])
        y.sum().backward()
        // Passes where |x| ≤ scale: 0.3, −0.1, 0 (row 0); 0.5 (row 1); not −2 or 1.5.
        XCTAssertEqual(x.gradient?.scalars, [1, 1, 1, 0, 1, 0])
    }
}
