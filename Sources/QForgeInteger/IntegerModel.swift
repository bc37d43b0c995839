import Foundation
import QForgeTensor

/// An operation on integer codes before a layer's product (codes keep their grid and scale).
public enum CodeOp: Equatable, Sendable {
    /// Max-pool on codes: the scale is positive, so it commutes with dequantization.
    case maxPool(kernel: Int, stride: Int, padding: Int)
    /// [N, C, H, W] → [N, C·H·W].
    case flatten
}

/// The integer product of a layer: y = x·Wᵀ (Gemm) or conv(x, W), plus an integer bias.
public struct IntegerProduct: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case gemm
        case conv(stride: Int, padding: Int)
    }
    public var kind: Kind
    /// Weight codes, [M, K] or [M, C, kh, kw]. Rows of channels whose epilogue decreases are
    /// negated (see `IntegerLayer.flipped`).
    public var weights: QTensor
    /// Exact integer bias per output channel, in accumulator units, or nil: the zero-point
    /// correction −z·Σ_k W[m, k] when the input codes have a zero point z.
    public var bias: [Int64]?
}

/// The float operations a quantized graph applies to a layer's accumulator per output channel
/// before the next quantizer, evaluated in Double: the reference that requantization must match.
public enum EpilogueOp: Equatable, Sendable {
    /// y = factor[c] · y (input scale × weight scale).
    case scale([Double])
    /// y = y + bias[c].
    case bias([Double])
    /// y = (y − mean[c]) · factor[c] + shift[c], factor = γ/√(σ² + ε).
    case batchNorm(mean: [Double], factor: [Double], shift: [Double])
    case relu, sigmoid, tanh

    /// Whether the op preserves (true) or reverses (false) the order of values in channel c.
    func increasing(_ c: Int) -> Bool {
        switch self {
        case .scale(let f): return f[f.count == 1 ? 0 : c] >= 0
        case .batchNorm(_, let f, _): return f[f.count == 1 ? 0 : c] >= 0
        default: return true
        }
    }

    /// The op on one value of channel c, in Double.
    @inline(__always)
    public func apply(_ y: Double, _ c: Int) -> Double {
        switch self {
        case .scale(let f): return y * f[f.count == 1 ? 0 : c]
        case .bias(let b): return y + b[b.count == 1 ? 0 : c]
        case let .batchNorm(mean, factor, shift):
            let i = mean.count == 1 ? 0 : c
            return (y - mean[i]) * factor[i] + shift[i]
        case .relu: return Swift.max(y, 0)
        case .sigmoid: return 1 / (1 + Foundation.exp(-y))
        case .tanh: return Foundation.tanh(y)
        }
    }
}

/// How a layer's accumulators become the next layer's codes.
public enum Requantization: Equatable, Sendable {
    /// Exact: FINN's MultiThreshold, thresholds found on the Double epilogue itself.
    case thresholds(MultiThreshold)
    /// Fixed-point multiplier and right shift (exact only when the scale chain allows).
    case multiplyShift(MultiplyShift)
    /// The last layer: accumulators leave the integer model through the epilogue (Double).
    case output

    public var formName: String {
        switch self {
        case .thresholds: return "thresholds"
        case .multiplyShift(let m): return m.multipliers.allSatisfy { $0 == 1 } ? "shift" : "multiplier+shift"
        case .output: return "output"
        }
    }
}

/// A lookup-table activation (seed 003): the layer requantizes to the grid of the quantizer in
/// front of a sigmoid or tanh, and a table maps each of those codes to the code of the
/// function's value on the output grid. Exact by construction: the table is the Double
/// reference itself, one entry per input code.
public struct CodeLookup: Equatable, Sendable {
    /// The largest table (16-bit input codes).
    public static let maxEntries = 1 << 16
    /// The grid the requantization produces (the activation's input quantizer).
    public var input: CodeGrid
    /// `.sigmoid` or `.tanh`.
    public var function: EpilogueOp
    /// Input code − input.grid.minInt ↦ output code.
    public var table: LookupTable

    /// The table of `function` from `input` to `output`: q ↦ clamp(R(f((q − z)·s) / s′ + z′)).
    public init(input: CodeGrid, function: EpilogueOp, output: CodeGrid) {
        self.input = input
        self.function = function
        table = LookupTable(inputs: Int64(input.grid.minInt)...Int64(input.grid.maxInt)) { q in
            CodeLookup.code(function.apply(input.value(Int32(q)), 0), on: output)
        }
    }

    public init(input: CodeGrid, function: EpilogueOp, table: LookupTable) {
        self.input = input; self.function = function; self.table = table
    }

    /// The code of a real value on a grid: clamp(R(v / s + z)) in Double.
    @inline(__always)
    static func code(_ v: Double, on grid: CodeGrid) -> Int32 {
        let r = grid.grid.rounding.apply(v / grid.scale + Double(grid.zeroPoint))
        return Int32(Swift.min(Swift.max(r, Double(grid.grid.minInt)), Double(grid.grid.maxInt)))
    }
}

/// How a layer's epilogue value becomes a code when the graph says it with a QONNX `Trunc` or a
/// FINN `MultiThreshold` node instead of a `Quant` node. Both are monotone in the value, so the
/// requantization finds its integer thresholds on them as on a Quant's rounding.
public enum OutputRule: Equatable, Sendable {
    /// MultiThreshold: base + #{i : v ≥ T[c][i]} (one list, or one per channel), then clamped
    /// to the grid (which holds every count).
    case thresholds([[Double]], base: Int)
    /// Trunc: q = round-half-even(v / scale + zeroPoint); y = q / factor (a power of two),
    /// clamped to the output grid when `clamp` (QONNX Trunc version 2; version 1 does not
    /// clamp), then rounded by `rounding`.
    case trunc(scale: Double, zeroPoint: Double, factor: Double, clamp: Bool, rounding: RoundingMode)

    /// The code of the epilogue value `v` of channel c on `grid`.
    @inline(__always)
    public func code(_ v: Double, channel c: Int, on grid: IntQuantGrid) -> Int32 {
        let r: Double
        switch self {
        case let .thresholds(lists, base):
            let t = lists[lists.count == 1 ? 0 : c]
            var n = 0
            for x in t where v >= x { n += 1 }
            r = Double(base + n)
        case let .trunc(scale, zeroPoint, factor, clamp, rounding):
            var y = RoundingMode.round.apply(v / scale + zeroPoint) / factor
            if clamp { y = Swift.min(Swift.max(y, Double(grid.minInt)), Double(grid.maxInt)) }
            r = rounding.apply(y)
        }
        return Int32(Swift.min(Swift.max(r, Double(grid.minInt)), Double(grid.maxInt)))
    }
}

/// A quantizer's grid, scale and zero point: codes q stand for (q − zeroPoint) · scale.
public struct CodeGrid: Equatable, Sendable {
    public var grid: IntQuantGrid
    public var scale: Double
    public var zeroPoint: Int
    /// QONNX `BipolarQuant` codes: one unsigned bit b standing for (2b − 1) · scale, so 0 is −scale
    /// and 1 is +scale (the grid is the unsigned 1-bit grid, the zero point 0). A layer reading
    /// them computes Σ w·(2b − 1) = Σ 2w·b − Σ w: doubled weights and the bias −Σ w.
    public var bipolar: Bool
    public init(grid: IntQuantGrid, scale: Double, zeroPoint: Int = 0) {
        self.grid = grid; self.scale = scale; self.zeroPoint = zeroPoint; bipolar = false
    }

    /// Bipolar codes (0 ↦ −scale, 1 ↦ +scale).
    public static func bipolar(scale: Double) -> CodeGrid {
        var g = CodeGrid(grid: IntQuantGrid(bitWidth: 1, signed: false), scale: scale)
        g.bipolar = true
        return g
    }

    /// The real value of a code.
    @inline(__always)
    public func value(_ code: Int32) -> Double { bipolar ? Double(2 * Int(code) - 1) * scale : Double(Int(code) - zeroPoint) * scale }
}

/// One layer of the integer model: code ops, product, accumulator, requantization.
public struct IntegerLayer: Equatable, Sendable {
    /// The graph name of the layer's output quantizer (`layers.3/act_quant`) or of its last node.
    public var name: String
    public var codeOps: [CodeOp]
    public var product: IntegerProduct
    /// Exact accumulator range per output channel (interval analysis over the input grid).
    public var accumulatorRange: [ClosedRange<Int64>]
    /// Bits the accumulator needs (signed), the maximum over channels.
    public var accumulatorBits: Int
    /// A narrower accumulator chosen by the user, applied to the exact sum.
    public var accumulatorCap: AccumulatorCap?
    /// Keep only the most significant bits of the accumulator (seed 002): acc >>> dropped bits,
    /// floor. The requantization reads the truncated value as the bottom of its 2^k bucket.
    public var droppedBits: Int = 0
    /// Channels whose weight rows (and bias) are negated so that the epilogue increases.
    public var flipped: [Bool]
    /// The multiplier and shift forms: the float bias and BatchNorm offset rounded to
    /// accumulator units, added to the accumulator before the multiply (nil otherwise).
    public var roundedBias: [Int64]?
    public var epilogue: [EpilogueOp]
    public var requantization: Requantization
    /// The grid and scale of the codes this layer produces (nil for the output layer).
    public var output: CodeGrid?
    /// The grid and scale of the codes this layer reads.
    public var input: CodeGrid
    /// A lookup-table activation after the requantization (nil: none).
    public var lookup: CodeLookup? = nil
    /// The Trunc or MultiThreshold that defines the output codes instead of the output grid's
    /// rounding (nil: a Quant node). Streamlining only: the requantization holds its result.
    public var outputRule: OutputRule? = nil

    /// The grid the requantization targets: the lookup table's input grid, else the output's.
    public var requantizedGrid: CodeGrid? { lookup?.input ?? output }
}

/// A streamlined, integer-only model: the specification of every number the hardware computes.
///
/// The host quantizes the float input with `inputQuantizer` (QONNX IntQuant in Float32, as the
/// fake-quantized model does); every layer then works on integers (`IntegerOps`); the last
/// layer's accumulators are the integer outputs, and `dequantized` maps them to the float
/// model's units with the last epilogue.
public struct IntegerModel: Equatable, Sendable {
    public var name: String
    /// Sample shape of the float input ([1, 28, 28], [784], …).
    public var inputShape: [Int]
    public var inputQuantizer: CodeGrid
    /// The input scale as the float model stores it (Float32: codes must match bit for bit).
    public var inputScale: Float
    public var layers: [IntegerLayer] {
        didSet { executionCache = ExecutionCache() }  // a changed copy gets plans of its own
    }
    /// The layers' execution plans (packed weights, fused epilogues), built by the first
    /// `run`; not part of the model's value (`ExecutionCache` always compares equal).
    var executionCache = ExecutionCache()

    /// Float inputs [N, …] → input codes: clamp(R(x / s + z)) in Float32, exactly as the
    /// fake-quantized model's input quantizer (`Tensor.fakeQuantized`) computes them (NaN
    /// becomes the lowest code).
    public func quantizeInput(_ x: Tensor) -> QTensor {
        if inputQuantizer.bipolar {  // BipolarQuant: x ≥ 0 ↦ 1 (+scale), else (NaN too) 0 (−scale)
            return QTensor(shape: [x.shape[0]] + inputShape, values: x.scalars.map { $0 >= 0 ? 1 : 0 })
        }
        let n = x.count, s = inputScale, z = Float(inputQuantizer.zeroPoint)
        let lo = Float(inputQuantizer.grid.minInt), hi = Float(inputQuantizer.grid.maxInt), mode = inputQuantizer.grid.rounding
        let values = [Int32](unsafeUninitializedCapacity: n) { out, initialized in
            let px = x.storage.pointer, po = out.baseAddress!
            Parallel.forRange(n, cost: 4) { r in
                // clamp(v) with NaN → lo (no trap on bad data); one loop per mode, so each vectorises.
                @inline(__always) func clamp(_ v: Float) -> Int32 { Int32(v >= lo ? (v <= hi ? v : hi) : lo) }
                if hi > 16_777_216 {  // wide grids: 2^31 − 1 has no Float32, clamp the rounded value as Int64
                    let top = Int64(inputQuantizer.grid.maxInt)
                    for i in r {
                        let v = mode.apply(px[i] / s + z)
                        po[i] = v >= lo ? Int32(Swift.min(Int64(Swift.min(v, hi)), top)) : Int32(lo)
                    }
                    return
                }
                switch mode {
                case .round: for i in r { po[i] = clamp((px[i] / s + z).rounded(.toNearestOrEven)) }
                case .floor: for i in r { po[i] = clamp((px[i] / s + z).rounded(.down)) }
                default: for i in r { po[i] = clamp(mode.apply(px[i] / s + z)) }
                }
            }
            initialized = n
        }
        return QTensor(shape: [x.shape[0]] + inputShape, values: values)
    }

    /// What one run computes: every layer's output codes (the taps) and the last accumulators.
    public struct Trace: Sendable {
        /// Output codes of every layer but the last.
        public var codes: [QTensor]
        /// The last layer's accumulators [N, outputs].
        public var outputs: AccTensor
    }

    /// Runs the integer model on input codes: each layer's `accumulate`, then `requantize`
    /// (the last layer's accumulators are the outputs). Computed by the layers' plans
    /// (`LayerPlan`): the same values, with the weights packed once and, where it is exact,
    /// products and requantization fused on Int32 sums.
    public func run(_ input: QTensor) -> Trace {
        precondition(!layers.isEmpty, "IntegerModel: no layers")
        var x = input
        var taps: [QTensor] = []
        for plan in executionCache.plans(for: layers) {
            let (codes, accumulators) = plan.run(x)
            if let accumulators { return Trace(codes: taps, outputs: accumulators) }
            x = codes!
            taps.append(x)
        }
        preconditionFailure("IntegerModel: the last layer gave no accumulators")
    }

    /// The last layer's accumulators for input codes [N, …]: `run(input).outputs`, computed in
    /// blocks of samples small enough that a block's largest tensor stays in a core's L2 cache
    /// (`blockBytes`), the blocks spread over the cores, each block through all layers on one
    /// core. Every sample's outputs depend on that sample alone, so the values are those of
    /// `run`; only the taps are not kept.
    public func outputs(_ input: QTensor) -> AccTensor {
        let n = input.shape.first ?? 0
        guard n > 1, Parallel.coreCount > 1 || n > 64 else { return run(input).outputs }
        let plans = executionCache.plans(for: layers), perSample = input.count / n
        func slice(_ r: Range<Int>) -> QTensor {
            QTensor(shape: [r.count] + input.shape.dropFirst(), values: Array(input.values[(r.lowerBound * perSample)..<(r.upperBound * perSample)]))
        }
        // One sample measures the largest tensor per sample (codes are 4 bytes, and the
        // kernels' Int32 sums about as many again).
        var largest = perSample, x = slice(0..<1), outputShape: [Int] = []
        for plan in plans {
            let (codes, accumulators) = Parallel.serially { plan.run(x) }
            if let accumulators { outputShape = Array(accumulators.shape.dropFirst()); break }
            x = codes!
            largest = Swift.max(largest, x.count)
        }
        let fit = Swift.max(1, Self.blockBytes / (8 * largest))
        let block = fit >= 12 ? fit / 6 * 6 : fit  // whole Int16 tiles of 6 rows when that costs little
        let blocks = (n + block - 1) / block, outputWidth = outputShape.reduce(1, *)
        let values = [Int64](unsafeUninitializedCapacity: n * outputWidth) { buf, initialized in
            let out = buf.baseAddress!
            Parallel.forEach(blocks) { b in
                let r = (b * block)..<Swift.min(n, (b + 1) * block)
                let y = Parallel.serially { () -> AccTensor in
                    var x = slice(r)
                    for plan in plans {
                        let (codes, accumulators) = plan.run(x)
                        if let accumulators { return accumulators }
                        x = codes!
                    }
                    preconditionFailure("IntegerModel: the last layer gave no accumulators")
                }
                y.values.withUnsafeBufferPointer { (out + r.lowerBound * outputWidth).update(from: $0.baseAddress!, count: y.count) }
            }
            initialized = n * outputWidth
        }
        return AccTensor(shape: [n] + outputShape, values: values)
    }

    /// How each layer is computed (fused Int16 forms or the definition), for benchmark reports.
    public var executionSummary: [String] { executionCache.plans(for: layers).map(\.summary) }

    /// The cache budget of one block of `outputs`: its largest tensor and its sums.
    nonisolated(unsafe) public static var blockBytes = 1 << 20

    /// The last layer's accumulators in the float model's units (logits, predictions).
    public func dequantized(_ outputs: AccTensor) -> [Double] {
        guard let last = layers.last else { return [] }
        let m = outputs.shape[1]
        return outputs.values.enumerated().map { i, a in last.epilogueValue(a, channel: i % m) }
    }
}

extension IntegerLayer {
    /// The layer's code ops (max-pool, flatten) applied to its input codes: the product's operand.
    public func applyingCodeOps(_ codes: QTensor) -> QTensor {
        var x = codes
        for op in codeOps {
            switch op {
            case let .maxPool(k, s, p): x = IntegerOps.maxPool2d(x, kernel: (k, k), stride: (s, s), padding: (p, p))
            case .flatten: x = x.flattened()
            }
        }
        return x
    }

    /// Code ops, then the exact product, then the accumulator cap and MSB truncation if any
    /// (unless `capped` is false: the reference works on exact sums).
    public func accumulate(_ codes: QTensor, capped: Bool = true) -> AccTensor {
        let x = applyingCodeOps(codes)
        let bound = Int64(Swift.max(abs(input.grid.minInt), abs(input.grid.maxInt)))
        var acc: AccTensor
        switch product.kind {
        case .gemm:
            acc = IntegerOps.matmul(x.rank == 2 ? x : x.flattened(), weight: product.weights, bias: product.bias, maxAbsInput: bound)
        case let .conv(stride, padding):
            acc = IntegerOps.conv2d(x, weight: product.weights, bias: product.bias, stride: (stride, stride),
                                    padding: (padding, padding), maxAbsInput: bound)
        }
        if capped, let cap = accumulatorCap { acc = cap.apply(acc) }
        if capped, droppedBits > 0 { acc = AccTensor(shape: acc.shape, values: acc.values.map { $0 >> Int64(droppedBits) }) }
        return acc
    }

    /// Accumulators → the next layer's codes (thresholds, or rounded bias then multiplier and
    /// shift; then the lookup table if any).
    public func requantize(_ acc: AccTensor) -> QTensor {
        let codes: QTensor
        switch requantization {
        case .thresholds(let t): codes = t.apply(acc)
        case .multiplyShift(let m):
            if let b = roundedBias {
                let per = acc.count / Swift.max(acc.shape[0] * b.count, 1)
                codes = m.apply(AccTensor(shape: acc.shape, values: acc.values.enumerated().map { i, a in a + b[(i / per) % b.count] }))
            } else {
                codes = m.apply(acc)
            }
        case .output: preconditionFailure("IntegerLayer \(name): an output layer has no requantization")
        }
        return lookup.map { $0.table.apply(codes) } ?? codes
    }

    /// The epilogue in Double for one accumulator of channel c (undoing the flip).
    @inline(__always)
    public func epilogueValue(_ acc: Int64, channel c: Int) -> Double {
        var y = Double(flipped[c] ? -acc : acc)
        for op in epilogue { y = op.apply(y, c) }
        return y
    }

    /// The reference code of one accumulator: clamp(R(epilogue / scale + zero point)) in Double
    /// on the requantized grid; through a lookup activation, the code of f of that code's value.
    @inline(__always)
    public func referenceCode(_ acc: Int64, channel c: Int) -> Int32 {
        let q = requantizedCode(acc, channel: c)
        guard let lookup else { return q }
        return CodeLookup.code(lookup.function.apply(lookup.input.value(q), c), on: output!)
    }

    /// The reference code on the requantized grid (before a lookup table).
    @inline(__always)
    public func requantizedCode(_ acc: Int64, channel c: Int) -> Int32 {
        if let rule = outputRule, lookup == nil { return rule.code(epilogueValue(acc, channel: c), channel: c, on: output!.grid) }
        return CodeLookup.code(epilogueValue(acc, channel: c), on: requantizedGrid!)
    }

    /// The reference (Double epilogue) codes of a whole accumulator tensor.
    public func referenceCodes(_ acc: AccTensor) -> QTensor {
        let channels = acc.shape[1], per = acc.count / Swift.max(acc.shape[0] * channels, 1)
        var out = [Int32](repeating: 0, count: acc.count)
        for i in 0..<acc.count { out[i] = referenceCode(acc.values[i], channel: (i / per) % channels) }
        return QTensor(shape: acc.shape, values: out)
    }
}
