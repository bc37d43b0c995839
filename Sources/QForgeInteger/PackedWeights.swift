import QForgeTensor

/// A layer's weights prepared once for many products (one layer over many batches): the
/// bounds that choose the product path, and the codes packed for the Int16 kernels.
/// `IntegerOps.matmul` and `IntegerOps.conv2d` take it in place of the weight tensor and give
/// the same results.
public struct PackedWeights: Sendable {
    /// The codes: [M, K] for `matmul`, [M, C, kh, kw] for `conv2d`.
    public let weight: QTensor
    /// max_m Σ_k |w[m, k]|; times the input bound, the largest |partial sum| (`partialSumBound`).
    public let widestRowSum: Int64
    /// Chunk lengths in k-pairs, ascending, and for each the largest Σ|w|, Σ max(w, 0) and
    /// Σ max(−w, 0) one 16-bit lane sums over one chunk (see `int16Chunk`).
    let chunkLengths: [Int], laneSums: [Int64], lanePositive: [Int64], laneNegative: [Int64]
    /// The codes as `Int16GEMM` panels, k in product order; empty when not packed.
    let panels: [Int16]

    /// Computes the bounds and packs the codes (O(weight.count)).
    public init(_ weight: QTensor) {
        self.init(weight, pack: true)
    }

    init(_ weight: QTensor, pack: Bool) {
        precondition(weight.rank >= 1, "PackedWeights: weight needs a channel axis, shape is \(weight.shape)")
        self.weight = weight
        let rows = weight.shape[0], depth = rows == 0 ? 0 : weight.count / rows, pairs = (depth + 1) / 2
        let ordered = PackedWeights.productOrder(weight)
        var widest: Int64 = 0
        // Chunk lengths 1, 2, 3, 4, 6, 8, 12, … below `pairs`, then `pairs` (one chunk).
        var lengths = [Int]()
        var length = 1
        while length < pairs {
            lengths.append(length)
            if length >= 2 && length + length / 2 < pairs { lengths.append(length + length / 2) }
            length *= 2
        }
        lengths.append(max(pairs, 1))
        var sums = [Int64](repeating: 0, count: lengths.count), positive = sums, negative = sums
        var above = [Int64](repeating: 0, count: pairs + 1), below = above
        ordered.withUnsafeBufferPointer { w in
            for m in 0..<rows {
                let row = w.baseAddress! + m * depth
                var total: Int64 = 0
                for j in 0..<depth { total += Int64(row[j].magnitude) }
                widest = max(widest, total)
                for parity in 0..<2 {
                    // Prefix sums of the lane's positive and negative weights, then every aligned
                    // window per length.
                    for q in 0..<pairs {
                        let j = 2 * q + parity, v = j < depth ? Int64(row[j]) : 0
                        above[q + 1] = above[q] + max(v, 0)
                        below[q + 1] = below[q] + max(-v, 0)
                    }
                    for (i, l) in lengths.enumerated() {
                        var start = 0
                        while start < pairs {
                            let end = min(start + l, pairs)
                            let up = above[end] - above[start], down = below[end] - below[start]
                            sums[i] = max(sums[i], up + down)
                            positive[i] = max(positive[i], up)
                            negative[i] = max(negative[i], down)
                            start += l
                        }
                    }
                }
            }
        }
        widestRowSum = widest
        chunkLengths = lengths
        laneSums = sums
        lanePositive = positive
        laneNegative = negative
        panels = pack ? PackedWeights.panels(ordered, rows: rows, depth: depth) : []
    }

    private init(_ other: PackedWeights, panels: [Int16]) {
        weight = other.weight
        widestRowSum = other.widestRowSum
        chunkLengths = other.chunkLengths
        laneSums = other.laneSums
        lanePositive = other.lanePositive
        laneNegative = other.laneNegative
        self.panels = panels
    }

    /// Output channels (rows of the product).
    var rows: Int { weight.shape[0] }
    /// Terms per output: K, or C·kh·kw.
    var depth: Int { rows == 0 ? 0 : weight.count / rows }
    var pairs: Int { (depth + 1) / 2 }
    var panelCount: Int { (rows + Int16GEMM.panelWidth - 1) / Int16GEMM.panelWidth }
    /// k-quads of the byte panels.
    var quads: Int { (depth + 3) / 4 }

    /// The codes of a [M, K] weight as signed-byte panels for `qf_uint8_gemm_vnni`: per panel
    /// of 16 rows and per k-quad q, each row's four codes w[j, 4q…4q+3] (zero past K and past
    /// M); nil when the weight is not [M, K] or a code is not a signed byte.
    func bytePanels() -> [Int8]? {
        guard weight.rank == 2, DirectConvWeights.fitsBytes(weight) else { return nil }
        let m = rows, k = depth, quads = quads
        var out = [Int8](repeating: 0, count: panelCount * quads * 64)
        for j in 0..<m {
            let base = (j / 16) * quads * 64 + (j % 16) * 4
            for p in 0..<k { out[base + (p / 4) * 64 + p % 4] = Int8(weight.values[j * k + p]) }
        }
        return out
    }
    var isPacked: Bool { !panels.isEmpty || rows == 0 || depth == 0 }

    /// These weights with their panels (packs when they were built without).
    func packed() -> PackedWeights {
        isPacked ? self : PackedWeights(self, panels: PackedWeights.panels(PackedWeights.productOrder(weight), rows: rows, depth: depth))
    }

    /// maxAbsInput · widestRowSum, nil beyond Int64.
    func partialSumBound(maxAbsInput: Int64) -> Int64? {
        let (bound, overflow) = widestRowSum.multipliedReportingOverflow(by: maxAbsInput)
        return overflow ? nil : bound
    }

    /// The longest chunk, in k-pairs, that the Int16 path can sum in 16-bit lanes for inputs
    /// |x| ≤ `maxAbsInput`: maxAbsInput · Σ|w| over each lane's chunk ≤ 2^15 − 1, with every
    /// total ≤ 2^31 − 1 (maxAbsInput · widestRowSum). Nil when the Int16 path is not exact.
    ///
    /// A lane holds, for one output, the products of one parity of k (2q or 2q + 1) over the
    /// chunk's pairs q, in product order (conv: kernel row, kernel column, then channel).
    public func int16Chunk(maxAbsInput: Int64) -> Int? {
        guard let bound = partialSumBound(maxAbsInput: maxAbsInput), bound <= Int64(Int32.max) else { return nil }
        var best: Int?
        for (length, sum) in zip(chunkLengths, laneSums) where fitsInt16(sum, maxAbsInput) { best = length }
        return best
    }

    /// The longest chunk for inputs known to lie in lo…hi (within ±maxAbsInput, for which
    /// `int16Chunk` must be non-nil): at least `int16Chunk(maxAbsInput:)`, and longer when the
    /// inputs keep one sign. With a⁺ = max(hi, 0) and a⁻ = max(−lo, 0), a lane's sum lies
    /// within −(a⁻·P + a⁺·N) … a⁺·P + a⁻·N for its chunk's positive weights P and negated
    /// negative weights N (so unsigned inputs only meet one of the two).
    public func int16Chunk(lo: Int64, hi: Int64, maxAbsInput: Int64) -> Int? {
        guard var best = int16Chunk(maxAbsInput: maxAbsInput) else { return nil }
        let up = max(hi, 0), down = max(-lo, 0)
        for (i, length) in chunkLengths.enumerated() where length > best {
            let p = lanePositive[i], n = laneNegative[i]
            if fitsInt16(p, up, n, down) && fitsInt16(p, down, n, up) { best = length }
        }
        return best
    }

    /// Whether Σ of sum·scale (pairs of them) stays within 2^15 − 1, without overflow.
    private func fitsInt16(_ pairs: Int64...) -> Bool {
        var total: Int64 = 0
        for i in stride(from: 0, to: pairs.count, by: 2) {
            let (product, overflow) = pairs[i].multipliedReportingOverflow(by: pairs[i + 1])
            if overflow || product > Int64(Int16.max) { return false }
            total += product
        }
        return total <= Int64(Int16.max)
    }

    /// The codes as [rows, depth] in the order the products read k: as stored for [M, K];
    /// for [M, C, kh, kw] by kernel row, kernel column, then channel, so one output position's
    /// inputs are runs of channels in a channel-last image.
    static func productOrder(_ weight: QTensor) -> [Int32] {
        guard weight.rank == 4 else { return weight.values }
        let (m, c, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        var out = [Int32](repeating: 0, count: weight.count)
        for o in 0..<m {
            for ci in 0..<c {
                for di in 0..<kh {
                    for dj in 0..<kw {
                        out[((o * kh + di) * kw + dj) * c + ci] = weight.values[((o * c + ci) * kh + di) * kw + dj]
                    }
                }
            }
        }
        return out
    }

    static func panels(_ ordered: [Int32], rows: Int, depth: Int) -> [Int16] {
        let count = Int16GEMM.packedCount(n: rows, k: depth)
        return [Int16](unsafeUninitializedCapacity: count) { buf, initialized in
            ordered.withUnsafeBufferPointer { w in
                if let dst = buf.baseAddress, let src = w.baseAddress { Int16GEMM.pack(src, n: rows, k: depth, into: dst) }
            }
            initialized = count
        }
    }
}

/// A convolution's weights prepared for the direct product (stride 1): the codes in product
/// order (kernel row, kernel column, channel) as Int16 rows (`Int16GEMM.directLoop`, 2 lanes)
/// or signed-byte rows (`qf_uint8_direct_vnni`, 4 lanes), the channels padded with zero
/// channels to a multiple of the lanes so that each k-pair (k-quad) is the channel group of one
/// pixel, and rows padded with zeros to a multiple of `Int16GEMM.directRows`.
struct DirectConvWeights: Sendable {
    let rows: Int, paddedRows: Int, channels: Int, kh: Int, kw: Int
    /// Channels per 32-bit word of the image: 2 (Int16 codes, `a`) or 4 (bytes, `bytes`).
    let lanes: Int
    /// Channels rounded up to a multiple of `lanes` (the extra ones have zero weights).
    let groupedChannels: Int
    /// lanes 2: [paddedRows, depth] Int16; else empty.
    let a: [Int16]
    /// lanes 4: [paddedRows, depth] signed bytes; else empty.
    let bytes: [Int8]
    /// The bounds of the channel-padded weights: the direct product sums their lanes, so its
    /// chunks are `bounds.int16Chunk`.
    let bounds: PackedWeights

    /// Products per row: kernel taps × grouped channels, ordered by tap, then channel.
    var depth: Int { kh * kw * groupedChannels }
    var pairs: Int { depth / 2 }
    var lda: Int { depth }

    /// Whether every weight is a signed byte (the byte path's condition on the weights).
    static func fitsBytes(_ weight: QTensor) -> Bool { weight.values.allSatisfy { $0 >= -128 && $0 <= 127 } }

    init(_ weight: QTensor, lanes: Int = 2) {
        precondition(weight.rank == 4, "DirectConvWeights: weight \(weight.shape) must be [M, C, kh, kw]")
        precondition(lanes == 2 || (lanes == 4 && Self.fitsBytes(weight)), "DirectConvWeights: \(lanes) lanes for these weights")
        (rows, channels, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        self.lanes = lanes
        groupedChannels = (channels + lanes - 1) / lanes * lanes
        paddedRows = (rows + Int16GEMM.directRows - 1) / Int16GEMM.directRows * Int16GEMM.directRows
        var padded = [Int32](repeating: 0, count: rows * groupedChannels * kh * kw)
        for o in 0..<rows {
            for c in 0..<channels {
                for t in 0..<(kh * kw) { padded[(o * groupedChannels + c) * kh * kw + t] = weight.values[(o * channels + c) * kh * kw + t] }
            }
        }
        let tensor = QTensor(shape: [rows, groupedChannels, kh, kw], values: padded)
        bounds = PackedWeights(tensor, pack: false)
        let ordered = PackedWeights.productOrder(tensor), count = paddedRows * groupedChannels * kh * kw
        if lanes == 2 {
            var a = [Int16](repeating: 0, count: count)
            for i in 0..<ordered.count { a[i] = Int16(truncatingIfNeeded: ordered[i]) }
            self.a = a
            bytes = []
        } else {
            var b = [Int8](repeating: 0, count: count)
            for i in 0..<ordered.count { b[i] = Int8(ordered[i]) }
            bytes = b
            a = []
        }
    }
}
