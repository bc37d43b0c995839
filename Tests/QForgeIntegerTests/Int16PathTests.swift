import QForgeInteger
import QForgeTensor
import XCTest

/// x·wᵀ + bias written as its definition, in Int64.
func referenceMatmul(_ x: QTensor, _ w: QTensor, bias: [Int64]? = nil) -> AccTensor {
    let n = x.shape[0], k = x.shape[1], m = w.shape[0]
    var out = [Int64]()
    for r in 0..<n {
        for o in 0..<m {
            var acc = bias?[o] ?? 0
            for j in 0..<k { acc += Int64(x.values[r * k + j]) * Int64(w.values[o * k + j]) }
            out.append(acc)
        }
    }
    return AccTensor(shape: [n, m], values: out)
}

/// The Int16 path (16-bit lanes widened into Int32) against the Int64 definition at the edges
/// of its exactness condition, on every Int16 kernel this CPU runs, and the path chooser.
final class Int16PathTests: XCTestCase {
    /// Runs `body` once per available Int16 kernel, restoring the default afterwards.
    func forEachKernel(_ body: (IntegerOps.Int16Kernel) -> Void) {
        let saved = IntegerOps.int16Kernel
        defer { IntegerOps.int16Kernel = saved }
        for kernel in IntegerOps.availableInt16Kernels {
            IntegerOps.int16Kernel = kernel
            body(kernel)
        }
    }

    func testChooserOnHandPickedBounds() {
        // 4-bit unsigned activations × weights −7…7 over 256 inputs: all-7 rows give
        // 15 · 7 · 128 = 13440 per lane for one chunk of all 128 pairs.
        let hidden = PackedWeights(QTensor(shape: [3, 256], values: Array(repeating: 7, count: 768)))
        XCTAssertEqual(hidden.widestRowSum, 1792)
        XCTAssertEqual(hidden.int16Chunk(maxAbsInput: 15), 128)
        XCTAssertEqual(IntegerOps.productPath(weight: hidden, maxAbsInput: 15), .int16)
        // 8-bit input × −7…7 over 784 inputs: 255 · 7 · 16 = 28560 fits a lane, 255 · 7 · 24 does not.
        let first = PackedWeights(QTensor(shape: [2, 784], values: (0..<1568).map { $0 % 3 == 0 ? -7 : 7 }))
        XCTAssertEqual(first.int16Chunk(maxAbsInput: 255), 16)
        XCTAssertEqual(IntegerOps.productPath(weight: first, maxAbsInput: 255), .int16)
        // 8-bit × 8-bit: one product (255 · 127 = 32385) per lane and chunk: exact, but too
        // short a chunk to choose; the bound 255 · 127 · 64 ≤ 2^24 picks float32.
        let wide = QTensor(shape: [1, 64], values: Array(repeating: -127, count: 64))
        XCTAssertEqual(PackedWeights(wide).int16Chunk(maxAbsInput: 255), 1)
        XCTAssertEqual(IntegerOps.productPath(weight: wide, maxAbsInput: 255), .float32)
        XCTAssertEqual(IntegerOps.productPath(weight: wide, maxAbsInput: 256), .float32)
        // 256 · 128 = 32768 is one past Int16: no chunk; 2^24 < 256 · 128 · 1024: Int64.
        let wider = QTensor(shape: [1, 1024], values: Array(repeating: 128, count: 1024))
        XCTAssertNil(PackedWeights(wider).int16Chunk(maxAbsInput: 256))
        XCTAssertEqual(IntegerOps.productPath(weight: wider, maxAbsInput: 256), .int64)
        // A lane exactly at 2^15 − 1, and one past it.
        let edge = PackedWeights(QTensor(shape: [1, 2], values: [32767, 0]))
        XCTAssertEqual(edge.int16Chunk(maxAbsInput: 1), 1)
        XCTAssertNil(edge.int16Chunk(maxAbsInput: 2))
        // The total must fit Int32: 65538 · 32767 = 2^31 − 2 does, 65540 · 32767 does not,
        // though every lane (one product per chunk) fits.
        XCTAssertEqual(PackedWeights(QTensor(shape: [1, 65538], values: Array(repeating: 32767, count: 65538))).int16Chunk(maxAbsInput: 1), 1)
        XCTAssertNil(PackedWeights(QTensor(shape: [1, 65540], values: Array(repeating: 32767, count: 65540))).int16Chunk(maxAbsInput: 1))
        // Chunks longer than 4 pairs, or covering all of k, are chosen; shorter ones are not.
        let short = QTensor(shape: [1, 6], values: [1000, 1000, 1000, 1000, 1000, 1000])  // 3 pairs
        XCTAssertEqual(PackedWeights(short).int16Chunk(maxAbsInput: 10), 3)
        XCTAssertEqual(IntegerOps.productPath(weight: short, maxAbsInput: 10), .int16)
        let long = QTensor(shape: [1, 64], values: Array(repeating: 1000, count: 64))
        XCTAssertEqual(PackedWeights(long).int16Chunk(maxAbsInput: 10), 3)
        XCTAssertEqual(IntegerOps.productPath(weight: long, maxAbsInput: 10), .float32)
        // The same choice from the tensor and from its packed form.
        for (w, bound) in [(wide, Int64(255)), (wider, 256), (long, 10), (hidden.weight, 15)] {
            XCTAssertEqual(IntegerOps.productPath(weight: w, maxAbsInput: bound), IntegerOps.productPath(weight: PackedWeights(w), maxAbsInput: bound))
        }
    }

    func testUnsignedInputsLengthenChunksOverMixedSignWeights() {
        // Lanes alternate +7, −7 along k-pairs. Any inputs within ±255: 255 · 7 · 16 fits a
        // lane, 255 · 7 · 24 does not. Inputs in 0…255 meet at most the positive half of a
        // chunk (or the negative half): 255 · 7 · 16 for 32 pairs.
        let k = 128
        let w = QTensor(shape: [3, k], values: (0..<(3 * k)).map { i in (i % k) / 2 % 2 == 0 ? 7 : -7 })
        let packed = PackedWeights(w)
        XCTAssertEqual(packed.int16Chunk(maxAbsInput: 255), 16)
        let lengthened = packed.int16Chunk(lo: 0, hi: 255, maxAbsInput: 255)
        XCTAssertEqual(lengthened, 32)
        XCTAssertEqual(packed.int16Chunk(lo: -255, hi: 0, maxAbsInput: 255), 32)
        XCTAssertEqual(packed.int16Chunk(lo: -32, hi: 255, maxAbsInput: 255), 32)  // 255 · 112 + 32 · 112 = 32144
        XCTAssertEqual(packed.int16Chunk(lo: -40, hi: 255, maxAbsInput: 255), 24)  // 32 pairs: 255 · 112 + 40 · 112 = 33040
        // Mostly negative lanes (−7, −7, −7, +7 along k-pairs): the negative part decides,
        // 255 · 7 · 18 for 24 pairs.
        let negative = QTensor(shape: [3, k], values: (0..<(3 * k)).map { i in (i % k) / 2 % 4 == 3 ? 7 : -7 })
        XCTAssertEqual(PackedWeights(negative).int16Chunk(lo: 0, hi: 255, maxAbsInput: 255), 24)
        // Inputs at 255 where the weight is positive and 0 where it is negative (and the
        // reverse) fill the lanes to their bounds.
        for weights in [w, negative] {
            let filling = QTensor(shape: [2, k], values: (0..<(2 * k)).map { i in (weights.values[i % k] > 0) == (i < k) ? 255 : 0 })
            forEachKernel { kernel in
                XCTAssertEqual(IntegerOps.matmul(filling, weight: PackedWeights(weights), maxAbsInput: 255), referenceMatmul(filling, weights), "\(kernel)")
            }
        }
    }

    func testConvChunksFollowTheProductOrder() {
        // Conv weights are read by kernel row, kernel column, then channel: a lane sums the
        // even (or odd) positions of that order. Two channels, 1×2 kernel: order
        // (dj 0: c0, c1), (dj 1: c0, c1); w[c0] = 100, w[c1] = 1, so the even lane holds 100 + 100.
        let w = QTensor(shape: [1, 2, 1, 2], values: [100, 100, 1, 1])
        let packed = PackedWeights(w)
        XCTAssertEqual(packed.int16Chunk(maxAbsInput: 163), 2)  // 163 · 200 = 32600
        XCTAssertEqual(packed.int16Chunk(maxAbsInput: 164), 1)  // 164 · 200 = 32800 > 32767, 164 · 100 fits
        let x = QTensor(shape: [1, 2, 1, 3], values: [163, -163, 163, -163, 163, -163])
        forEachKernel { kernel in
            XCTAssertEqual(IntegerOps.conv2d(x, weight: packed, maxAbsInput: 163, path: .int16),
                           naiveConv2d(x, w, bias: nil, stride: (1, 1), padding: (0, 0)), "\(kernel)")
        }
    }

    func testAllMaxCodesAndAlternatingSignsAtTheLaneLimit() {
        // Lane sums at ±(2^15 − 1) and totals near 2^31: products of one sign accumulate
        // (all-max codes), or swing (alternating signs).
        forEachKernel { kernel in
            for (k, wmax, xmax) in [(2, Int32(32767), Int32(1)), (35, 7, 255), (64, 1, 1024), (3, 181, 181)] {
                let w = QTensor(shape: [17, k], values: (0..<(17 * k)).map { i in (i / k) % 2 == 0 ? wmax : -wmax })
                let packed = PackedWeights(w)
                guard packed.int16Chunk(maxAbsInput: Int64(xmax)) != nil else { return XCTFail("k \(k): no Int16 chunk") }
                let allMax = QTensor(shape: [7, k], values: Array(repeating: xmax, count: 7 * k))
                let alternating = QTensor(shape: [7, k], values: (0..<(7 * k)).map { $0 % 2 == 0 ? xmax : -xmax })
                let mixed = QTensor(shape: [7, k], values: (0..<(7 * k)).map { i in (i / k) % 2 == 0 ? -xmax : ((i % k) % 3 == 0 ? xmax : -xmax) })
                for x in [allMax, alternating, mixed] {
                    XCTAssertEqual(IntegerOps.matmul(x, weight: packed, maxAbsInput: Int64(xmax), path: .int16), referenceMatmul(x, w),
                                   "\(kernel) k \(k) w \(wmax) x \(xmax)")
                }
            }
        }
    }

    func testInt32TotalAtItsLimit() {
        // One row of 65538 products 1 · 32767: the Int32 sum reaches 2^31 − 2, negated −(2^31 − 2).
        let k = 65538
        let w = PackedWeights(QTensor(shape: [1, k], values: Array(repeating: 32767, count: k)))
        let x = QTensor(shape: [2, k], values: Array(repeating: 1, count: k) + Array(repeating: -1, count: k))
        forEachKernel { kernel in
            XCTAssertEqual(IntegerOps.matmul(x, weight: w, maxAbsInput: 1, path: .int16).values, [2_147_483_646, -2_147_483_646], "\(kernel)")
        }
    }

    func testRandomShapesMatchInt64() {
        var rng = SeededRandom(seed: 21)
        // (N, M, K, input range, weight range): 1 and odd sizes, K not a multiple of the tile
        // or of a pair, M past one and two panels; 8-bit inputs force chunks shorter than K.
        let cases: [(Int, Int, Int, ClosedRange<Int32>, ClosedRange<Int32>)] = [
            (1, 1, 1, 0...15, -7...7), (1, 10, 3, 0...255, -7...7), (5, 16, 2, 0...15, -8...7), (7, 17, 31, -8...7, -8...7),
            (13, 33, 77, 0...255, -7...7), (6, 32, 64, 0...255, -127...127), (2, 49, 200, 0...255, -7...7), (9, 3, 129, -128...127, -1...1),
        ]
        forEachKernel { kernel in
            for (n, m, k, xr, wr) in cases {
                let x = randomCodes([n, k], xr, &rng), w = randomCodes([m, k], wr, &rng)
                let bias = (0..<m).map { _ in Int64.random(in: -99999...99999, using: &rng) }
                let bound = Int64(max(xr.lowerBound.magnitude, xr.upperBound.magnitude))
                let packed = PackedWeights(w)
                guard packed.int16Chunk(maxAbsInput: bound) != nil else { return XCTFail("\(n)×\(m)×\(k): no Int16 chunk") }
                let expected = referenceMatmul(x, w, bias: bias)
                XCTAssertEqual(IntegerOps.matmul(x, weight: packed, bias: bias, maxAbsInput: bound, path: .int16), expected, "\(kernel) \(n)×\(m)×\(k)")
                XCTAssertEqual(IntegerOps.matmul(x, weight: w, bias: bias, maxAbsInput: bound), expected, "\(kernel) \(n)×\(m)×\(k) automatic")
            }
        }
    }

    func testRandomConvolutionsMatchTheDefinition() {
        var rng = SeededRandom(seed: 23)
        forEachKernel { kernel in
            for trial in 0..<10 {
                let n = Int.random(in: 1...3, using: &rng), c = [1, 2, 3, 16][trial % 4], m = [1, 5, 16, 17, 33][trial % 5]
                let kh = Int.random(in: 1...3, using: &rng), kw = Int.random(in: 1...3, using: &rng)
                let h = Int.random(in: kh...9, using: &rng), w = Int.random(in: kw...9, using: &rng)
                let stride = (Int.random(in: 1...2, using: &rng), Int.random(in: 1...2, using: &rng))
                let padding = (Int.random(in: 0...kh - 1, using: &rng), Int.random(in: 0...kw - 1, using: &rng))
                let x = randomCodes([n, c, h, w], trial % 2 == 0 ? 0...255 : 0...15, &rng), wt = randomCodes([m, c, kh, kw], -7...7, &rng)
                let bias: [Int64]? = trial % 3 == 0 ? nil : (0..<m).map { _ in Int64.random(in: -500...500, using: &rng) }
                let packed = PackedWeights(wt)
                let expected = naiveConv2d(x, wt, bias: bias, stride: stride, padding: padding)
                XCTAssertEqual(IntegerOps.conv2d(x, weight: packed, bias: bias, stride: stride, padding: padding, maxAbsInput: 255, path: .int16),
                               expected, "\(kernel) trial \(trial)")
                XCTAssertEqual(IntegerOps.conv2d(x, weight: wt, bias: bias, stride: stride, padding: padding), expected, "\(kernel) trial \(trial) automatic")
            }
        }
    }

    func testPackedWeightsAcrossBatchesAndCores() {
        // Large enough to be split over the cores; every batch against the Int64 path.
        var rng = SeededRandom(seed: 29)
        let w = randomCodes([40, 300], -7...7, &rng)
        let packed = PackedWeights(w)
        forEachKernel { kernel in
            for n in [1, 6, 95] {
                let x = randomCodes([n, 300], 0...255, &rng)
                XCTAssertEqual(IntegerOps.matmul(x, weight: packed, maxAbsInput: 255), IntegerOps.matmul(x, weight: w, path: .int64), "\(kernel) n \(n)")
            }
            let images = randomCodes([4, 16, 12, 12], 0...15, &rng), kernels = randomCodes([32, 16, 3, 3], -7...7, &rng)
            XCTAssertEqual(IntegerOps.conv2d(images, weight: PackedWeights(kernels), padding: (1, 1), maxAbsInput: 15),
                           IntegerOps.conv2d(images, weight: kernels, padding: (1, 1), path: .int64), "\(kernel) conv")
        }
    }
}
