import Foundation
import QForgeTensor

// The fast executor behind `IntegerModel.run`. It computes exactly what the layer-by-layer
// definition (`IntegerLayer.accumulate`, then `requantize`) computes, faster:
//
// - each layer's weights are packed once per model (`ExecutionCache`), not on every call;
// - a layer whose product takes the Int16 path and whose sums provably fit Int32 (`LayerPlan`)
//   is fused: per block of samples, the Int16 product's Int32 sums go straight through the
//   bias, the accumulator cap, the dropped bits and the requantization (`Int32Epilogue`), in
//   cache, without Int64 tensors in between;
// - every other layer (float32 or Int64 products, 32-bit code grids, unusual parameter
//   shapes) runs the definition itself.

/// The execution plans of a model's layers, built on first use and kept across copies of the
/// model. The plans are rebuilt whenever the layers differ from those they were built from
/// (the comparison is cheap for unchanged layers: arrays that share storage compare equal at
/// once). Never part of the model's value: every cache equals every other.
final class ExecutionCache: @unchecked Sendable, Equatable {
    private let lock = NSLock()
    private var source: [IntegerLayer] = []
    private var built: [LayerPlan] = []

    static func == (a: ExecutionCache, b: ExecutionCache) -> Bool { true }

    /// The plans of `layers` (the last layer's plan produces accumulators).
    func plans(for layers: [IntegerLayer]) -> [LayerPlan] {
        lock.lock()
        defer { lock.unlock() }
        if built.count != layers.count || source != layers {
            built = layers.indices.map { LayerPlan(layers[$0], last: $0 == layers.count - 1) }
            source = layers
        }
        return built
    }
}

/// How `IntegerModel.run` computes one layer.
struct LayerPlan: Sendable {
    let layer: IntegerLayer
    /// Whether the layer's output is its accumulators (the model's last layer).
    let last: Bool
    /// The fused form, or nil: the layer runs `accumulate` and `requantize`.
    let fused: Fused?

    struct Fused: Sendable {
        /// The packed weights (Int16 panels).
        let weights: PackedWeights
        /// For stride-1 convolutions whose channel-padded weights keep an Int16 chunk: the
        /// weights of the direct product (no im2col, sums already channel-major).
        let direct: DirectConvWeights?
        /// For stride-1 convolutions on a CPU with AVX-512 VNNI whose weights are signed bytes and
        /// whose input codes are unsigned bytes (grid 0…255): the byte weights of the direct
        /// product (`qf_uint8_direct_vnni`, four products per lane), used when `int16Kernel` is
        /// `vnni512`. Exact under the fused form's own condition (sums with bias fit Int32).
        let byteDirect: DirectConvWeights?
        /// For Gemm layers under the same conditions: the byte panels (`qf_uint8_gemm_vnni`).
        let byteGemm: [Int8]?
        /// The input bound the path was chosen for (as `accumulate` passes it).
        let bound: Int64
        let epilogue: Int32Epilogue
    }

    init(_ layer: IntegerLayer, last: Bool) {
        self.layer = layer
        self.last = last
        fused = LayerPlan.fuse(layer, last: last)
    }

    /// The fused form when it is exact: the layer takes the Int16 path (chosen as
    /// `accumulate` chooses it, from the weights and the input grid's bound a), and
    /// a · max_m Σ_k |w[m, k]| + max |bias| ≤ 2^31 − 2, so every sum with its bias is an Int32
    /// (`Int32Epilogue` relies on that margin); and the requantization has a fused form.
    static func fuse(_ layer: IntegerLayer, last: Bool) -> Fused? {
        guard layer.lookup == nil else { return nil }  // lookup-table activations run the definition
        let weight = layer.product.weights
        switch layer.product.kind {
        case .gemm: guard weight.rank == 2 else { return nil }
        case .conv: guard weight.rank == 4 else { return nil }
        }
        let rows = weight.shape[0]
        guard rows > 0, weight.count > 0 else { return nil }
        if let bias = layer.product.bias, bias.count != rows { return nil }
        let bound = Int64(Swift.max(abs(layer.input.grid.minInt), abs(layer.input.grid.maxInt)))
        let probe = PackedWeights(weight, pack: false)
        guard IntegerOps.productPath(weight: probe, maxAbsInput: bound) == .int16,
              let sums = probe.partialSumBound(maxAbsInput: bound) else { return nil }
        let biasBound = layer.product.bias?.map(\.magnitude).max() ?? 0
        guard sums >= 0, UInt64(sums) + biasBound <= UInt64(Int32.max - 1) else { return nil }
        guard let epilogue = Int32Epilogue(layer, last: last) else { return nil }
        var direct: DirectConvWeights?, byteDirect: DirectConvWeights?, byteGemm: [Int8]?
        let bytes = IntegerOps.availableInt16Kernels.contains(.vnni512) && layer.input.grid.minInt >= 0 && layer.input.grid.maxInt <= 255
            && DirectConvWeights.fitsBytes(weight)
        switch layer.product.kind {
        case .conv(1, _):
            let d = DirectConvWeights(weight)
            if d.bounds.int16Chunk(maxAbsInput: bound) != nil { direct = d }
            if bytes { byteDirect = DirectConvWeights(weight, lanes: 4) }
        case .gemm:
            if bytes { byteGemm = probe.bytePanels() }
        default:
            break
        }
        return Fused(weights: probe.packed(), direct: direct, byteDirect: byteDirect, byteGemm: byteGemm, bound: bound, epilogue: epilogue)
    }

    /// How the layer runs, for benchmarks' reports: "fused direct conv on bytes (VNNI)", "fused
    /// gemm on Int16", … or "definition (float32|int64|int16 path)".
    var summary: String {
        guard let fused else {
            let bound = Int64(Swift.max(abs(layer.input.grid.minInt), abs(layer.input.grid.maxInt)))
            let path = IntegerOps.productPath(weight: PackedWeights(layer.product.weights, pack: false), maxAbsInput: bound)
            return "\(layer.name): definition (\(path) path)"
        }
        let kind: String
        switch layer.product.kind {
        case .gemm: kind = IntegerOps.int16Kernel == .vnni512 && fused.byteGemm != nil ? "gemm on bytes (VNNI)" : "gemm on Int16"
        case .conv:
            kind = IntegerOps.int16Kernel == .vnni512 && fused.byteDirect != nil ? "direct conv on bytes (VNNI)"
                : fused.direct != nil ? "direct conv on Int16" : "im2col conv on Int16"
        }
        return "\(layer.name): fused \(kind)"
    }

    /// The layer's output for input codes x: its codes, or (last) its accumulators.
    func run(_ x: QTensor) -> (codes: QTensor?, accumulators: AccTensor?) {
        guard let fused else {
            let acc = layer.accumulate(x)
            return last ? (nil, acc) : (layer.requantize(acc), nil)
        }
        var input = x
        // A stride-1 convolution after a halving max-pool pools while it reads its image.
        var pooledFrom: (h: Int, w: Int)?
        let direct = (IntegerOps.int16Kernel == .vnni512 ? fused.byteDirect : nil) ?? fused.direct
        if direct != nil, layer.codeOps == [.maxPool(kernel: 2, stride: 2, padding: 0)], x.rank == 4, x.shape[2] >= 2, x.shape[3] >= 2 {
            pooledFrom = (x.shape[2], x.shape[3])
        }
        for op in layer.codeOps where pooledFrom == nil {
            switch op {
            case let .maxPool(k, s, p): input = IntegerOps.maxPool2d(input, kernel: (k, k), stride: (s, s), padding: (p, p))
            case .flatten: input = input.flattened()
            }
        }
        let weights = fused.weights, bound = fused.bound, epilogue = fused.epilogue, m = weights.rows
        /// The chunk for codes in lo…hi, after the check `accumulate` makes.
        let chunk = { (lo: Int64, hi: Int64) -> Int in
            let measured = Swift.max(hi, -lo)
            precondition(measured <= bound, "\(layer.name): input holds |x| = \(measured), above the given bound \(bound)")
            return weights.int16Chunk(lo: lo, hi: hi, maxAbsInput: bound)!
        }
        switch layer.product.kind {
        case .gemm:
            let g = input.rank == 2 ? input : input.flattened()
            precondition(g.shape[1] == weights.depth,
                         "matmul: input \(g.shape) ([N, K]) does not match weight \(weights.weight.shape) ([M, K])")
            let n = g.shape[0]
            return g.values.withUnsafeBufferPointer { xp in
                output(count: n * m, shape: [n, m]) { codes, accumulators in
                    guard n > 0 else { return }
                    let bytes = IntegerOps.int16Kernel == .vnni512 ? fused.byteGemm : nil
                    IntegerKernels.int16MatmulBlocks(xp.baseAddress!, n: n, weights: weights, bytes: bytes, chunk: chunk) { r0, rows, c, ldc in
                        for r in 0..<rows {
                            if let codes {
                                epilogue.codes(c + r * ldc, into: codes + (r0 + r) * m)
                            } else {
                                epilogue.accumulators(c + r * ldc, into: accumulators! + (r0 + r) * m)
                            }
                        }
                    }
                }
            }
        case let .conv(stride, padding):
            precondition(input.rank == 4 && input.shape[1] == weights.weight.shape[1],
                         "conv2d: input \(input.shape) ([N, C, H, W]) does not match weight \(weights.weight.shape) ([M, C, kh, kw])")
            let shape = pooledFrom.map { [input.shape[0], input.shape[1], $0.h / 2, $0.w / 2] } ?? input.shape
            let g = ConvShape("conv2d", input: shape, kernel: (weights.weight.shape[2], weights.weight.shape[3]),
                              stride: (stride, stride), padding: (padding, padding))
            let hw = g.ho * g.wo
            if let direct {
                let chunk = { (lo: Int64, hi: Int64) -> Int in
                    let measured = Swift.max(hi, -lo)
                    precondition(measured <= bound, "\(layer.name): input holds |x| = \(measured), above the given bound \(bound)")
                    return direct.lanes == 4 ? 1 : direct.bounds.int16Chunk(lo: lo, hi: hi, maxAbsInput: bound)!  // bytes: no chunks
                }
                return input.values.withUnsafeBufferPointer { xp in
                    output(count: g.n * m * hw, shape: [g.n, m, g.ho, g.wo]) { codes, accumulators in
                        guard g.n > 0, hw > 0 else { return }
                        IntegerKernels.int16DirectConv(xp.baseAddress!, g, pooledFrom: pooledFrom, weights: direct, chunk: chunk) { s, c, ldc, stride in
                            // Channel o's sums are row o of c, output row i at i · stride; the
                            // columns past OW are not outputs.
                            let used = (g.ho - 1) * stride + g.wo, padded = (used + 15) / 16 * 16
                            for o in 0..<m {
                                let row = c + o * ldc
                                if let codes {
                                    epilogue.channelCodes(row, count: padded, channel: o)
                                    let dst = codes + (s * m + o) * hw
                                    for i in 0..<g.ho { (dst + i * g.wo).update(from: row + i * stride, count: g.wo) }
                                } else {
                                    let dst = accumulators! + (s * m + o) * hw
                                    for i in 0..<g.ho { epilogue.channelAccumulators(row + i * stride, count: g.wo, channel: o, into: dst + i * g.wo) }
                                }
                            }
                        }
                    }
                }
            }
            return input.values.withUnsafeBufferPointer { xp in
                output(count: g.n * m * hw, shape: [g.n, m, g.ho, g.wo]) { codes, accumulators in
                    guard g.n > 0, hw > 0 else { return }
                    IntegerKernels.int16ConvGroups(xp.baseAddress!, g, weights: weights, chunk: chunk) { s, count, c, ldc in
                        for t in 0..<count {
                            let sums = c + t * hw * ldc
                            if let codes {
                                // Codes in place ([position, channel]), then transposed to [channel, position].
                                for p in 0..<hw { epilogue.codes(sums + p * ldc, into: sums + p * ldc) }
                                IntegerKernels.transpose(sums, ldc, positions: hw, channels: m, into: codes + (s + t) * m * hw)
                            } else {
                                let row = UnsafeMutablePointer<Int64>.allocate(capacity: m)
                                defer { row.deallocate() }
                                let dst = accumulators! + (s + t) * m * hw
                                for p in 0..<hw {
                                    epilogue.accumulators(sums + p * ldc, into: row)
                                    for o in 0..<m { dst[o * hw + p] = row[o] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A fresh output of `count` values of `shape`: codes, or for the last layer accumulators,
    /// filled by `fill(codes, accumulators)` (one of them non-nil).
    private func output(count: Int, shape: [Int],
                        _ fill: (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int64>?) -> Void) -> (codes: QTensor?, accumulators: AccTensor?) {
        if last {
            let values = [Int64](unsafeUninitializedCapacity: count) { buf, initialized in
                adviseHugePages(UnsafeMutableRawBufferPointer(buf))
                fill(nil, buf.baseAddress)
                initialized = count
            }
            return (nil, AccTensor(shape: shape, values: values))
        }
        let values = [Int32](unsafeUninitializedCapacity: count) { buf, initialized in
            adviseHugePages(UnsafeMutableRawBufferPointer(buf))
            fill(buf.baseAddress, nil)
            initialized = count
        }
        return (QTensor(shape: shape, values: values), nil)
    }
}

/// What a fused layer does to one row of its Int32 sums Σ (one sample of a Gemm, one output
/// position of a Conv; channel j at row[j], readable up to a multiple of 16): exactly
/// `accumulate`'s bias, cap and dropped bits, then `requantize` or (last layer) nothing.
///
/// Every Σ + bias lies in ±(2^31 − 2) (`LayerPlan.fuse` proves it), so the value a =
/// Σ + bias is an Int32, and so is every later step:
/// - the cap of b ≥ 32 bits leaves a unchanged (a is inside its range), and for b < 32 wrap
///   keeps the low b bits sign-extended and saturate clamps, in Int32 as in Int64;
/// - a >>> d (floor) of an Int32 is a >>> min(d, 31);
/// - thresholds t compare with a ∈ ±(2^31 − 2) as t clamped to −2^31 + 1 … 2^31 − 1 does (a
///   threshold below every a counts for all of them, one above every a for none);
/// - codes clamp(outBias + count, G.min, G.max) are clamp(base + count, G.min, G.max) with
///   base = clamp(outBias, G.min − L − 1, G.max + 1), L the longest list (as
///   `MultiThreshold.codeBase`), all inside Int32 for grids up to 31 bits.
struct Int32Epilogue: Sendable {
    /// Output channels, and channels rounded up to 16 (the lanes of one step).
    let channels: Int, padded: Int
    /// The product's exact bias per channel (0 when none), padded with 0.
    let bias: [Int32]
    /// The cap, when it can change an Int32 value (b < 32).
    let cap: AccumulatorCap?
    /// Dropped accumulator bits (`IntegerLayer.droppedBits`).
    let dropped: Int
    let requant: Requant

    enum Requant: Sendable {
        /// Thresholds transposed to [index][channel] (`padded` per index; shorter lists and
        /// padding channels are filled with 2^31 − 1, which no value reaches), and the code base.
        case thresholds(table: [Int32], length: Int, base: Int32, low: Int32, high: Int32)
        /// Multiplier, right shift and offset per channel, the rounded bias per channel (0 when
        /// none), the rounding mode and the grid's range.
        case multiplyShift(parameters: [(multiplier: Int64, shift: Int, offset: Int64)], roundedBias: [Int64], mode: RoundingMode,
                           low: Int64, high: Int64)
        /// The last layer: the accumulators themselves.
        case accumulators
    }

    /// The epilogue of `layer`, or nil when it has no fused form (the definition then runs).
    init?(_ layer: IntegerLayer, last: Bool) {
        let m = layer.product.weights.shape[0], padded = (m + 15) / 16 * 16
        channels = m
        self.padded = padded
        bias = (0..<padded).map { c in c < m ? Int32(layer.product.bias?[c] ?? 0) : 0 }  // |bias| < 2^31 (checked by `fuse`)
        cap = layer.accumulatorCap.flatMap { $0.bits < 32 ? $0 : nil }
        guard layer.droppedBits >= 0 else { return nil }
        dropped = layer.droppedBits
        if last {
            requant = .accumulators
            return
        }
        switch layer.requantization {
        case .thresholds(let t):
            guard t.thresholds.count == 1 || t.thresholds.count == m else { return nil }
            let length = t.thresholds.map(\.count).max() ?? 0
            let g = t.grid
            guard length <= 65535, g.minInt - length - 1 >= Int(Int32.min), g.maxInt + 1 <= Int(Int32.max) else { return nil }
            let never = Int32.max
            var table = [Int32](repeating: never, count: length * padded)
            for c in 0..<m {
                let list = t.thresholds[t.thresholds.count == 1 ? 0 : c]
                for (i, v) in list.enumerated() {
                    table[i * padded + c] = Int32(Swift.min(Swift.max(v, Int64(Int32.min) + 1), Int64(Int32.max)))
                }
            }
            let base = Swift.min(Swift.max(t.outBias, Int64(g.minInt) - Int64(length) - 1), Int64(g.maxInt) + 1)
            requant = .thresholds(table: table, length: length, base: Int32(base), low: Int32(g.minInt), high: Int32(g.maxInt))
        case .multiplyShift(let ms):
            let counts = [ms.multipliers.count, ms.shifts.count, ms.offsets.count]
            guard counts.allSatisfy({ $0 == 1 || $0 == m }) else { return nil }
            let rounded = layer.roundedBias ?? [0]
            // |a| < 2^31 and |rounded bias| ≤ 2^62 keep a + rounded bias inside Int64.
            guard rounded.count == 1 || rounded.count == m, rounded.allSatisfy({ $0.magnitude <= 1 << 62 }) else { return nil }
            requant = .multiplyShift(parameters: (0..<m).map { ms.parameters($0) },
                                     roundedBias: (0..<m).map { rounded[rounded.count == 1 ? 0 : $0] }, mode: ms.grid.rounding,
                                     low: ms.bounds.lo, high: ms.bounds.hi)  // the lowest code of a ReLU floor included
        case .output:
            return nil  // `requantize` refuses it
        }
    }

    /// a = cap(Σ + bias) >>> dropped for the 16 channels from c0, in Int32 lanes (`bias` is
    /// `self.bias`'s storage).
    @inline(__always)
    func values(_ row: UnsafePointer<Int32>, _ c0: Int, _ bias: UnsafePointer<Int32>) -> SIMD16<Int32> {
        adjusted(UnsafeRawPointer(row + c0).loadUnaligned(as: SIMD16<Int32>.self), UnsafeRawPointer(bias + c0).loadUnaligned(as: SIMD16<Int32>.self))
    }

    /// cap(Σ + b) >>> dropped, lane by lane.
    @inline(__always)
    func adjusted(_ sums: SIMD16<Int32>, _ b: SIMD16<Int32>) -> SIMD16<Int32> {
        var a = sums
        for e in 0..<16 { a[e] = a[e] &+ b[e] }
        if let cap {
            switch cap.overflow {
            case .wrap:
                let unused = Int32(32 - cap.bits)
                for e in 0..<16 { a[e] = (a[e] &<< unused) &>> unused }
            case .saturate:
                let lo = Int32(cap.range.lowerBound), hi = Int32(cap.range.upperBound)
                for e in 0..<16 { a[e] = Swift.min(Swift.max(a[e], lo), hi) }
            }
        }
        if dropped > 0 {
            let d = Int32(Swift.min(dropped, 31))
            for e in 0..<16 { a[e] = a[e] &>> d }
        }
        return a
    }

    /// The codes of one row of sums (`channels` of them at dst; dst may be the row itself).
    @inline(__always)
    func codes(_ row: UnsafeMutablePointer<Int32>, into dst: UnsafeMutablePointer<Int32>) {
        bias.withUnsafeBufferPointer { codes(row, into: dst, bias: $0.baseAddress!) }
    }

    @inline(__always)
    private func codes(_ row: UnsafeMutablePointer<Int32>, into dst: UnsafeMutablePointer<Int32>, bias: UnsafePointer<Int32>) {
        switch requant {
        case let .thresholds(table, length, base, low, high):
            table.withUnsafeBufferPointer { tp in
                let t = tp.baseAddress
                for c0 in stride(from: 0, to: padded, by: 16) {
                    let a = values(row, c0, bias)
                    var count = SIMD16<Int32>()
                    for i in 0..<length {
                        let th = UnsafeRawPointer(t! + i * padded + c0).loadUnaligned(as: SIMD16<Int32>.self)
                        for e in 0..<16 { count[e] &+= a[e] >= th[e] ? 1 : 0 }
                    }
                    var code = SIMD16<Int32>()
                    for e in 0..<16 { code[e] = Swift.min(Swift.max(base &+ count[e], low), high) }
                    IntegerKernels.store16(code, dst + c0, Swift.min(16, channels - c0))
                }
            }
        case let .multiplyShift(parameters, roundedBias, mode, low, high):
            for c0 in stride(from: 0, to: padded, by: 16) {
                let a = values(row, c0, bias)
                for e in 0..<Swift.min(16, channels - c0) {
                    let (multiplier, shift, offset) = parameters[c0 + e]
                    dst[c0 + e] = Int32(MultiplyShift.rescale(Int64(a[e]) + roundedBias[c0 + e], multiplier: multiplier, shift: shift,
                                                              offset: offset, mode: mode, lo: low, hi: high))
                }
            }
        case .accumulators:
            preconditionFailure("Int32Epilogue: the last layer has accumulators, not codes")
        }
    }

    /// The codes, in place, of `count` (a multiple of 16) sums of one channel.
    func channelCodes(_ row: UnsafeMutablePointer<Int32>, count: Int, channel c: Int) {
        let b = SIMD16<Int32>(repeating: bias[c])
        switch requant {
        case let .thresholds(table, length, base, low, high):
            withUnsafeTemporaryAllocation(of: Int32.self, capacity: Swift.max(length, 1)) { t in
                for i in 0..<length { t[i] = table[i * padded + c] }  // channel c's list
                for p in stride(from: 0, to: count, by: 16) {
                    let a = adjusted(UnsafeRawPointer(row + p).loadUnaligned(as: SIMD16<Int32>.self), b)
                    var n = SIMD16<Int32>()
                    for i in 0..<length {
                        let th = t[i]
                        for e in 0..<16 { n[e] &+= a[e] >= th ? 1 : 0 }
                    }
                    var code = SIMD16<Int32>()
                    for e in 0..<16 { code[e] = Swift.min(Swift.max(base &+ n[e], low), high) }
                    UnsafeMutableRawPointer(row + p).storeBytes(of: code, as: SIMD16<Int32>.self)
                }
            }
        case let .multiplyShift(parameters, roundedBias, mode, low, high):
            let (multiplier, shift, offset) = parameters[c], rounded = roundedBias[c]
            for p in stride(from: 0, to: count, by: 16) {
                let a = adjusted(UnsafeRawPointer(row + p).loadUnaligned(as: SIMD16<Int32>.self), b)
                for e in 0..<16 {
                    row[p + e] = Int32(MultiplyShift.rescale(Int64(a[e]) + rounded, multiplier: multiplier, shift: shift, offset: offset,
                                                             mode: mode, lo: low, hi: high))
                }
            }
        case .accumulators:
            preconditionFailure("Int32Epilogue: the last layer has accumulators, not codes")
        }
    }

    /// The accumulators of `count` sums of one channel, into dst.
    func channelAccumulators(_ row: UnsafePointer<Int32>, count: Int, channel c: Int, into dst: UnsafeMutablePointer<Int64>) {
        let b = SIMD16<Int32>(repeating: bias[c])
        for p in stride(from: 0, to: count, by: 16) {
            var sums = SIMD16<Int32>()
            for e in 0..<Swift.min(16, count - p) { sums[e] = row[p + e] }
            let a = adjusted(sums, b)
            for e in 0..<Swift.min(16, count - p) { dst[p + e] = Int64(a[e]) }
        }
    }

    /// The accumulators of one row of sums (`channels` of them at dst).
    @inline(__always)
    func accumulators(_ row: UnsafeMutablePointer<Int32>, into dst: UnsafeMutablePointer<Int64>) {
        bias.withUnsafeBufferPointer { b in
            for c0 in stride(from: 0, to: padded, by: 16) {
                let a = values(row, c0, b.baseAddress!)
                for e in 0..<Swift.min(16, channels - c0) { dst[c0 + e] = Int64(a[e]) }
            }
        }
    }
}

extension IntegerKernels {
    /// [positions, ldc] Int32 (channel fastest) → [channels, positions], in blocks of 16
    /// positions so the reads stay in a few cache lines.
    static func transpose(_ src: UnsafePointer<Int32>, _ ldc: Int, positions: Int, channels: Int, into dst: UnsafeMutablePointer<Int32>) {
        for p0 in stride(from: 0, to: positions, by: 16) {
            let p1 = Swift.min(p0 + 16, positions)
            for o in 0..<channels {
                let column = src + o, line = dst + o * positions
                for p in p0..<p1 { line[p] = column[p * ldc] }
            }
        }
    }
}

/// Asks Linux to back the untouched memory of a large fresh buffer with 2 MiB pages
/// (transparent huge pages in `madvise` mode): one page fault per 2 MiB instead of per 4 KiB
/// when the buffer is first written. Values are unaffected; elsewhere this does nothing.
func adviseHugePages(_ buffer: UnsafeMutableRawBufferPointer) {
    #if os(Linux)
    let huge = 1 << 21
    guard buffer.count >= 2 * huge, let base = buffer.baseAddress else { return }
    let start = (Int(bitPattern: base) + huge - 1) & ~(huge - 1), end = (Int(bitPattern: base) + buffer.count) & ~(huge - 1)
    if start < end { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_HUGEPAGE) }
    #endif
}
