import QForgeInteger
import QForgeTensor
import XCTest

/// Requantization: thresholds, multiplier and shift, shift only, lookup tables.
final class RequantTests: XCTestCase {
    func grid(_ bits: Int, signed: Bool = true, narrow: Bool = false, _ rounding: RoundingMode = .round) -> IntQuantGrid {
        IntQuantGrid(bitWidth: bits, signed: signed, narrow: narrow, rounding: rounding)
    }

    // MARK: MultiThreshold

    func testThresholdsCountAccumulatorsAtOrAbove() {
        let unsigned2 = MultiThreshold(thresholds: [[-2, 0, 3]], grid: grid(2, signed: false))
        let acc: [Int64] = [-3, -2, -1, 0, 2, 3, 100]
        XCTAssertEqual(acc.map { unsigned2.apply($0, channel: 0) }, [0, 1, 1, 2, 2, 3, 3])
        // Signed 2-bit output: the count starts at minInt = −2.
        let signed2 = MultiThreshold(thresholds: [[-2, 0, 3]], grid: grid(2))
        XCTAssertEqual(acc.map { signed2.apply($0, channel: 0) }, [-2, -1, -1, 0, 0, 1, 1])
        // Twenty thresholds 0, 10, …, 190 (a longer list is searched, not scanned).
        let long = MultiThreshold(thresholds: [(0..<20).map { Int64($0 * 10) }], grid: grid(5, signed: false))
        XCTAssertEqual(long.apply(AccTensor(shape: [1, 8], values: [-1, 0, 9, 10, 55, 189, 190, 1000])).values, [0, 1, 1, 2, 6, 19, 20, 20])
        // Equal thresholds both count.
        XCTAssertEqual(MultiThreshold(thresholds: [[1, 1, 4]], grid: grid(2, signed: false)).apply(1, channel: 0), 2)
    }

    func testThresholdChannelsOnBothLayouts() {
        let t = MultiThreshold(thresholds: [[0], [5]], grid: grid(1, signed: false))
        // [N, C, H, W]: channel on axis 1.
        let image = AccTensor(shape: [1, 2, 1, 2], values: [-1, 0, 4, 5])
        XCTAssertEqual(t.apply(image), QTensor(shape: [1, 2, 1, 2], values: [0, 1, 0, 1]))
        // [N, M]: channel on the last axis.
        XCTAssertEqual(t.apply(AccTensor(shape: [2, 2], values: [-1, 4, 0, 5])).values, [0, 0, 1, 1])
        // Long channel runs (4×5 pixels): channel 0 holds −10…9 against [−5, 0, 5], channel 1
        // holds 0, 10, …, 190 against [50, 100, 150]; both give five each of 0, 1, 2, 3.
        let runs = MultiThreshold(thresholds: [[-5, 0, 5], [50, 100, 150]], grid: grid(2, signed: false))
        let pixels = AccTensor(shape: [1, 2, 4, 5], values: Array(-10..<10) + (0..<20).map { Int64($0 * 10) })
        let quarters: [Int32] = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3]
        XCTAssertEqual(runs.apply(pixels).values, quarters + quarters)
        // 100 thresholds 0…99 over a long run: the count is v + 1 for 0 ≤ v ≤ 99, and 100 above.
        let hundred = MultiThreshold(thresholds: [(0..<100).map { Int64($0) }], grid: grid(8, signed: false))
        let ramp = AccTensor(shape: [1, 1, 1, 21], values: (-1..<19).map { Int64($0 * 5) } + [500])
        XCTAssertEqual(hundred.apply(ramp).values, [0] + (0..<19).map { Int32($0 * 5 + 1) } + [100])
        // One list shared by all channels.
        let shared = MultiThreshold(thresholds: [[0, 10]], grid: grid(2, signed: false))
        XCTAssertEqual(shared.apply(AccTensor(shape: [1, 3, 2], values: [-5, 0, 9, 10, 11, 0])).values, [0, 1, 1, 2, 2, 1])
    }

    func testNarrowLaneCountingMatchesTheDefinition() {
        // Tensors are counted on Int16 lanes when their accumulators span at most 65534, on
        // Int32 lanes inside Int32, else on Int64; thresholds outside the span are clamped.
        // Each case against the per-value definition, as [N, C] rows and as [N, C, H, W] runs.
        var rng = SeededRandom(seed: 31)
        let spans: [(Int64, Int64)] = [
            (-32767, 32767), (-32767, 32768), (0, 65534), (0, 65535), (Int64(Int32.min), Int64(Int32.max) - 1),
            (Int64(Int32.min), Int64(Int32.max)), (Int64.min, Int64.min + 100), (Int64.max - 65534, Int64.max), (-5, -5),
        ]
        for (lo, hi) in spans {
            let mid = lo / 2 + hi / 2
            let edges: [Int64] = [Int64.min, lo &- 1, lo, lo &+ 1, mid, hi &- 1, hi, hi &+ 1, Int64.max]
            for (channels, inner) in [(3, 1), (2, 5), (1, 300)] {
                let count = 4 * channels * inner
                var values = (0..<count).map { _ in Int64.random(in: lo...hi, using: &rng) }
                values[0] = lo
                values[count - 1] = hi
                for (i, v) in edges.enumerated() where i + 1 < count && (lo...hi).contains(v) { values[i + 1] = v }
                let lists = (0..<channels).map { _ in
                    (Array(edges.shuffled(using: &rng).prefix(3)) + (0..<4).map { _ in Int64.random(in: lo...hi, using: &rng) }).sorted()
                }
                let shape = inner == 1 ? [4, channels] : [4, channels, 1, inner]
                let acc = AccTensor(shape: shape, values: values)
                for t in [MultiThreshold(thresholds: lists, grid: grid(3, signed: false)),
                          MultiThreshold(thresholds: [lists[0]], outBias: -4, grid: grid(3)),
                          MultiThreshold(thresholds: lists, outBias: Int64(Int32.min) - 3, grid: grid(32))] {
                    let expected = values.enumerated().map { i, v in t.apply(v, channel: (i / inner) % channels) }
                    XCTAssertEqual(t.apply(acc).values, expected, "\(lo)...\(hi) shape \(shape)")
                }
            }
        }
        // Lists of different lengths keep the Int64 loops.
        let uneven = MultiThreshold(thresholds: [[0, 5], [1]], grid: grid(2, signed: false))
        XCTAssertEqual(uneven.apply(AccTensor(shape: [2, 2], values: [5, 1, 4, 0])).values, [2, 1, 1, 0])
    }

    func testEmptyThresholdListsAndClampingToTheGrid() {
        // No thresholds: every output is the bias.
        XCTAssertEqual(MultiThreshold(thresholds: [[]], grid: grid(4)).apply(AccTensor(shape: [1, 2], values: [-1000, 1000])).values, [-8, -8])
        XCTAssertEqual(MultiThreshold(thresholds: [[]], outBias: 3, grid: grid(4)).apply(77, channel: 0), 3)
        // Five thresholds into a 2-bit unsigned grid saturate at 3; a bias below the grid clamps at 0.
        let many = MultiThreshold(thresholds: [[0, 1, 2, 3, 4]], grid: grid(2, signed: false))
        XCTAssertEqual([Int64(-1), 2, 10].map { many.apply($0, channel: 0) }, [0, 3, 3])
        XCTAssertEqual(MultiThreshold(thresholds: [[0]], outBias: -5, grid: grid(2, signed: false)).apply(9, channel: 0), 0)
        // Bipolar-like 1-bit signed output {−1, 0}: the sign of acc.
        let sign = MultiThreshold(thresholds: [[0]], grid: grid(1))
        XCTAssertEqual([Int64(-5), -1, 0, 7].map { sign.apply($0, channel: 0) }, [-1, -1, 0, 0])
    }

    // MARK: Multiplier and shift

    /// acc·3/4 for these accumulators: ties ±1.5, ±4.5, non-ties ±0.75, ±2.25, exact ±3.
    let tieAccumulators: [Int64] = [2, -2, 6, -6, 1, -1, 3, -3, 4, -4]

    func testEveryRoundingModeOnTiesAndNonTies() {
        let expected: [RoundingMode: [Int32]] = [
            .round: [2, -2, 4, -4, 1, -1, 2, -2, 3, -3],
            .halfUp: [2, -2, 5, -5, 1, -1, 2, -2, 3, -3],
            .halfDown: [1, -1, 4, -4, 1, -1, 2, -2, 3, -3],
            .floor: [1, -2, 4, -5, 0, -1, 2, -3, 3, -3],
            .ceil: [2, -1, 5, -4, 1, 0, 3, -2, 3, -3],
            .down: [1, -1, 4, -4, 0, 0, 2, -2, 3, -3],
            .up: [2, -2, 5, -5, 1, -1, 3, -3, 3, -3],
        ]
        for mode in RoundingMode.allCases {
            let rq = MultiplyShift(multipliers: [3], shifts: [2], grid: grid(8, mode))
            XCTAssertEqual(rq.apply(AccTensor(shape: [1, 10], values: tieAccumulators)).values, expected[mode], "\(mode)")
        }
        // Ties next to zero: acc/2 for acc = 1, −1, 3, −3 is 0.5, −0.5, 1.5, −1.5.
        let nearZero: [RoundingMode: [Int32]] = [
            .round: [0, 0, 2, -2], .halfUp: [1, -1, 2, -2], .halfDown: [0, 0, 1, -1], .floor: [0, -1, 1, -2],
            .ceil: [1, 0, 2, -1], .down: [0, 0, 1, -1], .up: [1, -1, 2, -2],
        ]
        for mode in RoundingMode.allCases {
            let halve = MultiplyShift.shifting(by: [1], grid: grid(8, mode))
            XCTAssertEqual([Int64(1), -1, 3, -3].map { halve.apply($0, channel: 0) }, nearZero[mode], "\(mode)")
        }
    }

    func testOffsetIsAddedBeforeRounding() {
        // acc = 2 gives 1.5; with offset 1 that is 2.5, which ROUND takes to 2 (not round(1.5) + 1 = 3).
        let plusOne = MultiplyShift(multipliers: [3], shifts: [2], offsets: [1], grid: grid(8))
        XCTAssertEqual(tieAccumulators.map { plusOne.apply($0, channel: 0) }, [2, 0, 6, -4, 2, 0, 3, -1, 4, -2])
        let minusTen = MultiplyShift(multipliers: [3], shifts: [2], offsets: [-10], grid: grid(8, .halfUp))
        XCTAssertEqual(tieAccumulators.map { minusTen.apply($0, channel: 0) }, [-9, -12, -6, -15, -9, -11, -8, -12, -7, -13])
    }

    func testRoundingMatchesTheFloatQuantizer() {
        // Where acc·m/2^s + z is exact in Float, the integer form must round as RoundingMode.apply does.
        var rng = SeededRandom(seed: 13)
        for mode in RoundingMode.allCases {
            for _ in 0..<300 {
                // |acc·m| < 2^16 and 7 fraction bits: every value below fits Float's 24 bits exactly.
                let acc = Int64.random(in: -500...500, using: &rng), m = Int32.random(in: -127...127, using: &rng)
                let s = Int.random(in: 0...7, using: &rng), z = Int64.random(in: -20...20, using: &rng)
                let exact = Float(acc * Int64(m)) / Float(1 << s) + Float(z)
                let expected = Int32(min(max(mode.apply(exact), -32768), 32767))
                XCTAssertEqual(MultiplyShift(multipliers: [m], shifts: [s], offsets: [z], grid: grid(16, mode)).apply(acc, channel: 0), expected,
                               "\(mode): \(acc)·\(m)/2^\(s) + \(z)")
            }
        }
    }

    func testSaturationAtBothEndsAndSmallGrids() {
        let narrow4 = MultiplyShift(multipliers: [1], shifts: [0], grid: grid(4, narrow: true))
        XCTAssertEqual([Int64(100), -100, 7, -7, -8].map { narrow4.apply($0, channel: 0) }, [7, -7, 7, -7, -7])
        let unsigned4 = MultiplyShift(multipliers: [1], shifts: [0], grid: grid(4, signed: false))
        XCTAssertEqual([Int64(-5), 20, 15, 0].map { unsigned4.apply($0, channel: 0) }, [0, 15, 15, 0])
        // 1-bit grids, floor of acc/2: unsigned {0, 1}, signed {−1, 0}.
        let u1 = MultiplyShift.shifting(by: [1], grid: grid(1, signed: false, .floor))
        XCTAssertEqual([Int64(3), 1, -3].map { u1.apply($0, channel: 0) }, [1, 0, 0])
        let s1 = MultiplyShift.shifting(by: [1], grid: grid(1, .floor))
        XCTAssertEqual([Int64(3), 1, -1, -3].map { s1.apply($0, channel: 0) }, [0, 0, -1, -1])
        // 2-bit signed {−2…1}: ±7/4 = ±1.75 rounds to ±2, then 2 clamps to 1.
        let s2 = MultiplyShift.shifting(by: [2], grid: grid(2))
        XCTAssertEqual([Int64(7), -7, 2, -2].map { s2.apply($0, channel: 0) }, [1, -2, 0, 0])
    }

    func testProductsBeyond64Bits() {
        let g16 = grid(16, .floor)
        // 2^40 · 2^30 = 2^70 overflows Int64; / 2^62 it is exactly 256.
        XCTAssertEqual(MultiplyShift(multipliers: [1 << 30], shifts: [62], grid: g16).apply(1 << 40, channel: 0), 256)
        // (3·2^40 + 1) · 2^30 / 2^62 = 768 + 2^−32: floor 768, ceil 769.
        XCTAssertEqual(MultiplyShift(multipliers: [1 << 30], shifts: [62], grid: g16).apply(3 << 40 + 1, channel: 0), 768)
        XCTAssertEqual(MultiplyShift(multipliers: [1 << 30], shifts: [62], grid: grid(16, .ceil)).apply(3 << 40 + 1, channel: 0), 769)
        // Far outside the grid, even beyond 64 bits after the shift: saturates with the right sign.
        XCTAssertEqual(MultiplyShift(multipliers: [Int32.max], shifts: [0], grid: g16).apply(Int64.max, channel: 0), 32767)
        XCTAssertEqual(MultiplyShift(multipliers: [Int32.max], shifts: [0], grid: g16).apply(Int64.min, channel: 0), -32768)
        XCTAssertEqual(MultiplyShift(multipliers: [Int32.min], shifts: [0], grid: g16).apply(Int64.min, channel: 0), 32767)
        XCTAssertEqual(MultiplyShift(multipliers: [Int32.max], shifts: [62], grid: g16).apply(Int64.min, channel: 0), -32768)
        XCTAssertEqual(MultiplyShift(multipliers: [1], shifts: [0], offsets: [Int64.max], grid: g16).apply(Int64.max, channel: 0), 32767)
        XCTAssertEqual(MultiplyShift(multipliers: [1], shifts: [0], offsets: [Int64.min], grid: g16).apply(-1, channel: 0), -32768)
    }

    func testPerChannelMultipliersAndShifts() {
        let rq = MultiplyShift(multipliers: [1, 3], shifts: [0, 1], offsets: [0, -1], grid: grid(8))
        // Channel 0: 5; channel 1: 5·3/2 − 1 = 6.5 → 6 (even).
        XCTAssertEqual(rq.apply(AccTensor(shape: [2, 2], values: [5, 5, -4, 4])).values, [5, 6, -4, 5])
        // On [N, C, H, W] the channel is axis 1.
        XCTAssertEqual(rq.apply(AccTensor(shape: [1, 2, 1, 3], values: [1, 2, 3, 1, 2, 3])).values, [1, 2, 3, 0, 2, 4])
    }

    func testShiftOnlyBothDirections() {
        let right = MultiplyShift.shifting(by: [2], grid: grid(8))
        // 6/4 = 1.5 → 2, 10/4 = 2.5 → 2, −6/4 → −2, 5/4 → 1.
        XCTAssertEqual([Int64(6), 10, -6, 5].map { right.apply($0, channel: 0) }, [2, 2, -2, 1])
        let left = MultiplyShift.shifting(by: [-3], offsets: [1], grid: grid(8))
        XCTAssertEqual([Int64(5), -3, 20, -20].map { left.apply($0, channel: 0) }, [41, -23, 127, -128])
    }

    func testLowestCodeIsAReLUOnSignedAndZeroPointGrids() {
        // A ReLU before a signed 32-bit grid: nothing below code 0; the top stays 2^31 − 1.
        let int32 = IntQuantGrid(bitWidth: 32, signed: true)
        let relu = MultiplyShift.shifting(by: [3], grid: int32, lowest: 0)
        XCTAssertEqual([Int64(-100), -4, 4, 12, 20, Int64(1) << 40].map { relu.apply($0, channel: 0) }, [0, 0, 0, 2, 2, Int32.max])
        XCTAssertEqual(MultiplyShift.shifting(by: [3], grid: int32).apply(-100, channel: 0), -12)  // −12.5 → −12 (even)
        // Zero point 5 on an unsigned grid: the code of 0 is 5; 7·3/4 + 5 = 10.25 → 10.
        let zp = MultiplyShift(multipliers: [3], shifts: [2], offsets: [5], grid: grid(4, signed: false), lowest: 5)
        XCTAssertEqual(zp.apply(AccTensor(shape: [4], values: [-20, -1, 7, 100])).values, [5, 5, 10, 15])
    }

    func testMultiplierApproximation() {
        XCTAssertTrue(MultiplyShift.approximating(0.1, bits: 16) == (52429, 19))  // 0.1·2^19 = 52428.8
        XCTAssertTrue(MultiplyShift.approximating(0.75, bits: 8) == (192, 8))
        XCTAssertTrue(MultiplyShift.approximating(3, bits: 16) == (49152, 14))
        XCTAssertTrue(MultiplyShift.approximating(1.0 / 3, bits: 31) == (1_431_655_765, 32))  // 2^32/3 = 1431655765.33
        // 0.9990234375·2^8 = 255.75 rounds to 2^8, one bit too many: one shift less gives 128/2^7.
        XCTAssertTrue(MultiplyShift.approximating(0.9990234375, bits: 8) == (128, 7))
        // 200 fills 8 bits with shift 0.
        XCTAssertTrue(MultiplyShift.approximating(200, bits: 8) == (200, 0))
        // 1000 · 52429 / 2^19 = 100.0007 → 100.
        let (m, s) = MultiplyShift.approximating(0.1, bits: 16)
        XCTAssertEqual(MultiplyShift(multipliers: [m], shifts: [s], grid: grid(8)).apply(1000, channel: 0), 100)
    }

    // MARK: Lookup table

    func testLookupTableClampsOutsideItsRange() {
        let lut = LookupTable(lo: -2, codes: [10, 20, 30, 40])
        XCTAssertEqual(lut.hi, 1)
        XCTAssertEqual(lut.apply(AccTensor(shape: [7], values: [-5, -2, -1, 0, 1, 2, 100])).values, [10, 10, 20, 30, 40, 40, 40])
        XCTAssertEqual(lut.apply(QTensor(shape: [1, 2], values: [Int32.min, Int32.max])).values, [10, 40])
        let square = LookupTable(inputs: -1...1) { Int32($0 * $0) }
        XCTAssertEqual(square.codes, [1, 0, 1])
        XCTAssertEqual(square.apply(-7), 1)
    }
}
