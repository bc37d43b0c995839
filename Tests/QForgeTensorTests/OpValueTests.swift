import QForgeTensor
import TestSupport
import XCTest

/// Exact values on small inputs.
final class OpValueTests: XCTestCase {
    func testBroadcastArithmetic() {
        let a = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual((a + Tensor(shape: [3], scalars: [10, 20, 30])).scalars, [11, 22, 33, 14, 25, 36])
        XCTAssertEqual((a * Tensor(shape: [2, 1], scalars: [2, -1])).scalars, [2, 4, 6, -4, -5, -6])
        XCTAssertEqual((a - 1).scalars, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(broadcastShape([2, 1, 3], [4, 1]), [2, 4, 3])
        XCTAssertNil(broadcastShape([2, 3], [4]))
    }

    func testReductionsAndShapes() {
        let a = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(a.sum().item, 21)
        XCTAssertEqual(a.sum(alongAxes: [0]).scalars, [5, 7, 9])
        XCTAssertEqual(a.sum(alongAxes: [1], keepingDimensions: true).shape, [2, 1])
        XCTAssertEqual(a.mean(alongAxes: [1]).scalars, [2, 5])
        XCTAssertEqual(a.T.scalars, [1, 4, 2, 5, 3, 6])
        XCTAssertEqual(a.slice(axis: 1, 1..<3).scalars, [2, 3, 5, 6])
        XCTAssertEqual(Tensor.concat([a, a.slice(axis: 1, 0..<1)], axis: 1).scalars, [1, 2, 3, 1, 4, 5, 6, 4])
        XCTAssertEqual(a.max(alongAxis: 1).scalars, [3, 6])
        XCTAssertEqual(Tensor(shape: [2, 3], scalars: [0, 5, 1, 9, 2, 3]).argmax(), [1, 0])
        XCTAssertEqual(a.gather(IntTensor(shape: [2], scalars: [2, 0])).scalars, [3, 4])
        let t = Tensor(shape: [2, 3, 2], scalars: (0..<12).map(Float.init)).transposed([1, 2, 0])
        XCTAssertEqual(t.shape, [3, 2, 2])
        XCTAssertEqual(t.scalars, [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11])
    }

    func testMatmulAgainstHandValues() {
        let a = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3, 2], scalars: [7, 8, 9, 10, 11, 12])
        XCTAssertEqual(a.matmul(b).scalars, [58, 64, 139, 154])
        let w = Tensor(shape: [2, 3], scalars: [1, 0, -1, 2, 1, 0])
        XCTAssertEqual(Tensor.linear(a, weight: w, bias: Tensor(shape: [2], scalars: [0.5, -1])).scalars, [-1.5, 3, -1.5, 12])
    }

    func testPortableGEMMMatchesBLAS() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let m = 37, n = 29, k = 41
            let a = randomTensor(ta ? [k, m] : [m, k], seed: 30), b = randomTensor(tb ? [n, k] : [k, n], seed: 31)
            var c1 = [Float](repeating: 0.5, count: m * n), c2 = c1
            GEMM.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 2, a: a.storage.pointer, lda: ta ? m : k,
                       b: b.storage.pointer, ldb: tb ? k : n, beta: 0.5, c: &c1, ldc: n)
            GEMM.portableSgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 2, a: a.storage.pointer, lda: ta ? m : k,
                               b: b.storage.pointer, ldb: tb ? k : n, beta: 0.5, c: &c2, ldc: n)
            // Reference in Double.
            var ref = [Float](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n {
                var s: Double = 0
                for p in 0..<k {
                    let av = ta ? a.scalars[p * m + i] : a.scalars[i * k + p]
                    let bv = tb ? b.scalars[j * k + p] : b.scalars[p * n + j]
                    s += Double(av) * Double(bv)
                }
                ref[i * n + j] = Float(2 * s + 0.25)
            } }
            assertClose(c1, ref, accuracy: 1e-4)
            assertClose(c2, ref, accuracy: 1e-4)
        }
    }

    func testConv2dAgainstDirectSum() {
        // 1 sample, 1 channel 3×3, kernel 2×2 of ones, padding 1: each output is a window sum.
        let x = Tensor(shape: [1, 1, 3, 3], scalars: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let w = Tensor(repeating: 1, shape: [1, 1, 2, 2])
        let y = Tensor.conv2d(x, weight: w, bias: Tensor(shape: [1], scalars: [100]), padding: (1, 1))
        XCTAssertEqual(y.shape, [1, 1, 4, 4])
        XCTAssertEqual(y.scalars, [101, 103, 105, 103, 105, 112, 116, 109, 111, 124, 128, 115, 107, 115, 117, 109])
        // Stride 2, no padding, two output channels.
        let w2 = Tensor(shape: [2, 1, 2, 2], scalars: [1, 0, 0, 0, 0, 0, 0, -1])
        XCTAssertEqual(Tensor.conv2d(x, weight: w2, stride: (2, 2)).scalars, [1, -5])
    }

    func testMaxPoolValues() {
        let x = Tensor(shape: [1, 1, 4, 4], scalars: [1, 5, 2, 0, 3, 4, 8, 1, 0, 0, -1, -2, 9, 0, -3, -4])
        XCTAssertEqual(x.maxPool2d(kernel: (2, 2)).scalars, [5, 8, 9, -1])
    }

    func testBatchNormNormalises() {
        let x = Tensor(shape: [4, 1], scalars: [1, 2, 3, 4])
        let r = Tensor.batchNorm(x, gamma: Tensor(shape: [1], scalars: [2]), beta: Tensor(shape: [1], scalars: [1]), epsilon: 0)
        // mean 2.5, biased var 1.25, unbiased 5/3
        let inv = 1 / Float(1.25).squareRoot()
        assertClose(r.output.scalars, [1 - 3 * inv, 1 - inv, 1 + inv, 1 + 3 * inv])
        XCTAssertEqual(r.mean, [2.5])
        XCTAssertEqual(r.unbiasedVariance[0], 5.0 / 3.0, accuracy: 1e-6)
    }

    func testSoftmaxCrossEntropyMatchesComposition() {
        let x = Tensor(shape: [2, 3], scalars: [1, 2, 3, -1, 0, 5])
        let labels = IntTensor(shape: [2], scalars: [0, 2])
        let fused = Tensor.softmaxCrossEntropy(logits: x, labels: labels).item
        let composed = (-x.logSoftmax().gather(labels).mean()).item
        XCTAssertEqual(fused, composed, accuracy: 1e-6)
        // log(e^1+e^2+e^3) - 1 = 2.40760596; log(e^-1+1+e^5) - 5 = 0.00917
        XCTAssertEqual(fused, (2.4076059644 + 0.0091709) / 2, accuracy: 1e-5)
        assertClose(x.softmax().sum(alongAxes: [1]).scalars, [1, 1])
    }

    func testCopyOnWrite() {
        let a = Tensor(shape: [2], scalars: [1, 2])
        var b = a
        b.withUnsafeMutableBufferPointer { $0[0] = 9 }
        XCTAssertEqual(a.scalars, [1, 2])
        XCTAssertEqual(b.scalars, [9, 2])
    }

    func testLargeElementwiseUsesBothCoresCorrectly() {
        let n = 1 << 18
        let a = Tensor(shape: [n], scalars: (0..<n).map { Float($0 % 1000) })
        let y = (a * 2).relu() - a
        XCTAssertEqual(y.scalars[999], 999)
        XCTAssertEqual(y.sum().item, Float((0..<n).map { Double($0 % 1000) }.reduce(0, +)), accuracy: 1)
    }
}

extension OpValueTests {
    /// Direct 7-loop convolution as the reference for im2col + GEMM, over many geometries
    /// (the flat-shift paths for stride 1 and the general path).
    func testConv2dMatchesDirectLoopsOverGeometries() {
        var seed: UInt64 = 100
        for (kh, kw) in [(1, 1), (3, 3), (2, 3), (3, 1)] {
            for (ph, pw) in [(0, 0), (1, 1), (0, 1), (2, 1)] where ph < kh + 1 && pw < kw + 1 {
                for (sh, sw) in [(1, 1), (2, 1), (2, 2)] {
                    seed += 1
                    let (n, c, h, w, o) = (2, 2, 5, 6, 3)
                    let ho = (h + 2 * ph - kh) / sh + 1, wo = (w + 2 * pw - kw) / sw + 1
                    let x = randomTensor([n, c, h, w], seed: seed), wt = randomTensor([o, c, kh, kw], seed: seed + 1000)
                    let y = Tensor.conv2d(x, weight: wt, stride: (sh, sw), padding: (ph, pw))
                    XCTAssertEqual(y.shape, [n, o, ho, wo])
                    var ref = [Float](repeating: 0, count: n * o * ho * wo)
                    for s in 0..<n { for oc in 0..<o { for i in 0..<ho { for j in 0..<wo {
                        var acc: Float = 0
                        for ci in 0..<c { for di in 0..<kh { for dj in 0..<kw {
                            let yy = i * sh + di - ph, xx = j * sw + dj - pw
                            if yy >= 0 && yy < h && xx >= 0 && xx < w {
                                acc += x.scalars[((s * c + ci) * h + yy) * w + xx] * wt.scalars[((oc * c + ci) * kh + di) * kw + dj]
                            }
                        } } }
                        ref[((s * o + oc) * ho + i) * wo + j] = acc
                    } } } }
                    assertClose(y.scalars, ref, accuracy: 1e-5)
                    if sh == 1 && sw == 1 {
                        checkGradients([x, wt]) { Tensor.conv2d($0[0], weight: $0[1], padding: (ph, pw)) }
                    }
                }
            }
        }
    }
}
