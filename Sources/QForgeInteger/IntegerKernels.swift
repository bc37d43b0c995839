import CQForgeKernels
import QForgeAVX512
import QForgeTensor

/// The loops behind `IntegerOps.matmul` and `IntegerOps.conv2d`: one exact product
/// C[m×n] = A[m×k] · B[k×n] of Int32 codes into Int64, computed with float32 GEMM (when every
/// partial sum is an integer of magnitude ≤ 2^24, hence exact in Float), with Int64
/// multiply-adds, or (`int16Matmul`, `int16Conv`) with the wrapping Int16 lanes of `Int16GEMM`
/// when `PackedWeights.int16Chunk` proves them exact. All give the same integers; which one
/// runs is a speed choice.
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
        case .int64, .int16:  // the Int16 path has its own entry points (`int16Matmul`, `int16Conv`)
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

    /// The smallest and largest of n ≥ 1 values, in blocks the compiler vectorises.
    static func extremes(_ p: UnsafePointer<Int64>, _ n: Int) -> (Int64, Int64) {
        var low = SIMD8<Int64>(repeating: p[0]), high = low
        var i = 0
        while i + 8 <= n {
            for e in 0..<8 {  // a lane loop: vectorised, where pointwiseMin is not
                low[e] = Swift.min(low[e], p[i + e])
                high[e] = Swift.max(high[e], p[i + e])
            }
            i += 8
        }
        var lo = low.min(), hi = high.max()
        while i < n {
            lo = Swift.min(lo, p[i])
            hi = Swift.max(hi, p[i])
            i += 1
        }
        return (lo, hi)
    }

    /// n ≤ 16 accumulators minus `offset`, truncated to T (lanes past n are 0).
    @inline(__always)
    static func load16<T: FixedWidthInteger & SIMDScalar>(_ p: UnsafePointer<Int64>, _ n: Int, offset: Int64, as: T.Type) -> SIMD16<T> {
        var v = SIMD16<T>()
        if n == 16 {  // a constant trip count, which the compiler turns into vector code
            for i in 0..<16 { v[i] = T(truncatingIfNeeded: p[i] &- offset) }
        } else {
            for i in 0..<n { v[i] = T(truncatingIfNeeded: p[i] &- offset) }
        }
        return v
    }

    /// Stores the first n ≤ 16 lanes.
    @inline(__always)
    static func store16(_ v: SIMD16<Int32>, _ p: UnsafeMutablePointer<Int32>, _ n: Int) {
        if n == 16 {
            UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Int32>.self)
        } else {
            for i in 0..<n { p[i] = v[i] }
        }
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

// MARK: - The Int16 path

extension IntegerKernels {
    /// Products with at least this many multiply-adds are split over the cores on the Int16
    /// path (below, starting the threads costs more than the work).
    static let int16ParallelWork = 1 << 20

    /// y[r, j] = Σ_k x[r, k] · w[j, k] + bias[j], x [n, k] codes, w the packed [m, k] weights,
    /// y [n, m] (Int64).
    static func int16Matmul(_ x: UnsafePointer<Int32>, n: Int, weights: PackedWeights, chunk: Int,
                            bias: UnsafePointer<Int64>?, out: UnsafeMutablePointer<Int64>) {
        let m = weights.rows
        int16MatmulBlocks(x, n: n, weights: weights, chunk: { _, _ in chunk }) { r0, rows, c, ldc in
            for r in 0..<rows {
                let src = c + r * ldc, dst = out + (r0 + r) * m
                if let bias {
                    for j in 0..<m { dst[j] = Int64(src[j]) &+ bias[j] }
                } else {
                    for j in 0..<m { dst[j] = Int64(src[j]) }
                }
            }
        }
    }

    /// Rows of A per block of `int16MatmulBlocks` (a multiple of `Int16GEMM.tileRows`): A and C
    /// of a block stay in the core's L2 cache.
    static let int16BlockRows = 96

    /// The Int16 matmul of x [n, k] codes and the packed [m, k] weights, block by block: each
    /// block of rows is converted to Int16, multiplied, and handed to `emit(r0, rows, c, ldc)`
    /// with c[r · ldc + j] = Σ_p x[r0 + r, p] · w[j, p] (Int32, j < m; ldc ≥ m, a multiple of
    /// 16, the columns past m hold 0). `chunk(lo, hi)` gives the chunk length for a block whose
    /// codes lie in lo…hi (it may check them). Rows are split over the cores when the work is
    /// large; `emit` runs on the worker that owns the block (blocks are disjoint).
    ///
    /// With `bytes` (the weights' `bytePanels`, on a VNNI CPU) the codes must be unsigned bytes
    /// and the product multiplies bytes (`qf_uint8_gemm_vnni`); the sums are the same.
    static func int16MatmulBlocks(_ x: UnsafePointer<Int32>, n: Int, weights: PackedWeights, bytes: [Int8]? = nil,
                                  chunk: (Int64, Int64) -> Int, emit: (Int, Int, UnsafeMutablePointer<Int32>, Int) -> Void) {
        let m = weights.rows, k = weights.depth, pairs = weights.pairs, quads = weights.quads
        let lda = bytes == nil ? 2 * pairs : 4 * quads  // codes per row of A: Int16 pairs or byte quads
        let panels = weights.panelCount, ldc = panels * Int16GEMM.panelWidth, tile = Int16GEMM.tileRows
        let tiles = (n + tile - 1) / tile
        let parts = n * m * k >= int16ParallelWork ? min(Parallel.coreCount, tiles) : 1
        let block = min(int16BlockRows, tiles * tile)
        Parallel.forEach(parts) { part in
            // Each part owns whole tiles, so the parts get equal work.
            let first = min(tiles * part / parts * tile, n), last = min(tiles * (part + 1) / parts * tile, n)
            guard first < last else { return }
            let a16 = UnsafeMutablePointer<Int16>.allocate(capacity: bytes == nil ? block * lda : 0)
            let a8 = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes == nil ? 0 : block * lda)
            let c = UnsafeMutablePointer<Int32>.allocate(capacity: block * ldc)
            defer { a16.deallocate(); a8.deallocate(); c.deallocate() }
            for r0 in stride(from: first, to: last, by: block) {
                let rows = min(block, last - r0), padded = (rows + tile - 1) / tile * tile
                var lo = Int32.max, hi = Int32.min
                for r in 0..<rows {
                    let src = x + (r0 + r) * k
                    for p in 0..<k {
                        lo = Swift.min(lo, src[p])
                        hi = Swift.max(hi, src[p])
                    }
                    if bytes == nil {
                        let dst = a16 + r * lda
                        for p in 0..<k { dst[p] = Int16(truncatingIfNeeded: src[p]) }
                        (dst + k).initialize(repeating: 0, count: lda - k)  // the odd k's partner
                    } else {
                        let dst = a8 + r * lda
                        for p in 0..<k { dst[p] = UInt8(truncatingIfNeeded: src[p]) }
                        (dst + k).initialize(repeating: 0, count: lda - k)  // the last quad's padding
                    }
                }
                let length = chunk(Int64(lo), Int64(hi))
                if let bytes {
                    precondition(lo >= 0 && hi <= 255, "int16MatmulBlocks: codes \(lo)…\(hi) are not unsigned bytes")
                    (a8 + rows * lda).initialize(repeating: 0, count: (padded - rows) * lda)  // padding rows
                    bytes.withUnsafeBufferPointer { b in qf_uint8_gemm_vnni(a8, lda, padded, b.baseAddress!, panels, quads, c, ldc) }
                } else {
                    (a16 + rows * lda).initialize(repeating: 0, count: (padded - rows) * lda)
                    weights.panels.withUnsafeBufferPointer { b in
                        int16Product(a: a16, lda: lda, rows: padded, b: b.baseAddress!, panels: panels, pairs: pairs, chunk: length, c: c, ldc: ldc)
                    }
                }
                emit(r0, rows, c, ldc)
            }
        }
    }

    /// y [n, m, ho, wo] (Int64) = conv(x, w) + bias on the Int16 path.
    static func int16Conv(_ x: UnsafePointer<Int32>, _ g: ConvShape, weights: PackedWeights, chunk: Int,
                          bias: UnsafePointer<Int64>?, out: UnsafeMutablePointer<Int64>) {
        let m = weights.rows, hw = g.ho * g.wo
        int16ConvGroups(x, g, weights: weights, chunk: { _, _ in chunk }) { s, count, c, ldc in
            for t in 0..<count {
                // c is [position, channel]; out wants [channel, position]: transpose in blocks
                // of 16 positions so the reads stay in a few cache lines.
                let src = c + t * hw * ldc, dst = out + (s + t) * m * hw
                for p0 in stride(from: 0, to: hw, by: 16) {
                    let p1 = min(p0 + 16, hw)
                    for oc in 0..<m {
                        let add = bias?[oc] ?? 0, column = src + oc, line = dst + oc * hw
                        for p in p0..<p1 { line[p] = Int64(column[p * ldc]) &+ add }
                    }
                }
            }
        }
    }

    /// The convolution on the Int16 path, by groups of samples: each sample becomes a
    /// zero-bordered channel-last Int16 image, each output position one row of its inputs in
    /// product order (kernel row, kernel column, channel: kh runs of kw·C values), and the rows
    /// of a group one product with the packed weights, handed to `emit(s, count, c, ldc)`:
    /// samples s..<s + count, c[(t · OH·OW + i · OW + j) · ldc + o] = the sum of output channel
    /// o at (i, j) of sample s + t (Int32; ldc ≥ m, a multiple of 16). `chunk(lo, hi)` gives
    /// the chunk length for a group whose codes lie in lo…hi. Samples are spread over the
    /// cores; `emit` runs on the worker that owns the group.
    static func int16ConvGroups(_ x: UnsafePointer<Int32>, _ g: ConvShape, weights: PackedWeights, chunk: (Int64, Int64) -> Int,
                                emit: (Int, Int, UnsafeMutablePointer<Int32>, Int) -> Void) {
        let m = weights.rows, depth = weights.depth, pairs = weights.pairs, lda = 2 * pairs
        let panels = weights.panelCount, ldc = panels * Int16GEMM.panelWidth, tile = Int16GEMM.tileRows
        let hw = g.ho * g.wo, hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw, run = g.kw * g.c
        let group = max(1, min(g.n, 240 / max(hw, 1)))  // about 240 rows per product
        let maxRows = (group * hw + tile - 1) / tile * tile
        let workers = g.n * m * hw * depth >= int16ParallelWork ? min(Parallel.coreCount, g.n) : 1
        weights.panels.withUnsafeBufferPointer { b in
            Parallel.forEach(workers) { wk in
                // Runs are copied 8 values at a time and may spill up to 7 past their end: into
                // the next run or row (written afterwards), or into the slack.
                let slack = 8
                let a = UnsafeMutablePointer<Int16>.allocate(capacity: maxRows * lda + slack)
                let c = UnsafeMutablePointer<Int32>.allocate(capacity: maxRows * ldc)
                let image = UnsafeMutablePointer<Int16>.allocate(capacity: hp * wp * g.c + slack)
                defer { a.deallocate(); c.deallocate(); image.deallocate() }
                a.initialize(repeating: 0, count: maxRows * lda + slack)
                image.initialize(repeating: 0, count: hp * wp * g.c + slack)  // the border stays 0
                var s = g.n * wk / workers
                let end = g.n * (wk + 1) / workers
                while s < end {
                    let count = min(group, end - s), rows = count * hw
                    var lo = Int32.max, hi = Int32.min
                    for t in 0..<count {
                        channelLast(x + (s + t) * g.c * g.h * g.w, g, into: image, lo: &lo, hi: &hi)
                        for i in 0..<g.ho {
                            for j in 0..<g.wo {
                                let row = a + (t * hw + i * g.wo + j) * lda
                                for di in 0..<g.kh {
                                    copyRun(image + ((i * g.sh + di) * wp + j * g.sw) * g.c, row + di * run, run)
                                }
                                if lda > depth { row[depth] = 0 }
                            }
                        }
                    }
                    let padded = (rows + tile - 1) / tile * tile
                    if padded > rows { (a + rows * lda).update(repeating: 0, count: (padded - rows) * lda) }
                    let length = chunk(Int64(lo), Int64(hi))
                    int16Product(a: a, lda: lda, rows: padded, b: b.baseAddress!, panels: panels, pairs: pairs, chunk: length, c: c, ldc: ldc)
                    emit(s, count, c, ldc)
                    s += count
                }
            }
        }
    }

    /// Sample [C, H, W] (Int32) into the interior of the zero-bordered [H + 2ph, W + 2pw, C]
    /// Int16 image, widening lo…hi to cover its codes.
    @inline(__always)
    static func channelLast(_ src: UnsafePointer<Int32>, _ g: ConvShape, into image: UnsafeMutablePointer<Int16>,
                            lo: inout Int32, hi: inout Int32) {
        let wp = g.w + 2 * g.pw
        var low = lo, high = hi
        defer { lo = low; hi = high }
        if g.c == 1 {
            for y in 0..<g.h {
                let line = src + y * g.w, dst = image + (y + g.ph) * wp + g.pw
                for xx in 0..<g.w {
                    let v = line[xx]
                    low = Swift.min(low, v)
                    high = Swift.max(high, v)
                    dst[xx] = Int16(truncatingIfNeeded: v)
                }
            }
            return
        }
        for y in 0..<g.h {
            for ci in 0..<g.c {
                let line = src + (ci * g.h + y) * g.w, dst = image + ((y + g.ph) * wp + g.pw) * g.c + ci
                for xx in 0..<g.w {
                    let v = line[xx]
                    low = Swift.min(low, v)
                    high = Swift.max(high, v)
                    dst[xx * g.c] = Int16(truncatingIfNeeded: v)
                }
            }
        }
    }

    /// A stride-1 convolution read straight from the image (`Int16GEMM.directLoop`, or with
    /// byte weights `qf_uint8_direct_vnni`), sample by sample: each sample becomes a
    /// zero-bordered planar image of channel groups (one 32-bit word per pixel holding
    /// `weights.lanes` channels: two Int16 codes, or four unsigned bytes), and its sums are
    /// handed to `emit(s, c, ldc, stride)` as c[o · ldc + i · stride + j] = the sum of output
    /// channel o at (i, j) (Int32; stride = W + 2pw, the padded row; the columns j ≥ OW are not
    /// outputs). `chunk(lo, hi)` gives the Int16 chunk length for a sample whose codes lie in
    /// lo…hi (it may check them; the byte path also requires 0 ≤ lo, hi ≤ 255). Samples are
    /// spread over the cores; `emit` runs on the worker that owns the sample. With `pooledFrom`
    /// (H₀, W₀), x holds [N, C, H₀, W₀] codes and the convolution's input [N, C, H, W] is their
    /// 2×2 max-pool with stride 2 (H = ⌊H₀/2⌋, W = ⌊W₀/2⌋, as `IntegerOps.maxPool2d`), taken on
    /// the way.
    static func int16DirectConv(_ x: UnsafePointer<Int32>, _ g: ConvShape, pooledFrom: (h: Int, w: Int)? = nil, weights: DirectConvWeights,
                                chunk: (Int64, Int64) -> Int, emit: (Int, UnsafeMutablePointer<Int32>, Int, Int) -> Void) {
        precondition(g.sh == 1 && g.sw == 1 && g.c == weights.channels && g.kh == weights.kh && g.kw == weights.kw,
                     "int16DirectConv: \(g) does not suit the weights")
        let lanes = weights.lanes, bits = 32 / lanes, mask: UInt32 = lanes == 2 ? 0xFFFF : 0xFF
        let hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw, plane = hp * wp, planes = weights.groupedChannels / lanes
        let tile = 48  // a multiple of every kernel's tile width
        let positions = (g.ho * wp + tile - 1) / tile * tile, ldc = positions
        // The last word read is below planes · plane + (positions − OH · wp) + kw (see directLoop).
        let words = planes * plane + positions - g.ho * wp + g.kw + 16
        let offsets: [Int32] = (0..<(g.kh * g.kw * planes)).map { q in
            let tap = q / planes, cp = q % planes
            return Int32(cp * plane + (tap / g.kw) * wp + tap % g.kw)
        }
        let work = g.n * weights.rows * g.ho * g.wo * weights.depth
        let workers = work >= int16ParallelWork ? min(Parallel.coreCount, g.n) : 1
        offsets.withUnsafeBufferPointer { op in
            Parallel.forEach(workers) { wk in
                let image = UnsafeMutableRawPointer.allocate(byteCount: 4 * words, alignment: 64)
                let c = UnsafeMutablePointer<Int32>.allocate(capacity: weights.paddedRows * ldc)
                let line = UnsafeMutablePointer<UInt32>.allocate(capacity: g.w)
                let pooled = UnsafeMutablePointer<Int32>.allocate(capacity: g.w)
                defer { image.deallocate(); c.deallocate(); line.deallocate(); pooled.deallocate() }
                image.initializeMemory(as: UInt32.self, repeating: 0, count: words)  // borders, padding channels and slack stay 0
                let inH = pooledFrom?.h ?? g.h, inW = pooledFrom?.w ?? g.w
                /// Row y of channel ci of the convolution's input (pooled into `pooled` when pooling).
                func inputRow(_ sample: UnsafePointer<Int32>, _ ci: Int, _ y: Int) -> UnsafePointer<Int32> {
                    guard pooledFrom != nil else { return sample + (ci * g.h + y) * g.w }
                    let top = sample + (ci * inH + 2 * y) * inW, bottom = top + inW
                    for j in 0..<g.w { pooled[j] = Swift.max(Swift.max(top[2 * j], top[2 * j + 1]), Swift.max(bottom[2 * j], bottom[2 * j + 1])) }
                    return UnsafePointer(pooled)
                }
                for s in (g.n * wk / workers)..<(g.n * (wk + 1) / workers) {
                    var lo = Int32.max, hi = Int32.min
                    let sample = x + s * g.c * inH * inW
                    for cp in 0..<planes {
                        for y in 0..<g.h {
                            // One word per pixel: channel lanes·cp + i in bits i·bits…, stored
                            // little-endian (channel lanes·cp first in memory).
                            line.update(repeating: 0, count: g.w)
                            for i in 0..<Swift.min(lanes, g.c - lanes * cp) {
                                let v = inputRow(sample, lanes * cp + i, y), shift = UInt32(bits * i)
                                for xx in 0..<g.w {
                                    lo = Swift.min(lo, v[xx])
                                    hi = Swift.max(hi, v[xx])
                                    line[xx] |= (UInt32(truncatingIfNeeded: v[xx]) & mask) &<< shift
                                }
                            }
                            let dst = image + 4 * (cp * plane + (y + g.ph) * wp + g.pw)
                            for xx in 0..<g.w { dst.storeBytes(of: line[xx].littleEndian, toByteOffset: 4 * xx, as: UInt32.self) }
                        }
                    }
                    let length = chunk(Int64(lo), Int64(hi))
                    if lanes == 4 {
                        precondition(lo >= 0 && hi <= 255, "int16DirectConv: codes \(lo)…\(hi) are not unsigned bytes")
                        weights.bytes.withUnsafeBufferPointer { a in
                            qf_uint8_direct_vnni(a.baseAddress!, weights.lda, weights.paddedRows, image.assumingMemoryBound(to: UInt8.self),
                                                 op.baseAddress!, positions, weights.depth / 4, c, ldc)
                        }
                    } else {
                        let image = image.assumingMemoryBound(to: Int16.self)
                        weights.a.withUnsafeBufferPointer { a in
                            switch IntegerOps.int16Kernel {
                            case .vector512:
                                Int16GEMM512.directProduct(a: a.baseAddress!, lda: weights.lda, rows: weights.paddedRows, image: image, offsets: op.baseAddress!,
                                                           positions: positions, pairs: weights.pairs, chunk: length, c: c, ldc: ldc)
                            case .vector256:
                                Int16GEMM.directProduct(a: a.baseAddress!, lda: weights.lda, rows: weights.paddedRows, image: image, offsets: op.baseAddress!,
                                                        positions: positions, pairs: weights.pairs, chunk: length, c: c, ldc: ldc)
                            case .vnni512:
                                qf_int16_direct_vnni(a.baseAddress!, weights.lda, weights.paddedRows, image, op.baseAddress!, positions, weights.pairs, c, ldc)
                            }
                        }
                    }
                    emit(s, c, ldc, wp)
                }
            }
        }
    }

    /// Copies `count` Int16 in blocks of 8, writing and reading up to 7 past the end.
    @inline(__always)
    static func copyRun(_ from: UnsafePointer<Int16>, _ to: UnsafeMutablePointer<Int16>, _ count: Int) {
        var e = 0
        while e < count {
            UnsafeMutableRawPointer(to + e).storeBytes(of: UnsafeRawPointer(from + e).loadUnaligned(as: SIMD8<Int16>.self), as: SIMD8<Int16>.self)
            e += 8
        }
    }

    /// The Int16 product on the instruction set `IntegerOps.int16Kernel` names.
    static func int16Product(a: UnsafePointer<Int16>, lda: Int, rows: Int, b: UnsafePointer<Int16>, panels: Int,
                             pairs: Int, chunk: Int, c: UnsafeMutablePointer<Int32>, ldc: Int) {
        switch IntegerOps.int16Kernel {
        case .vector512:
            Int16GEMM512.product(a: a, lda: lda, rows: rows, b: b, panels: panels, pairs: pairs, chunk: chunk, c: c, ldc: ldc)
        case .vector256:
            Int16GEMM.product(a: a, lda: lda, rows: rows, b: b, panels: panels, pairs: pairs, chunk: chunk, c: c, ldc: ldc)
        case .vnni512:  // no chunks: pairs go straight into Int32
            precondition(rows % Int16GEMM.tileRows == 0 && lda % 2 == 0 && lda >= 2 * pairs && ldc >= 16 * panels,
                         "Int16 VNNI product: rows \(rows), lda \(lda), pairs \(pairs), ldc \(ldc)")
            qf_int16_gemm_vnni(a, lda, rows, b, panels, pairs, c, ldc)
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
