import QForgeInteger
import QForgeTensor
import XCTest

/// Accumulator width (wrap / saturate), output truncation, and the interval analysis that
/// sizes accumulators.
final class AccumulatorTests: XCTestCase {
    func testWrapAndSaturateAtEightBits() {
        let inputs: [Int64] = [5, 127, 128, 255, 256, -128, -129, -300, 1000]
        XCTAssertEqual(inputs.map(AccumulatorCap(bits: 8, overflow: .wrap).apply), [5, 127, -128, -1, 0, -128, 127, -44, -24])
        XCTAssertEqual(inputs.map(AccumulatorCap(bits: 8, overflow: .saturate).apply), [5, 127, 127, 127, 127, -128, -128, -128, 127])
        XCTAssertEqual(AccumulatorCap(bits: 8, overflow: .wrap).range, -128...127)
    }

    func testTwoAnd64BitAccumulators() {
        let inputs: [Int64] = [-3, -2, 1, 2, 3, 5]
        XCTAssertEqual(inputs.map(AccumulatorCap(bits: 2, overflow: .wrap).apply), [1, -2, 1, -2, -1, 1])
        XCTAssertEqual(inputs.map(AccumulatorCap(bits: 2, overflow: .saturate).apply), [-2, -2, 1, 1, 1, 1])
        for mode in OverflowMode.allCases {
            XCTAssertEqual([Int64.min, -1, Int64.max].map(AccumulatorCap(bits: 64, overflow: mode).apply), [Int64.min, -1, Int64.max])
        }
        let tensor = AccTensor(shape: [1, 3], values: [40, -40, 7])
        XCTAssertEqual(AccumulatorCap(bits: 5, overflow: .wrap).apply(tensor).values, [8, -8, 7])
        XCTAssertEqual(AccumulatorCap(bits: 5, overflow: .saturate).apply(tensor).values, [15, -16, 7])
    }

    func testWrapOfTheExactSumEqualsAnEightBitAdderInAnyOrder() {
        // 100 + 100 − 50 + 90 = 240 ≡ −16 (mod 256); an Int8 adder wrapping at every step agrees.
        XCTAssertEqual(AccumulatorCap(bits: 8, overflow: .wrap).apply(240), -16)
        var rng = SeededRandom(seed: 5)
        for _ in 0..<50 {
            var terms = (0..<20).map { _ in Int8.random(in: -128...127, using: &rng) }
            let exact = terms.reduce(Int64(0)) { $0 + Int64($1) }
            for _ in 0..<3 {
                terms.shuffle(using: &rng)
                let adder = terms.reduce(Int8(0)) { $0 &+ $1 }
                XCTAssertEqual(AccumulatorCap(bits: 8, overflow: .wrap).apply(exact), Int64(adder))
            }
        }
    }

    func testOutputTruncation() {
        let eightBit: [Int64] = [127, -128, -1, 100, -100, 3, 8, -9]
        XCTAssertEqual(eightBit.map { OutputTruncation.full.apply($0, width: 8) }, eightBit)
        // Keep the top 4 of 8 bits: ⌊v / 16⌋.
        XCTAssertEqual(eightBit.map { OutputTruncation.keepMSBs(4).apply($0, width: 8) }, [7, -8, -1, 6, -7, 0, 0, -1])
        // Keep the low 4 bits with saturation: clamp to −8…7.
        XCTAssertEqual(eightBit.map { OutputTruncation.keepLSBs(4).apply($0, width: 8) }, [7, -8, -1, 7, -8, 3, 7, -8])
        XCTAssertEqual(OutputTruncation.keepMSBs(8).apply(-77, width: 8), -77)
        XCTAssertEqual(OutputTruncation.keepMSBs(1).apply(-77, width: 8), -1)
        XCTAssertEqual(OutputTruncation.keepMSBs(1).apply(77, width: 8), 0)
        XCTAssertEqual([OutputTruncation.full, .keepMSBs(3), .keepLSBs(5)].map { $0.outputBits(width: 12) }, [12, 3, 5])
        XCTAssertEqual(OutputTruncation.keepMSBs(10).apply(AccTensor(shape: [3], values: [32767, -32768, 1000]), width: 16).values,
                       [511, -512, 15])
    }

    func testSignedBitsNeeded() {
        let cases: [(Int64, Int64, Int)] = [(0, 0, 1), (-1, 0, 1), (0, 1, 2), (-2, 1, 2), (-2, 2, 3), (-3, 0, 3), (-128, 127, 8),
                                            (-129, 0, 9), (0, 128, 9), (5, 14, 5), (-16, 20, 6), (Int64.min, Int64.max, 64),
                                            (Int64.min, 0, 64), (0, Int64.max, 64), (-(1 << 40), 1 << 40, 42)]
        for (lo, hi, bits) in cases {
            XCTAssertEqual(IntegerOps.signedBitsNeeded(min: lo, max: hi), bits, "\(lo)...\(hi)")
        }
    }

    func testAccumulatorRangesByHand() {
        let w = QTensor(shape: [2, 3], values: [1, -2, 0, -3, 4, 5])
        // Inputs −1…2. Channel 0: 10 + [−1, 2] + [−4, 2] + 0; channel 1: −1 + [−6, 3] + [−4, 8] + [−5, 10].
        XCTAssertEqual(IntegerOps.accumulatorRanges(weight: w, inputs: -1...2, bias: [10, -1]), [5...14, -16...20])
        // Inputs 1…2: channel 0 is 10 + [1, 2] + [−4, −2]; with zero padding the inputs may also be 0.
        XCTAssertEqual(IntegerOps.accumulatorRanges(weight: w, inputs: 1...2, bias: [10, -1])[0], 7...10)
        XCTAssertEqual(IntegerOps.accumulatorRanges(weight: w, inputs: 1...2, bias: [10, -1], zeroPadded: true)[0], 6...12)
        let extremes = IntegerOps.extremeInputs(weight: w, inputs: -1...2)
        XCTAssertEqual(extremes.maximizing, QTensor(shape: [2, 3], values: [2, -1, -1, -1, 2, 2]))
        XCTAssertEqual(extremes.minimizing, QTensor(shape: [2, 3], values: [-1, 2, 2, 2, -1, -1]))
        // Row m of the extremes reaches channel m's bound.
        let top = IntegerOps.matmul(extremes.maximizing, weight: w, bias: [10, -1]), bottom = IntegerOps.matmul(extremes.minimizing, weight: w, bias: [10, -1])
        XCTAssertEqual([top.values[0], top.values[3]], [14, 20])
        XCTAssertEqual([bottom.values[0], bottom.values[3]], [5, -16])
        // Unsigned 4-bit inputs and signed 4-bit weights, 8 taps: at most 8·15·8 = 960, at least −8·15·8.
        let wide = QTensor(shape: [2, 8], values: [Int32](repeating: -8, count: 8) + [Int32](repeating: 7, count: 8))
        let ranges = IntegerOps.accumulatorRanges(weight: wide, inputs: 0...15)
        XCTAssertEqual(ranges, [-960...0, 0...840])
        XCTAssertEqual(ranges.map { IntegerOps.signedBitsNeeded(min: $0.lowerBound, max: $0.upperBound) }, [11, 11])
    }

    func testBoundsAreReachedAndNeverExceededByRandomInputs() {
        var rng = SeededRandom(seed: 21)
        for (k, wr, xr) in [(12, Int32(-8)...7, Int32(-8)...7), (20, -1...1, 0...3), (9, -2...1, -1...1), (30, -128...127, 0...255)] {
            let w = randomCodes([5, k], wr, &rng)
            let bias = (0..<5).map { _ in Int64.random(in: -20...20, using: &rng) }
            let ranges = IntegerOps.accumulatorRanges(weight: w, inputs: xr, bias: bias)
            let extremes = IntegerOps.extremeInputs(weight: w, inputs: xr)
            let top = IntegerOps.matmul(extremes.maximizing, weight: w, bias: bias)
            let bottom = IntegerOps.matmul(extremes.minimizing, weight: w, bias: bias)
            for m in 0..<5 {
                XCTAssertEqual(top.values[m * 5 + m], ranges[m].upperBound)
                XCTAssertEqual(bottom.values[m * 5 + m], ranges[m].lowerBound)
            }
            let y = IntegerOps.matmul(randomCodes([200, k], xr, &rng), weight: w, bias: bias)
            for (i, v) in y.values.enumerated() { XCTAssertTrue(ranges[i % 5].contains(v), "\(v) outside \(ranges[i % 5])") }
        }
    }

    func testConvBoundsWithPadding() {
        var rng = SeededRandom(seed: 23)
        let w = randomCodes([4, 2, 3, 3], -4...3, &rng)
        // Inputs 1…6 with zero padding: the bound is over 0…6.
        let ranges = IntegerOps.accumulatorRanges(weight: w, inputs: 1...6, zeroPadded: true)
        let x = randomCodes([8, 2, 5, 5], 1...6, &rng)
        let y = IntegerOps.conv2d(x, weight: w, padding: (1, 1))
        for (i, v) in y.values.enumerated() {
            let channel = (i / 25) % 4
            XCTAssertTrue(ranges[channel].contains(v), "\(v) outside \(ranges[channel])")
        }
        // Without padding, a patch of the extreme inputs reaches each channel's bound.
        let plain = IntegerOps.accumulatorRanges(weight: w, inputs: 1...6)
        let extremes = IntegerOps.extremeInputs(weight: w, inputs: 1...6)
        for m in 0..<4 {
            let patch = QTensor(shape: [1, 2, 3, 3], values: Array(extremes.maximizing.values[(m * 18)..<((m + 1) * 18)]))
            XCTAssertEqual(IntegerOps.conv2d(patch, weight: w).values[m], plain[m].upperBound)
        }
    }
}
