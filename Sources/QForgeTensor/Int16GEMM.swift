/// Integer GEMM on 16-bit lanes: C[r, j] = Σ_k A[r, k] · B[j, k] (Int16 codes, Int32 results).
///
/// Every step wraps: products and sums in 16-bit lanes are taken modulo 2^16, the widened
/// sums modulo 2^32. Wrapping arithmetic is exact modulo its width in any order, so a result is
/// the true integer whenever the true value fits the lane that holds it. The caller proves that:
///
/// - a lane sums, for one column, the products of one parity of k (even or odd) over one chunk
///   of `chunk` consecutive pairs (k = 2q, 2q + 1): each such sum must lie in −32768…32767;
/// - every final C[r, j] must lie in Int32.
///
/// Codes outside Int16 are taken modulo 2^16, which is harmless under the same two conditions.
/// A 16-lane multiply and add do 16 multiply-adds in two instructions (AVX2: `vpmullw`,
/// `vpaddw`), against 8 per fused multiply-add in float32; AVX-512 doubles both.
///
/// Layouts. A: `rows` rows of `lda` Int16 (lda even, ≥ 2 · pairs), k-pairs adjacent, rows a
/// multiple of `tileRows` (pad with zero rows). B is packed by `pack`: columns in panels of
/// `panelWidth`, each panel holding per pair q the 16 columns' (B[j, 2q], B[j, 2q+1]).
public enum Int16GEMM {
    /// Columns per panel: one SIMD32<Int16> holds 16 columns × one pair of k.
    public static let panelWidth = 16
    /// Rows of A per micro-kernel call.
    public static let tileRows = 6

    /// Int16 values of the packed form of B [n, k] (Int32 codes, row j = column j of C).
    public static func packedCount(n: Int, k: Int) -> Int {
        (n + panelWidth - 1) / panelWidth * ((k + 1) / 2) * 2 * panelWidth
    }

    /// Packs B [n, k] into `dst` (`packedCount` values), zero-filling the padding columns and the
    /// odd k. Values are taken modulo 2^16.
    public static func pack(_ b: UnsafePointer<Int32>, n: Int, k: Int, into dst: UnsafeMutablePointer<Int16>) {
        let pairs = (k + 1) / 2, panels = (n + panelWidth - 1) / panelWidth
        dst.initialize(repeating: 0, count: panels * pairs * 2 * panelWidth)
        for j in 0..<n {
            let column = dst + (j / panelWidth) * pairs * 2 * panelWidth + (j % panelWidth) * 2
            let row = b + j * k
            for p in 0..<k { column[(p / 2) * 2 * panelWidth + p % 2] = Int16(truncatingIfNeeded: row[p]) }
        }
    }

    /// C = A · Bᵀ for A rows 0..<rows (a multiple of `tileRows`) and all `panels` panels of the
    /// packed B: C[r, j] at c[r · ldc + j], j < panels · 16 (ldc ≥ that). `chunk` ≥ 1 pairs are
    /// summed in 16-bit lanes before widening to Int32. This is the 256-bit instantiation
    /// (AVX2 on x86-64, compiled with the package's kernel flags); `QForgeAVX512` holds the
    /// 512-bit one.
    public static func product(a: UnsafePointer<Int16>, lda: Int, rows: Int, b: UnsafePointer<Int16>, panels: Int,
                               pairs: Int, chunk: Int, c: UnsafeMutablePointer<Int32>, ldc: Int) {
        kernelLoop(a: a, lda: lda, rows: rows, b: b, panels: panels, pairs: pairs, chunk: chunk, c: c, ldc: ldc, twoPanels: false)
    }

    /// The tile loop behind `product`, inlined into each instantiation so it is compiled for
    /// that module's instruction set. `twoPanels` uses 6 × 32 tiles (12 vector accumulators:
    /// for 32-register machines); otherwise 6 × 16.
    @inlinable @inline(__always)
    public static func kernelLoop(a: UnsafePointer<Int16>, lda: Int, rows: Int, b: UnsafePointer<Int16>, panels: Int,
                                  pairs: Int, chunk: Int, c: UnsafeMutablePointer<Int32>, ldc: Int, twoPanels: Bool) {
        precondition(rows % 6 == 0 && lda % 2 == 0 && lda >= 2 * pairs && chunk >= 1 && ldc >= 16 * panels,
                     "Int16GEMM: rows \(rows), lda \(lda), pairs \(pairs), chunk \(chunk), ldc \(ldc)")
        let panelStride = pairs * 32
        for r in stride(from: 0, to: rows, by: 6) {
            var p = 0
            if twoPanels {
                while p + 2 <= panels {
                    tile6x32(a + r * lda, lda, b + p * panelStride, panelStride, pairs, chunk, c + r * ldc + p * 16, ldc)
                    p += 2
                }
            }
            while p < panels {
                tile6x16(a + r * lda, lda, b + p * panelStride, pairs, chunk, c + r * ldc + p * 16, ldc)
                p += 1
            }
        }
    }

    /// The k-pair (A[r, 2q], A[r, 2q+1]) in every lane pair.
    @inlinable @inline(__always)
    static func broadcastPair(_ a: UnsafePointer<Int16>) -> SIMD32<Int16> {
        unsafeBitCast(SIMD16<UInt32>(repeating: UnsafeRawPointer(a).loadUnaligned(as: UInt32.self)), to: SIMD32<Int16>.self)
    }

    @inlinable @inline(__always)
    static func load(_ b: UnsafePointer<Int16>) -> SIMD32<Int16> {
        UnsafeRawPointer(b).loadUnaligned(as: SIMD32<Int16>.self)
    }

    /// Column j's sum: its even-k lane (low half of Int32 lane j) plus its odd-k lane (high half).
    @inlinable @inline(__always)
    static func widen(_ v: SIMD32<Int16>) -> SIMD16<Int32> {
        let pairs = unsafeBitCast(v, to: SIMD16<Int32>.self)
        return ((pairs &<< 16) &>> 16) &+ (pairs &>> 16)
    }

    @inlinable @inline(__always)
    static func store(_ v: SIMD16<Int32>, _ c: UnsafeMutablePointer<Int32>) {
        UnsafeMutableRawPointer(c).storeBytes(of: v, as: SIMD16<Int32>.self)
    }

    /// Rows r…r+5 × one panel.
    @inlinable @inline(__always)
    static func tile6x16(_ a: UnsafePointer<Int16>, _ lda: Int, _ b: UnsafePointer<Int16>, _ pairs: Int, _ chunk: Int,
                         _ c: UnsafeMutablePointer<Int32>, _ ldc: Int) {
        var t0 = SIMD16<Int32>(), t1 = SIMD16<Int32>(), t2 = SIMD16<Int32>()
        var t3 = SIMD16<Int32>(), t4 = SIMD16<Int32>(), t5 = SIMD16<Int32>()
        var q0 = 0
        while q0 < pairs {
            let q1 = Swift.min(q0 + chunk, pairs)
            var s0 = SIMD32<Int16>(), s1 = SIMD32<Int16>(), s2 = SIMD32<Int16>()
            var s3 = SIMD32<Int16>(), s4 = SIMD32<Int16>(), s5 = SIMD32<Int16>()
            var ap = a + 2 * q0, bp = b + 32 * q0
            for _ in q0..<q1 {
                let w = load(bp)
                s0 &+= broadcastPair(ap) &* w
                s1 &+= broadcastPair(ap + lda) &* w
                s2 &+= broadcastPair(ap + 2 * lda) &* w
                s3 &+= broadcastPair(ap + 3 * lda) &* w
                s4 &+= broadcastPair(ap + 4 * lda) &* w
                s5 &+= broadcastPair(ap + 5 * lda) &* w
                ap += 2
                bp += 32
            }
            t0 &+= widen(s0); t1 &+= widen(s1); t2 &+= widen(s2)
            t3 &+= widen(s3); t4 &+= widen(s4); t5 &+= widen(s5)
            q0 = q1
        }
        store(t0, c); store(t1, c + ldc); store(t2, c + 2 * ldc)
        store(t3, c + 3 * ldc); store(t4, c + 4 * ldc); store(t5, c + 5 * ldc)
    }

    /// Rows r…r+5 × two adjacent panels.
    @inlinable @inline(__always)
    static func tile6x32(_ a: UnsafePointer<Int16>, _ lda: Int, _ b: UnsafePointer<Int16>, _ panelStride: Int, _ pairs: Int,
                         _ chunk: Int, _ c: UnsafeMutablePointer<Int32>, _ ldc: Int) {
        var t0 = SIMD16<Int32>(), t1 = SIMD16<Int32>(), t2 = SIMD16<Int32>(), t3 = SIMD16<Int32>()
        var t4 = SIMD16<Int32>(), t5 = SIMD16<Int32>(), t6 = SIMD16<Int32>(), t7 = SIMD16<Int32>()
        var t8 = SIMD16<Int32>(), t9 = SIMD16<Int32>(), t10 = SIMD16<Int32>(), t11 = SIMD16<Int32>()
        var q0 = 0
        while q0 < pairs {
            let q1 = Swift.min(q0 + chunk, pairs)
            var s0 = SIMD32<Int16>(), s1 = SIMD32<Int16>(), s2 = SIMD32<Int16>(), s3 = SIMD32<Int16>()
            var s4 = SIMD32<Int16>(), s5 = SIMD32<Int16>(), s6 = SIMD32<Int16>(), s7 = SIMD32<Int16>()
            var s8 = SIMD32<Int16>(), s9 = SIMD32<Int16>(), s10 = SIMD32<Int16>(), s11 = SIMD32<Int16>()
            var ap = a + 2 * q0, bp = b + 32 * q0
            for _ in q0..<q1 {
                let w0 = load(bp), w1 = load(bp + panelStride)
                var x = broadcastPair(ap)
                s0 &+= x &* w0; s1 &+= x &* w1
                x = broadcastPair(ap + lda)
                s2 &+= x &* w0; s3 &+= x &* w1
                x = broadcastPair(ap + 2 * lda)
                s4 &+= x &* w0; s5 &+= x &* w1
                x = broadcastPair(ap + 3 * lda)
                s6 &+= x &* w0; s7 &+= x &* w1
                x = broadcastPair(ap + 4 * lda)
                s8 &+= x &* w0; s9 &+= x &* w1
                x = broadcastPair(ap + 5 * lda)
                s10 &+= x &* w0; s11 &+= x &* w1
                ap += 2
                bp += 32
            }
            t0 &+= widen(s0); t1 &+= widen(s1); t2 &+= widen(s2); t3 &+= widen(s3)
            t4 &+= widen(s4); t5 &+= widen(s5); t6 &+= widen(s6); t7 &+= widen(s7)
            t8 &+= widen(s8); t9 &+= widen(s9); t10 &+= widen(s10); t11 &+= widen(s11)
            q0 = q1
        }
        store(t0, c); store(t1, c + 16)
        store(t2, c + ldc); store(t3, c + ldc + 16)
        store(t4, c + 2 * ldc); store(t5, c + 2 * ldc + 16)
        store(t6, c + 3 * ldc); store(t7, c + 3 * ldc + 16)
        store(t8, c + 4 * ldc); store(t9, c + 4 * ldc + 16)
        store(t10, c + 5 * ldc); store(t11, c + 5 * ldc + 16)
    }
}
