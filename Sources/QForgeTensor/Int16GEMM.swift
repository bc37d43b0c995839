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
///
/// The micro-kernel broadcasts a pair (A[r, 2q], A[r, 2q+1]) to every lane pair, multiplies it
/// by a panel's 16 column pairs and adds into 16-bit accumulators: `vpmullw` and `vpaddw`,
/// 16 lanes on AVX2, 32 on AVX-512 (the compiler does not form `vpmaddwd` or the 8-bit
/// `vpmaddubsw` / VNNI dot products from Swift). Each chunk's lanes are sign-extended and
/// added into Int32; even and odd lanes are summed per column once per tile. The multiplier
/// port bounds it at 32 multiply-adds per cycle on current Intel cores, like float32 FMA,
/// without the conversions and with half the bytes.
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

    /// The 32 lanes sign-extended to Int32, as (lanes 0..<16, lanes 16..<32): sign extensions,
    /// which leave the multiplier port free. (A lane loop into fresh values: the compiler
    /// vectorises this form.)
    @inlinable @inline(__always)
    static func widen(_ v: SIMD32<Int16>) -> (SIMD16<Int32>, SIMD16<Int32>) {
        var low = SIMD16<Int32>(), high = SIMD16<Int32>()
        for e in 0..<16 {
            low[e] = Int32(truncatingIfNeeded: v[e])
            high[e] = Int32(truncatingIfNeeded: v[e + 16])
        }
        return (low, high)
    }

    /// Adds `widen(v)` to the accumulators.
    @inlinable @inline(__always)
    static func widen(_ v: SIMD32<Int16>, into low: inout SIMD16<Int32>, _ high: inout SIMD16<Int32>) {
        let (l, h) = widen(v)
        low &+= l
        high &+= h
    }

    /// The 16 column sums of a panel from its widened lanes: column j is lane 2j (even k)
    /// plus lane 2j + 1 (odd k).
    @inlinable @inline(__always)
    static func columns(_ low: SIMD16<Int32>, _ high: SIMD16<Int32>) -> SIMD16<Int32> {
        var sums = SIMD16<Int32>()
        for j in 0..<8 {
            sums[j] = low[2 * j] &+ low[2 * j + 1]
            sums[j + 8] = high[2 * j] &+ high[2 * j + 1]
        }
        return sums
    }

    @inlinable @inline(__always)
    static func store(_ v: SIMD16<Int32>, _ c: UnsafeMutablePointer<Int32>) {
        UnsafeMutableRawPointer(c).storeBytes(of: v, as: SIMD16<Int32>.self)
    }

    /// Rows r…r+5 × one panel.
    @inlinable @inline(__always)
    static func tile6x16(_ a: UnsafePointer<Int16>, _ lda: Int, _ b: UnsafePointer<Int16>, _ pairs: Int, _ chunk: Int,
                         _ c: UnsafeMutablePointer<Int32>, _ ldc: Int) {
        // Int32 accumulators of the 32 lanes, as (lanes 0..<16, lanes 16..<32) per row.
        var l0 = SIMD16<Int32>(), h0 = SIMD16<Int32>(), l1 = SIMD16<Int32>(), h1 = SIMD16<Int32>()
        var l2 = SIMD16<Int32>(), h2 = SIMD16<Int32>(), l3 = SIMD16<Int32>(), h3 = SIMD16<Int32>()
        var l4 = SIMD16<Int32>(), h4 = SIMD16<Int32>(), l5 = SIMD16<Int32>(), h5 = SIMD16<Int32>()
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
            widen(s0, into: &l0, &h0); widen(s1, into: &l1, &h1); widen(s2, into: &l2, &h2)
            widen(s3, into: &l3, &h3); widen(s4, into: &l4, &h4); widen(s5, into: &l5, &h5)
            q0 = q1
        }
        store(columns(l0, h0), c); store(columns(l1, h1), c + ldc); store(columns(l2, h2), c + 2 * ldc)
        store(columns(l3, h3), c + 3 * ldc); store(columns(l4, h4), c + 4 * ldc); store(columns(l5, h5), c + 5 * ldc)
    }

    /// Rows r…r+5 × two adjacent panels.
    @inlinable @inline(__always)
    static func tile6x32(_ a: UnsafePointer<Int16>, _ lda: Int, _ b: UnsafePointer<Int16>, _ panelStride: Int, _ pairs: Int,
                         _ chunk: Int, _ c: UnsafeMutablePointer<Int32>, _ ldc: Int) {
        // Int32 accumulators (lanes 0..<16, lanes 16..<32) per row and panel.
        var l0 = SIMD16<Int32>(), h0 = SIMD16<Int32>(), l1 = SIMD16<Int32>(), h1 = SIMD16<Int32>()
        var l2 = SIMD16<Int32>(), h2 = SIMD16<Int32>(), l3 = SIMD16<Int32>(), h3 = SIMD16<Int32>()
        var l4 = SIMD16<Int32>(), h4 = SIMD16<Int32>(), l5 = SIMD16<Int32>(), h5 = SIMD16<Int32>()
        var l6 = SIMD16<Int32>(), h6 = SIMD16<Int32>(), l7 = SIMD16<Int32>(), h7 = SIMD16<Int32>()
        var l8 = SIMD16<Int32>(), h8 = SIMD16<Int32>(), l9 = SIMD16<Int32>(), h9 = SIMD16<Int32>()
        var l10 = SIMD16<Int32>(), h10 = SIMD16<Int32>(), l11 = SIMD16<Int32>(), h11 = SIMD16<Int32>()
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
            widen(s0, into: &l0, &h0); widen(s1, into: &l1, &h1); widen(s2, into: &l2, &h2); widen(s3, into: &l3, &h3)
            widen(s4, into: &l4, &h4); widen(s5, into: &l5, &h5); widen(s6, into: &l6, &h6); widen(s7, into: &l7, &h7)
            widen(s8, into: &l8, &h8); widen(s9, into: &l9, &h9); widen(s10, into: &l10, &h10); widen(s11, into: &l11, &h11)
            q0 = q1
        }
        store(columns(l0, h0), c); store(columns(l1, h1), c + 16)
        store(columns(l2, h2), c + ldc); store(columns(l3, h3), c + ldc + 16)
        store(columns(l4, h4), c + 2 * ldc); store(columns(l5, h5), c + 2 * ldc + 16)
        store(columns(l6, h6), c + 3 * ldc); store(columns(l7, h7), c + 3 * ldc + 16)
        store(columns(l8, h8), c + 4 * ldc); store(columns(l9, h9), c + 4 * ldc + 16)
        store(columns(l10, h10), c + 5 * ldc); store(columns(l11, h11), c + 5 * ldc + 16)
    }
}

// MARK: - Direct convolution

/// The Int16 product of a stride-1 convolution read straight from the image (no im2col):
/// C[r, p] = Σ_q A[r, 2q]·X[p + o_q, 0] + A[r, 2q+1]·X[p + o_q, 1] for weight rows r and
/// positions p, where X is the image as 32-bit words (two Int16 codes: the channels 2c', 2c'+1
/// of one pixel), planar per channel pair ([C/2][H + 2ph][W + 2pw] words), p = i·(W + 2pw) + j
/// an output position in the padded image's row stride (the columns j ≥ OW of each row are
/// not outputs and are discarded), and o_q the word offset of pair q (its channel pair's
/// plane, kernel row and column). Sixteen consecutive positions are one SIMD32<Int16> load,
/// laid out as a packed panel of `Int16GEMM` (column j: lanes 2j, 2j + 1), and the rows of A
/// are broadcast as in `Int16GEMM`: the same 16-bit lanes, chunks and widening, so the same
/// exactness conditions hold for the same pair order.
extension Int16GEMM {
    /// Rows of A per tile of `directLoop`.
    public static let directRows = 4

    /// C[r, p] for rows 0..<rows (a multiple of `directRows`) and positions 0..<positions (a
    /// multiple of 16 · `panelsPerTile`) at c[r · ldc + p]. A: `rows` rows of `lda` Int16,
    /// pairs adjacent in the order of `offsets`; `image` the planar image (Int16 pairs) with
    /// every word read (p + offsets[q] for all p, q) allocated. `panelsPerTile` is 3 (4 × 48
    /// tiles, for 32-register machines) or 1 (4 × 16).
    @inlinable @inline(__always)
    public static func directLoop(a: UnsafePointer<Int16>, lda: Int, rows: Int, image: UnsafePointer<Int16>, offsets: UnsafePointer<Int32>,
                                  positions: Int, pairs: Int, chunk: Int, c: UnsafeMutablePointer<Int32>, ldc: Int, panelsPerTile: Int) {
        let width = 16 * panelsPerTile
        precondition(rows % directRows == 0 && positions % width == 0 && lda >= 2 * pairs && chunk >= 1 && ldc >= positions,
                     "Int16GEMM.directLoop: rows \(rows), positions \(positions), lda \(lda), pairs \(pairs), chunk \(chunk), ldc \(ldc)")
        for p in stride(from: 0, to: positions, by: width) {
            for r in stride(from: 0, to: rows, by: directRows) {
                if panelsPerTile == 3 {
                    directTile4x48(a + r * lda, lda, image + 2 * p, offsets, pairs, chunk, c + r * ldc + p, ldc)
                } else {
                    directTile4x16(a + r * lda, lda, image + 2 * p, offsets, pairs, chunk, c + r * ldc + p, ldc)
                }
            }
        }
    }

    /// The 16 positions' pair at word offset `offset` from `x`.
    @inlinable @inline(__always)
    static func loadWords(_ x: UnsafePointer<Int16>, _ offset: Int32) -> SIMD32<Int16> {
        UnsafeRawPointer(x + 2 * Int(offset)).loadUnaligned(as: SIMD32<Int16>.self)
    }

    /// Rows r…r+3 × positions p…p+47.
    @inlinable @inline(__always)
    static func directTile4x48(_ a: UnsafePointer<Int16>, _ lda: Int, _ x: UnsafePointer<Int16>, _ offsets: UnsafePointer<Int32>,
                               _ pairs: Int, _ chunk: Int, _ c: UnsafeMutablePointer<Int32>, _ ldc: Int) {
        // Int32 accumulators (lanes 0..<16, lanes 16..<32) per row and panel: row-major.
        var l0 = SIMD16<Int32>(), h0 = SIMD16<Int32>(), l1 = SIMD16<Int32>(), h1 = SIMD16<Int32>()
        var l2 = SIMD16<Int32>(), h2 = SIMD16<Int32>(), l3 = SIMD16<Int32>(), h3 = SIMD16<Int32>()
        var l4 = SIMD16<Int32>(), h4 = SIMD16<Int32>(), l5 = SIMD16<Int32>(), h5 = SIMD16<Int32>()
        var l6 = SIMD16<Int32>(), h6 = SIMD16<Int32>(), l7 = SIMD16<Int32>(), h7 = SIMD16<Int32>()
        var l8 = SIMD16<Int32>(), h8 = SIMD16<Int32>(), l9 = SIMD16<Int32>(), h9 = SIMD16<Int32>()
        var l10 = SIMD16<Int32>(), h10 = SIMD16<Int32>(), l11 = SIMD16<Int32>(), h11 = SIMD16<Int32>()
        var q0 = 0
        while q0 < pairs {
            let q1 = Swift.min(q0 + chunk, pairs)
            var s0 = SIMD32<Int16>(), s1 = SIMD32<Int16>(), s2 = SIMD32<Int16>(), s3 = SIMD32<Int16>()
            var s4 = SIMD32<Int16>(), s5 = SIMD32<Int16>(), s6 = SIMD32<Int16>(), s7 = SIMD32<Int16>()
            var s8 = SIMD32<Int16>(), s9 = SIMD32<Int16>(), s10 = SIMD32<Int16>(), s11 = SIMD32<Int16>()
            var ap = a + 2 * q0
            for q in q0..<q1 {
                let o = offsets[q]
                let w0 = loadWords(x, o), w1 = loadWords(x + 32, o), w2 = loadWords(x + 64, o)
                var v = broadcastPair(ap)
                s0 &+= v &* w0; s1 &+= v &* w1; s2 &+= v &* w2
                v = broadcastPair(ap + lda)
                s3 &+= v &* w0; s4 &+= v &* w1; s5 &+= v &* w2
                v = broadcastPair(ap + 2 * lda)
                s6 &+= v &* w0; s7 &+= v &* w1; s8 &+= v &* w2
                v = broadcastPair(ap + 3 * lda)
                s9 &+= v &* w0; s10 &+= v &* w1; s11 &+= v &* w2
                ap += 2
            }
            widen(s0, into: &l0, &h0); widen(s1, into: &l1, &h1); widen(s2, into: &l2, &h2); widen(s3, into: &l3, &h3)
            widen(s4, into: &l4, &h4); widen(s5, into: &l5, &h5); widen(s6, into: &l6, &h6); widen(s7, into: &l7, &h7)
            widen(s8, into: &l8, &h8); widen(s9, into: &l9, &h9); widen(s10, into: &l10, &h10); widen(s11, into: &l11, &h11)
            q0 = q1
        }
        store(columns(l0, h0), c); store(columns(l1, h1), c + 16); store(columns(l2, h2), c + 32)
        store(columns(l3, h3), c + ldc); store(columns(l4, h4), c + ldc + 16); store(columns(l5, h5), c + ldc + 32)
        store(columns(l6, h6), c + 2 * ldc); store(columns(l7, h7), c + 2 * ldc + 16); store(columns(l8, h8), c + 2 * ldc + 32)
        store(columns(l9, h9), c + 3 * ldc); store(columns(l10, h10), c + 3 * ldc + 16); store(columns(l11, h11), c + 3 * ldc + 32)
    }

    /// Rows r…r+3 × positions p…p+15.
    @inlinable @inline(__always)
    static func directTile4x16(_ a: UnsafePointer<Int16>, _ lda: Int, _ x: UnsafePointer<Int16>, _ offsets: UnsafePointer<Int32>,
                               _ pairs: Int, _ chunk: Int, _ c: UnsafeMutablePointer<Int32>, _ ldc: Int) {
        var l0 = SIMD16<Int32>(), h0 = SIMD16<Int32>(), l1 = SIMD16<Int32>(), h1 = SIMD16<Int32>()
        var l2 = SIMD16<Int32>(), h2 = SIMD16<Int32>(), l3 = SIMD16<Int32>(), h3 = SIMD16<Int32>()
        var q0 = 0
        while q0 < pairs {
            let q1 = Swift.min(q0 + chunk, pairs)
            var s0 = SIMD32<Int16>(), s1 = SIMD32<Int16>(), s2 = SIMD32<Int16>(), s3 = SIMD32<Int16>()
            var ap = a + 2 * q0
            for q in q0..<q1 {
                let w = loadWords(x, offsets[q])
                s0 &+= broadcastPair(ap) &* w
                s1 &+= broadcastPair(ap + lda) &* w
                s2 &+= broadcastPair(ap + 2 * lda) &* w
                s3 &+= broadcastPair(ap + 3 * lda) &* w
                ap += 2
            }
            widen(s0, into: &l0, &h0); widen(s1, into: &l1, &h1); widen(s2, into: &l2, &h2); widen(s3, into: &l3, &h3)
            q0 = q1
        }
        store(columns(l0, h0), c); store(columns(l1, h1), c + ldc); store(columns(l2, h2), c + 2 * ldc); store(columns(l3, h3), c + 3 * ldc)
    }

    /// `directLoop` on 256-bit vectors (4 × 16 tiles), compiled with the package's kernel flags.
    public static func directProduct(a: UnsafePointer<Int16>, lda: Int, rows: Int, image: UnsafePointer<Int16>, offsets: UnsafePointer<Int32>,
                                     positions: Int, pairs: Int, chunk: Int, c: UnsafeMutablePointer<Int32>, ldc: Int) {
        directLoop(a: a, lda: lda, rows: rows, image: image, offsets: offsets, positions: positions, pairs: pairs, chunk: chunk, c: c, ldc: ldc,
                   panelsPerTile: 1)
    }
}
