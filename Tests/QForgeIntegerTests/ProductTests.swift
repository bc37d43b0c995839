import QForgeInteger
import QForgeTensor
import XCTest

/// Random codes in `range`, for the reference comparisons.
func randomCodes(_ shape: [Int], _ range: ClosedRange<Int32>, _ rng: inout SeededRandom) -> QTensor {
    QTensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Int32.random(in: range, using: &rng) })
}

/// Convolution written as its definition: four nested loops per output, reading 0 outside the image.
func naiveConv2d(_ x: QTensor, _ w: QTensor, bias: [Int64]?, stride: (Int, Int), padding: (Int, Int)) -> AccTensor {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (m, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
    let oh = (h + 2 * padding.0 - kh) / stride.0 + 1, ow = (wd + 2 * padding.1 - kw) / stride.1 + 1
    var out = [Int64]()
    for s in 0..<n {
        for o in 0..<m {
            for i in 0..<oh {
                for j in 0..<ow {
                    var acc = bias?[o] ?? 0
                    for ci in 0..<c {
                        for di in 0..<kh {
                            for dj in 0..<kw {
                                let y = i * stride.0 + di - padding.0, xx = j * stride.1 + dj - padding.1
                                guard y >= 0, y < h, xx >= 0, xx < wd else { continue }
                                acc += Int64(x.values[((s * c + ci) * h + y) * wd + xx]) * Int64(w.values[((o * c + ci) * kh + di) * kw + dj])
                            }
                        }
                    }
                    out.append(acc)
                }
            }
        }
    }
    return AccTensor(shape: [n, m, oh, ow], values: out)
}

/// Exact integer matrix products and convolutions, on both computation paths.
final class ProductTests: XCTestCase {
    func testMatmulHandValuesOnBothPaths() {
        let x = QTensor(shape: [2, 3], values: [1, -2, 3, -4, 5, -6])
        let w = QTensor(shape: [2, 3], values: [2, 0, -1, -3, 1, 4])
        // Row 0: 2 − 3 = −1, −3 − 2 + 12 = 7; row 1: −8 + 6 = −2, 12 + 5 − 24 = −7; plus bias [10, −10].
        for path in IntegerOps.ProductPath.allCases {
            XCTAssertEqual(IntegerOps.matmul(x, weight: w, bias: [10, -10], path: path),
                           AccTensor(shape: [2, 2], values: [9, -3, 8, -17]), "\(path)")
            XCTAssertEqual(IntegerOps.matmul(x, weight: w, path: path).values, [-1, 7, -2, -7], "\(path)")
        }
        // max|x| = 6, widest weight row Σ|w| = 8: bound 48, well inside 16-bit lanes.
        XCTAssertEqual(IntegerOps.partialSumBound(weight: w, maxAbsInput: 6), 48)
        XCTAssertEqual(IntegerOps.productPath(weight: w, maxAbsInput: 6), .int16)
    }

    func testBipolarProduct() {
        // ±1 inputs and weights: each output is (#agreements − #disagreements).
        let x = QTensor(shape: [2, 4], values: [1, -1, 1, 1, -1, -1, -1, -1])
        let w = QTensor(shape: [3, 4], values: [1, 1, 1, 1, 1, -1, 1, 1, -1, 1, -1, 1])
        XCTAssertEqual(IntegerOps.matmul(x, weight: w).values, [2, 4, -2, -4, -2, 0])
    }

    func testPathBoundaryAt2To24() {
        let x = QTensor(shape: [1, 2], values: [1, 1])
        // Bound exactly 2^24: float32 is still exact.
        let atLimit = QTensor(shape: [1, 2], values: [16_777_215, 1])
        XCTAssertEqual(IntegerOps.productPath(weight: atLimit, maxAbsInput: 1), .float32)
        XCTAssertEqual(IntegerOps.matmul(x, weight: atLimit).values, [16_777_216])
        // Bound 2^24 + 1: the sum 16777217 has no float32 representation, so the Int64 path runs.
        let above = QTensor(shape: [1, 2], values: [16_777_216, 1])
        XCTAssertEqual(IntegerOps.partialSumBound(weight: above, maxAbsInput: 1), 16_777_217)
        XCTAssertEqual(IntegerOps.productPath(weight: above, maxAbsInput: 1), .int64)
        XCTAssertEqual(IntegerOps.matmul(x, weight: above).values, [16_777_217])
        XCTAssertEqual(IntegerOps.matmul(x, weight: above, path: .int64).values, [16_777_217])
        // The same product in float32 GEMM loses the 1: why the bound decides.
        let floatProduct = Tensor(shape: [1, 2], scalars: [1, 1]).matmul(Tensor(shape: [2, 1], scalars: [16_777_216, 1]))
        XCTAssertEqual(floatProduct.scalars, [16_777_216])
        // A given input bound decides the path even when this batch is small.
        let small = QTensor(shape: [1, 2], values: [3, -2])
        XCTAssertEqual(IntegerOps.productPath(weight: QTensor(shape: [1, 2], values: [1 << 22, 1 << 22]), maxAbsInput: 4), .int64)
        XCTAssertEqual(IntegerOps.matmul(small, weight: QTensor(shape: [1, 2], values: [1 << 22, 1 << 22]), maxAbsInput: 4).values,
                       [4_194_304])
    }

    func testLargeCodesUseAll64Bits() {
        // (2^31 − 1)² · 2 = 9223372028264841218 < 2^63; and with the most negative code.
        let x = QTensor(shape: [2, 2], values: [Int32.max, Int32.max, Int32.min, Int32.min])
        let w = QTensor(shape: [1, 2], values: [Int32.max, Int32.max])
        XCTAssertEqual(IntegerOps.matmul(x, weight: w).values, [9_223_372_028_264_841_218, -9_223_372_032_559_808_512])
    }

    func testPathsAgreeWithReferenceOnRandomProducts() {
        var rng = SeededRandom(seed: 7)
        for (n, k, m, range) in [(5, 7, 3, Int32(-8)...7), (1, 1, 1, -1...1), (9, 33, 17, -128...127), (4, 64, 5, -2048...2047)] {
            let x = randomCodes([n, k], range, &rng), w = randomCodes([m, k], range, &rng)
            let bias = (0..<m).map { _ in Int64.random(in: -1000...1000, using: &rng) }
            var expected = [Int64]()
            for r in 0..<n {
                for o in 0..<m {
                    var acc = bias[o]
                    for j in 0..<k { acc += Int64(x.values[r * k + j]) * Int64(w.values[o * k + j]) }
                    expected.append(acc)
                }
            }
            // Every path the bound allows; the largest range's bound (2^11 · 2^11 · 64 = 2^28) only allows Int64.
            let bound = Int64(range.upperBound) + 1
            var paths: [IntegerOps.ProductPath] = [.int64]
            if IntegerOps.partialSumBound(weight: w, maxAbsInput: bound)! <= IntegerOps.float32ExactLimit { paths.append(.float32) }
            if PackedWeights(w).int16Chunk(maxAbsInput: bound) != nil { paths.append(.int16) }
            XCTAssertEqual(paths.count, range.upperBound > 127 ? 1 : 3, "\(range)")
            for path in paths {
                XCTAssertEqual(IntegerOps.matmul(x, weight: w, bias: bias, path: path).values, expected, "\(n)×\(k)×\(m) \(path)")
            }
        }
    }

    func testConvHandValuesWithStrideAndPadding() {
        // x = 1…9 on 3×3, kernel [[1, 0], [0, −1]], padding 1, stride 2: windows start at (−1, −1),
        // (−1, 1), (1, −1), (1, 1); only in-image taps count.
        let x = QTensor(shape: [1, 1, 3, 3], values: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let w = QTensor(shape: [1, 1, 2, 2], values: [1, 0, 0, -1])
        for path in IntegerOps.ProductPath.allCases {
            XCTAssertEqual(IntegerOps.conv2d(x, weight: w, bias: [100], stride: (2, 2), padding: (1, 1), path: path),
                           AccTensor(shape: [1, 1, 2, 2], values: [99, 97, 93, 96]), "\(path)")
        }
        // Two input channels, no padding: Σ over channels of the 2×2 window sums.
        let x2 = QTensor(shape: [1, 2, 2, 3], values: [1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6])
        let w2 = QTensor(shape: [1, 2, 2, 2], values: [1, 1, 1, 1, 2, 2, 2, 2])
        // Channel 0 windows: 12, 16; channel 1 (×2): −24, −32.
        XCTAssertEqual(IntegerOps.conv2d(x2, weight: w2).values, [-12, -16])
    }

    func testConvMatchesNaiveLoopsOnRandomCases() {
        var rng = SeededRandom(seed: 11)
        for trial in 0..<12 {
            let n = Int.random(in: 1...3, using: &rng), c = Int.random(in: 1...3, using: &rng), m = Int.random(in: 1...4, using: &rng)
            let kh = Int.random(in: 1...3, using: &rng), kw = Int.random(in: 1...3, using: &rng)
            let h = Int.random(in: kh...7, using: &rng), w = Int.random(in: kw...7, using: &rng)
            let stride = (Int.random(in: 1...2, using: &rng), Int.random(in: 1...2, using: &rng))
            let padding = (Int.random(in: 0...kh - 1, using: &rng), Int.random(in: 0...kw - 1, using: &rng))
            let x = randomCodes([n, c, h, w], -8...7, &rng), wt = randomCodes([m, c, kh, kw], -8...7, &rng)
            let bias: [Int64]? = trial % 2 == 0 ? (0..<m).map { _ in Int64.random(in: -50...50, using: &rng) } : nil
            let expected = naiveConv2d(x, wt, bias: bias, stride: stride, padding: padding)
            for path in IntegerOps.ProductPath.allCases {
                XCTAssertEqual(IntegerOps.conv2d(x, weight: wt, bias: bias, stride: stride, padding: padding, path: path), expected,
                               "trial \(trial) \(path)")
            }
        }
        // Codes too wide for float32: the Int64 path, against the reference.
        let x = randomCodes([2, 2, 5, 5], -30000...30000, &rng), wt = randomCodes([3, 2, 3, 3], -30000...30000, &rng)
        XCTAssertEqual(IntegerOps.productPath(weight: wt, maxAbsInput: 30000), .int64)
        XCTAssertEqual(IntegerOps.conv2d(x, weight: wt, padding: (1, 1)), naiveConv2d(x, wt, bias: nil, stride: (1, 1), padding: (1, 1)))
    }

    func testBatchSplitOverCoresMatchesSingleSamples() {
        // Large enough to be split over the cores; each sample must equal its own product.
        var rng = SeededRandom(seed: 3)
        let x = randomCodes([64, 96], -8...7, &rng), w = randomCodes([48, 96], -8...7, &rng)
        let all = IntegerOps.matmul(x, weight: w)
        for r in [0, 31, 63] {
            let row = QTensor(shape: [1, 96], values: Array(x.values[(r * 96)..<((r + 1) * 96)]))
            XCTAssertEqual(IntegerOps.matmul(row, weight: w, path: .int64).values, Array(all.values[(r * 48)..<((r + 1) * 48)]))
        }
        let images = randomCodes([6, 3, 16, 16], -8...7, &rng), kernels = randomCodes([8, 3, 3, 3], -8...7, &rng)
        XCTAssertEqual(IntegerOps.conv2d(images, weight: kernels, padding: (1, 1)),
                       naiveConv2d(images, kernels, bias: nil, stride: (1, 1), padding: (1, 1)))
    }
}
