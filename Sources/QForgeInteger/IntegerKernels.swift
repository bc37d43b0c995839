import QForgeTensor

/// The loops behind `IntegerOps.matmul` and `IntegerOps.conv2d`: one exact product
/// C[m×n] = A[m×k] · B[k×n] of Int32 codes into Int64, computed either with float32 GEMM
/// (when every partial sum is an integer of magnitude ≤ 2^24, hence exact in Float) or with
/// Int64 multiply-adds. Both give the same integers; which one runs is a speed choice.
enum IntegerKernels {
    /// C = A·B, all row-major; B is k×n, or n×k read transposed when `transB`. Rows of C
    /// are split over the cores when `parallel` and the work is large.
    static func product(_ path: IntegerOps.ProductPath, a: UnsafePointer<Int32>, b: UnsafePointer<Int32>, transB: Bool,
                        m: Int, n: Int, k: Int, c: UnsafeMutablePointer<Int64>, parallel: Bool) {
        if m == 0 || n == 0 { return }
        switch path {
        case .float32:
            let af = UnsafeMutablePointer<Float>.allocate(capacity: m * k), bf = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
            let cf = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
            defer { af.deallocate(); bf.deallocate(); cf.deallocate() }
            for i in 0..<(m * k) { af[i] = Float(a[i]) }
            for i in 0..<(k * n) { bf[i] = Float(b[i]) }
            if k == 0 {
                cf.initialize(repeating: 0, count: m * n)
            } else {
                GEMM.sgemm(transA: false, transB: transB, m: m, n: n, k: k, a: af, lda: k, b: bf, ldb: transB ? k : n,
                           c: cf, ldc: n, parallel: parallel)
            }
            for i in 0..<(m * n) { c[i] = Int64(cf[i]) }
        case .int64:
            if transB {
                // Int64 rows want B as k×n: transpose it once.
                let bt = UnsafeMutablePointer<Int32>.allocate(capacity: k * n)
                defer { bt.deallocate() }
                for j in 0..<n { for p in 0..<k { bt[p * n + j] = b[j * k + p] } }
                int64Product(a: a, b: bt, m: m, n: n, k: k, c: c, parallel: parallel)
            } else {
                int64Product(a: a, b: b, m: m, n: n, k: k, c: c, parallel: parallel)
            }
        }
    }

    /// Row i of C accumulates a[i, p] · (row p of B) for every p: contiguous multiply-adds
    /// over n that the compiler vectorises (sign-extended 32×32→64 multiplies). Four rows of
    /// C are updated per pass over B, so B is read a quarter as often.
    static func int64Product(a: UnsafePointer<Int32>, b: UnsafePointer<Int32>, m: Int, n: Int, k: Int,
                             c: UnsafeMutablePointer<Int64>, parallel: Bool) {
        let body = { (rows: Range<Int>) in
            var i = rows.lowerBound
            while i + 4 <= rows.upperBound {
                let c0 = c + i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n
                c0.initialize(repeating: 0, count: 4 * n)
                for p in 0..<k {
                    let a0 = Int64(a[i * k + p]), a1 = Int64(a[(i + 1) * k + p])
                    let a2 = Int64(a[(i + 2) * k + p]), a3 = Int64(a[(i + 3) * k + p])
                    let brow = b + p * n
                    for j in 0..<n {
                        let bv = Int64(brow[j])
                        c0[j] &+= a0 &* bv
                        c1[j] &+= a1 &* bv
                        c2[j] &+= a2 &* bv
                        c3[j] &+= a3 &* bv
                    }
                }
                i += 4
            }
            for r in i..<rows.upperBound {
                let crow = c + r * n
                crow.initialize(repeating: 0, count: n)
                for p in 0..<k {
                    let av = Int64(a[r * k + p]), brow = b + p * n
                    for j in 0..<n { crow[j] &+= av &* Int64(brow[j]) }
                }
            }
        }
        if parallel { Parallel.forRange(m, cost: n * k, body) } else { body(0..<m) }
    }

    /// Row (ci, di, dj) of the column matrix [C·kh·kw, OH·OW] holds the input at
    /// (ci, i·sh+di−ph, j·sw+dj−pw) in column i·OW+j, and 0 where that lies in the padding.
    static func im2col(_ x: UnsafePointer<Int32>, _ cols: UnsafeMutablePointer<Int32>, _ g: ConvShape) {
        for ci in 0..<g.c {
            for di in 0..<g.kh {
                for dj in 0..<g.kw {
                    let row = cols + ((ci * g.kh + di) * g.kw + dj) * g.ho * g.wo
                    for i in 0..<g.ho {
                        let y = i * g.sh + di - g.ph
                        let dst = row + i * g.wo
                        if y < 0 || y >= g.h {
                            dst.initialize(repeating: 0, count: g.wo)
                            continue
                        }
                        let src = x + (ci * g.h + y) * g.w
                        for j in 0..<g.wo {
                            let xx = j * g.sw + dj - g.pw
                            dst[j] = (xx >= 0 && xx < g.w) ? src[xx] : 0
                        }
                    }
                }
            }
        }
    }
}

/// Sizes of one integer convolution or pooling window: input [n, c, h, w], kernel kh×kw,
/// stride, padding, output ho×wo (floor division, as ONNX without ceil mode).
struct ConvShape {
    let n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo: Int

    init(_ op: String, input: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)) {
        precondition(input.count == 4, "\(op): input must be [N, C, H, W], got \(input)")
        n = input[0]; c = input[1]; h = input[2]; w = input[3]
        (kh, kw) = kernel; (sh, sw) = stride; (ph, pw) = padding
        precondition(kh > 0 && kw > 0 && sh > 0 && sw > 0 && ph >= 0 && pw >= 0,
                     "\(op): bad kernel \(kernel), stride \(stride) or padding \(padding)")
        precondition(h + 2 * ph >= kh && w + 2 * pw >= kw,
                     "\(op): kernel \(kh)×\(kw) does not fit input \(h)×\(w) with padding \(padding)")
        ho = (h + 2 * ph - kh) / sh + 1
        wo = (w + 2 * pw - kw) / sw + 1
    }
}
