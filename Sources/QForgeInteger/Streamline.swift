import Foundation
import QForgeGraph
import QForgeTensor

/// Why a graph cannot become an integer model: one line naming the node and the fix.
public struct StreamlineError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ node: String, _ problem: String) { description = "node \(node): \(problem)" }
}

/// How layers requantize their accumulators.
public enum RequantizationForm: String, CaseIterable, Sendable {
    /// MultiThreshold: exact for any scale chain (the default).
    case thresholds
    /// A fixed-point multiplier (16 bits) and a right shift, with the bias rounded to an integer.
    case multiplier
    /// A power-of-two factor as a pure shift; an error where the scale chain is not a power of two.
    case shift
}

/// Options of `streamline`.
public struct StreamlineOptions: Sendable {
    public var form: RequantizationForm
    /// Per-layer forms by layer name prefix (`layers.3`), overriding `form`.
    public var forms: [String: RequantizationForm]
    /// Cap every accumulator at this many bits (nil: the exact width from interval analysis).
    public var accumulatorBits: Int?
    public var overflow: OverflowMode
    /// Multiplier precision of the multiplier form.
    public var multiplierBits: Int
    /// Keep only this many most significant accumulator bits (seed 002's MSB truncation);
    /// nil keeps the full width.
    public var keepMSBs: Int?

    public init(form: RequantizationForm = .thresholds, forms: [String: RequantizationForm] = [:], accumulatorBits: Int? = nil,
                overflow: OverflowMode = .saturate, multiplierBits: Int = 16, keepMSBs: Int? = nil) {
        self.form = form; self.forms = forms; self.accumulatorBits = accumulatorBits; self.overflow = overflow
        self.multiplierBits = multiplierBits; self.keepMSBs = keepMSBs
    }
}

/// Streamlining: a quantized graph (QONNX `Quant` nodes on the input, on each weight and after
/// each activation) becomes an integer-only model.
///
/// The graph must be a chain of layers of the form
///
///     [MaxPool | Flatten]* on quantized codes → Gemm | Conv with Quant-ed weights [+ bias]
///         → [BatchNormalization] → [Relu | Sigmoid | Tanh] → Quant   (or the graph's output)
///
/// after an input `Quant`. Each layer becomes an exact integer product; its scales, bias,
/// BatchNorm and activation form the epilogue, which the requantization replaces: thresholds
/// (the smallest accumulator whose Double epilogue rounds to each code: exact by
/// construction, because the epilogue is monotone per channel once decreasing channels have
/// their weights negated), a fixed-point multiplier and shift, or a shift.
public func streamline(_ graph: Graph, tensors: [String: Tensor], options: StreamlineOptions = StreamlineOptions()) throws -> IntegerModel {
    var walker = try ChainWalker(graph: graph, tensors: tensors)
    return try walker.build(options)
}

/// Walks the graph's chain of nodes from the input.
struct ChainWalker {
    let graph: Graph
    let tensors: [String: Tensor]
    /// Node producing each value.
    let producer: [String: Node]
    /// Nodes consuming each value.
    let consumers: [String: [Node]]

    init(graph: Graph, tensors: [String: Tensor]) throws {
        self.graph = graph
        self.tensors = tensors
        var producer: [String: Node] = [:], consumers: [String: [Node]] = [:]
        for n in graph.nodes {
            for o in n.outputs { producer[o] = n }
            for i in n.inputs { consumers[i, default: []].append(n) }
        }
        self.producer = producer
        self.consumers = consumers
    }

    func tensor(_ name: String, for node: Node) throws -> Tensor {
        guard let t = tensors[name] else { throw StreamlineError(node.name, "needs the tensor '\(name)', which the file does not have") }
        return t
    }

    /// The Quant node's grid, scale tensor and (integer, per-tensor) zero point.
    func quantParameters(_ node: Node) throws -> (IntQuantGrid, Tensor, Int) {
        guard node.inputs.count == 4 else { throw StreamlineError(node.name, "a Quant node needs 4 inputs (x, scale, zero point, bit width)") }
        let scale = try tensor(node.inputs[1], for: node), zero = try tensor(node.inputs[2], for: node), bits = try tensor(node.inputs[3], for: node)
        guard zero.count == 1, let zp = Int(exactly: zero.item) else {
            throw StreamlineError(node.name, "zero point \(zero.scalars.prefix(4)) is not one integer; QForge streamlines integer per-tensor zero points")
        }
        guard bits.count == 1, let b = Int(exactly: bits.item), (1...32).contains(b) else {
            throw StreamlineError(node.name, "bit width \(bits.scalars.prefix(4)) is not one integer in 1...32")
        }
        guard scale.scalars.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw StreamlineError(node.name, "scales must be positive and finite, found \(scale.scalars.prefix(4))")
        }
        let rounding = node.attributes["rounding_mode"]?.stringValue.flatMap(RoundingMode.init(qonnxName:)) ?? .round
        let grid = IntQuantGrid(bitWidth: b, signed: node.attributes["signed"]?.intValue == 1,
                                narrow: node.attributes["narrow"]?.intValue == 1, rounding: rounding)
        guard grid.maxInt <= Int(Int32.max) else {
            throw StreamlineError(node.name, "an unsigned \(b)-bit grid does not fit int32 codes; use a signed 32-bit grid or 31 bits")
        }
        guard (grid.minInt...grid.maxInt).contains(zp) else {
            throw StreamlineError(node.name, "zero point \(zp) lies outside the \(b)-bit grid \(grid.minInt)…\(grid.maxInt)")
        }
        return (grid, scale, zp)
    }

    /// The single consumer of `value` (the chain continues there), or nil at the graph output.
    func next(_ value: String) throws -> Node? {
        let users = consumers[value] ?? []
        if users.isEmpty { return nil }
        guard users.count == 1 else {
            throw StreamlineError(users[0].name, "value '\(value)' feeds \(users.count) nodes; QForge streamlines chains (no branches yet)")
        }
        return users[0]
    }

    mutating func build(_ options: StreamlineOptions) throws -> IntegerModel {
        guard let input = graph.inputs.first, graph.inputs.count == 1 else {
            throw StreamlineError(graph.name, "the graph needs exactly one input")
        }
        guard let first = try next(input.name), first.op == .quant || first.op == .bipolarQuant else {
            throw StreamlineError(consumers[input.name]?.first?.name ?? input.name,
                                  "the input is not quantized first; quantize the model (an input Quant node) before streamlining")
        }
        var codes: CodeGrid
        if first.op == .bipolarQuant {
            codes = try bipolarGrid(first)
        } else {
            let (inGrid, inScale, inZero) = try quantParameters(first)
            guard inScale.count == 1 else { throw StreamlineError(first.name, "the input quantizer needs one scale") }
            codes = CodeGrid(grid: inGrid, scale: Double(inScale.item), zeroPoint: inZero)
        }
        let inputCodes = codes
        var value = first.outputs[0]
        var layers: [IntegerLayer] = []
        var pending: [CodeOp] = []
        while var node = try next(value) {
            switch node.op {
            case .maxPool:
                let k = node.attributes["kernel_shape"]?.intsValue ?? []
                guard k.count == 2, k[0] == k[1] else { throw StreamlineError(node.name, "MaxPool needs a square kernel_shape") }
                let s = node.attributes["strides"]?.intsValue ?? k, p = node.attributes["pads"]?.intsValue ?? [0, 0, 0, 0]
                guard s.count == 2, s[0] == s[1], Set(p).count <= 1 else {
                    throw StreamlineError(node.name, "MaxPool with unequal strides or pads is not supported")
                }
                pending.append(.maxPool(kernel: k[0], stride: s[0], padding: p.first ?? 0))
                value = node.outputs[0]
            case .flatten, .dropout, .identity:
                if node.op == .flatten { pending.append(.flatten) }
                value = node.outputs[0]
            case .gemm, .conv:
                var layer = try product(node, input: codes, codeOps: pending)
                pending = []
                value = node.outputs[0]
                // Epilogue: BatchNorm, activation, then the next Quant (or the end).
                while let n = try next(value), [.batchNormalization, .relu, .sigmoid, .tanh].contains(n.op) {
                    layer.epilogue.append(try epilogueOp(n, channels: layer.flipped.count))
                    value = n.outputs[0]
                    node = n
                }
                if let q = try next(value) {
                    guard [.quant, .bipolarQuant, .multiThreshold, .trunc].contains(q.op) else {
                        throw StreamlineError(q.name, "a float \(q.op.rawValue) between \(node.name) and the next quantizer cannot be streamlined; quantize its input or output, or remove it")
                    }
                    if q.op == .quant {
                        let (grid, scale, zero) = try quantParameters(q)
                        guard scale.count == 1 else { throw StreamlineError(q.name, "activation quantizers need one scale (per tensor)") }
                        layer.output = CodeGrid(grid: grid, scale: Double(scale.item), zeroPoint: zero)
                    } else if q.op == .bipolarQuant {  // one threshold: v ≥ 0 ↦ 1 (+scale)
                        layer.output = try bipolarGrid(q)
                        layer.outputRule = .thresholds([[0]], base: 0)
                    } else {
                        let (grid, rule) = try ruleOutput(q, layer: layer)
                        layer.output = grid
                        layer.outputRule = rule
                    }
                    layer.name = q.name
                    var form = options.forms.first { layer.name.hasPrefix($0.key + "/") || layer.name == $0.key }?.value ?? options.form
                    // A Trunc's double rounding and a file's thresholds are no multiplier: thresholds hold them exactly.
                    if layer.outputRule != nil {
                        form = .thresholds
                        let g = layer.output!.grid
                        guard g.maxInt - g.minInt <= MultiThreshold.maxLevels else {
                            throw StreamlineError(q.name, "its \(g.bitWidth)-bit output needs \(g.maxInt - g.minInt) thresholds per channel (at most \(MultiThreshold.maxLevels)); QForge holds a \(q.op.rawValue) as thresholds")
                        }
                    }
                    if let keep = options.keepMSBs {
                        let width = Swift.min(layer.accumulatorBits, options.accumulatorBits ?? 64)
                        layer.droppedBits = Swift.max(0, width - keep)
                    }
                    try requantize(&layer, form: form, options: options)
                    value = q.outputs[0]
                    // Quant → Sigmoid | Tanh → Quant: a lookup table from code to code.
                    if q.op == .quant, let f = try next(value), f.op == .sigmoid || f.op == .tanh {
                        guard let q2 = try next(f.outputs[0]), q2.op == .quant else {
                            throw StreamlineError(f.name, "a \(f.op.rawValue) on quantized values needs a quantizer after it (it becomes a lookup table from code to code)")
                        }
                        let (grid2, scale2, zero2) = try quantParameters(q2)
                        guard scale2.count == 1 else { throw StreamlineError(q2.name, "activation quantizers need one scale (per tensor)") }
                        let levels = layer.output!.grid.maxInt - layer.output!.grid.minInt + 1
                        guard levels <= CodeLookup.maxEntries else {
                            throw StreamlineError(q.name, "a lookup table over \(layer.output!.grid.bitWidth)-bit codes would need \(levels) entries (at most \(CodeLookup.maxEntries)); quantize the \(f.op.rawValue) input to 16 bits or fewer")
                        }
                        let out = CodeGrid(grid: grid2, scale: Double(scale2.item), zeroPoint: zero2)
                        layer.lookup = CodeLookup(input: layer.output!, function: try epilogueOp(f, channels: 1), output: out)
                        layer.output = out
                        layer.name = q2.name
                        value = q2.outputs[0]
                    }
                    codes = layer.output!
                } else {
                    layer.name = node.name
                    layer.requantization = .output
                }
                if let bits = options.accumulatorBits, bits < layer.accumulatorBits {
                    layer.accumulatorCap = AccumulatorCap(bits: bits, overflow: options.overflow)
                }
                layers.append(layer)
            default:
                throw StreamlineError(node.name, "\(node.op.rawValue) on quantized values cannot be streamlined (QForge takes MaxPool, Flatten, Gemm and Conv between quantizers)")
            }
        }
        guard !layers.isEmpty, layers.last!.requantization == .output else {
            throw StreamlineError(value, "the graph ends on a quantizer or has no Gemm/Conv layer; the last layer must be a Gemm or Conv")
        }
        if !pending.isEmpty { throw StreamlineError(value, "MaxPool/Flatten after the last layer are not supported") }
        let shape = input.shape.dropFirst().map { $0 ?? 0 }
        return IntegerModel(name: graph.name, inputShape: Array(shape), inputQuantizer: inputCodes,
                            inputScale: Float(inputCodes.scale), layers: layers)
    }

    /// The codes of a per-tensor BipolarQuant (x, scale) on the chain.
    func bipolarGrid(_ node: Node) throws -> CodeGrid {
        guard node.inputs.count == 2 else { throw StreamlineError(node.name, "a BipolarQuant node needs 2 inputs (x, scale)") }
        let scale = try tensor(node.inputs[1], for: node)
        guard scale.count == 1, scale.item > 0, scale.item.isFinite else {
            throw StreamlineError(node.name, "a bipolar activation needs one positive scale (per tensor), found \(scale.scalars.prefix(4))")
        }
        return .bipolar(scale: Double(scale.item))
    }

    /// The output codes of a layer that ends in a QONNX Trunc or a FINN MultiThreshold: their
    /// grid and the rule that maps the epilogue value to a code.
    func ruleOutput(_ q: Node, layer: IntegerLayer) throws -> (CodeGrid, OutputRule) {
        let channels = layer.flipped.count
        func single(_ i: Int, _ what: String) throws -> Double {
            guard i < q.inputs.count else { throw StreamlineError(q.name, "has no \(what) input") }
            let t = try tensor(q.inputs[i], for: q)
            guard t.count == 1, t.item.isFinite else { throw StreamlineError(q.name, "its \(what) must be one finite number, found \(t.scalars.prefix(4))") }
            return Double(t.item)
        }
        if q.op == .multiThreshold {
            let t = try tensor(q.inputs[1], for: q)
            guard t.rank == 2, t.shape[0] == 1 || t.shape[0] == channels, t.shape[1] >= 1,
                  t.scalars.allSatisfy({ !$0.isNaN }) else {
                throw StreamlineError(q.name, "thresholds of shape \(t.shape) do not fit \(channels) channels; MultiThreshold needs [channels or 1, steps] numbers")
            }
            let outScale = Double(q.attributes["out_scale"]?.floatValue ?? 1), outBias = Double(q.attributes["out_bias"]?.floatValue ?? 0)
            let base = outBias / outScale
            guard outScale > 0, outScale.isFinite, base == base.rounded(), abs(base) < 1e9 else {
                throw StreamlineError(q.name, "out_scale \(outScale) and out_bias \(outBias) do not put the counts on a grid (out_scale > 0 and out_bias a whole multiple of it are needed)")
            }
            let steps = t.shape[1]
            let lists = (0..<t.shape[0]).map { c in t.scalars[(c * steps)..<((c + 1) * steps)].map(Double.init).sorted() }
            let grid = IntQuantGrid.smallest(holding: Int(base)...(Int(base) + steps))
            return (CodeGrid(grid: grid, scale: outScale), .thresholds(lists, base: Int(base)))
        }
        // Trunc: version 2 (x, scale, zero point, input bit width, output scale, output bit
        // width) clamps to its output grid; version 1 (x, scale, zero point, input bit width,
        // output bit width) keeps the input scale, drops input − output bits and does not clamp.
        guard q.inputs.count == 5 || q.inputs.count == 6 else {
            throw StreamlineError(q.name, "a Trunc node needs 5 (version 1) or 6 (version 2) inputs, it has \(q.inputs.count)")
        }
        let v2 = q.inputs.count == 6
        let scale = try single(1, "scale"), zero = try single(2, "zero point"), inBits = try single(3, "input bit width")
        let outBits = try single(v2 ? 5 : 4, "output bit width")
        guard scale > 0, let ob = Int(exactly: outBits), (1...31).contains(ob), let ib = Int(exactly: inBits), (1...32).contains(ib) else {
            throw StreamlineError(q.name, "needs a positive scale and bit widths in 1…32 (output up to 31), found scale \(scale), bits \(inBits) → \(outBits)")
        }
        let mode = q.attributes["rounding_mode"]?.stringValue ?? "FLOOR"
        guard let rounding = RoundingMode(qonnxName: mode) else { throw StreamlineError(q.name, "rounding_mode '\(mode)' is unknown") }
        let factor: Double, outScale: Double
        if v2 {
            outScale = try single(4, "output scale")
            guard outScale > 0 else { throw StreamlineError(q.name, "the output scale must be positive, found \(outScale)") }
            // 2^round(log2(output scale / scale)) in Float32, as the qonnx executor computes it.
            factor = Double(exp2(log2(Float(outScale) / Float(scale)).rounded(.toNearestOrEven)))
        } else {
            guard ib >= ob else { throw StreamlineError(q.name, "input bit width \(ib) is below the output bit width \(ob)") }
            outScale = scale
            factor = Double(1 << (ib - ob))
        }
        let zeroCode = v2 ? zero / factor : zero
        guard zeroCode == zeroCode.rounded(), abs(zeroCode) < 1e9 else {
            throw StreamlineError(q.name, "the output zero point \(zeroCode) is not an integer; QForge streamlines integer zero points")
        }
        let rule = OutputRule.trunc(scale: scale, zeroPoint: zero, factor: factor, clamp: v2, rounding: rounding)
        var grid: IntQuantGrid
        if v2 {
            grid = IntQuantGrid(bitWidth: ob, signed: q.attributes["signed"]?.intValue ?? 1 == 1, narrow: q.attributes["narrow"]?.intValue == 1, rounding: rounding)
        } else {  // no clamp: the grid of every code the accumulator ranges reach
            var probe = layer
            probe.output = CodeGrid(grid: IntQuantGrid(bitWidth: 32, signed: true), scale: outScale)
            probe.outputRule = rule
            let ends = layer.accumulatorRange.enumerated().flatMap { c, r in [probe.requantizedCode(r.lowerBound, channel: c), probe.requantizedCode(r.upperBound, channel: c)] }
            grid = IntQuantGrid.smallest(holding: Int(ends.min() ?? 0)...Int(ends.max() ?? 0))
            guard grid.bitWidth <= 31 else { throw StreamlineError(q.name, "its codes need \(grid.bitWidth) bits; QForge streamlines up to 31") }
        }
        return (CodeGrid(grid: grid, scale: outScale, zeroPoint: Int(zeroCode)), rule)
    }

    /// The integer product of a Gemm/Conv whose weight comes from a Quant node.
    func product(_ node: Node, input: CodeGrid, codeOps: [CodeOp]) throws -> IntegerLayer {
        guard node.inputs.count >= 2, let wq = producer[node.inputs[1]], wq.op == .quant || wq.op == .bipolarQuant else {
            throw StreamlineError(node.name, "its weight is not quantized (no Quant or BipolarQuant node on input 2)")
        }
        let w = try tensor(wq.inputs[0], for: wq)
        let wScale: Tensor
        var codes: [Int32]
        if wq.op == .bipolarQuant {  // codes ±1: x ≥ 0 → +1
            guard wq.inputs.count == 2 else { throw StreamlineError(wq.name, "a BipolarQuant node needs 2 inputs (x, scale)") }
            wScale = try tensor(wq.inputs[1], for: wq)
            guard wScale.scalars.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw StreamlineError(wq.name, "scales must be positive and finite, found \(wScale.scalars.prefix(4))")
            }
            codes = w.scalars.map { $0 >= 0 ? 1 : -1 }
        } else {
            let (wGrid, scale, zero) = try quantParameters(wq)
            guard zero == 0 else { throw StreamlineError(wq.name, "weights need zero point 0 (symmetric), found \(zero)") }
            wScale = scale
            codes = w.quantizedIntegers(scale: wScale, zeroPoint: Tensor(shape: [1], scalars: [0]), grid: wGrid).map { Int32($0) }
        }
        let channels = w.shape[0]
        guard wScale.count == 1 || wScale.count == channels else {
            throw StreamlineError(wq.name, "\(wScale.count) scales for \(channels) output channels")
        }
        var shape = w.shape
        let kind: IntegerProduct.Kind
        if node.op == .gemm {
            guard w.rank == 2 else { throw StreamlineError(node.name, "Gemm weight must be 2-d, is \(w.shape)") }
            if node.attributes["transB"]?.intValue != 1 {  // W is [K, M]: store [M, K]
                let (k, m) = (w.shape[0], w.shape[1])
                codes = (0..<(m * k)).map { i in codes[(i % k) * m + i / k] }
                shape = [m, k]
                guard wScale.count == 1 else { throw StreamlineError(wq.name, "per-channel scales on a Gemm without transB are not supported") }
            }
            kind = .gemm
        } else {
            let strides = node.attributes["strides"]?.intsValue ?? [1, 1], pads = node.attributes["pads"]?.intsValue ?? [0, 0, 0, 0]
            guard (node.attributes["group"]?.intValue ?? 1) == 1, (node.attributes["dilations"]?.intsValue ?? [1, 1]).allSatisfy({ $0 == 1 }),
                  Set(strides).count == 1, Set(pads).count <= 1, w.rank == 4, w.shape[2] == w.shape[3] else {
                throw StreamlineError(node.name, "only square, ungrouped, undilated convolutions with equal strides and pads are supported")
            }
            kind = .conv(stride: strides[0], padding: pads.first ?? 0)
            if (pads.first ?? 0) > 0 && input.zeroPoint != 0 {
                throw StreamlineError(node.name, "zero padding of inputs with zero point \(input.zeroPoint) is not supported; use a zero point of 0 before padded convolutions")
            }
            if (pads.first ?? 0) > 0 && input.bipolar {
                throw StreamlineError(node.name, "zero padding of bipolar (±scale) inputs is not supported: 0 is not a bipolar value; use pads 0 after a BipolarQuant, or a Quant activation before padded convolutions")
            }
        }
        let m = shape[0]
        var epilogue: [EpilogueOp] = [.scale((0..<m).map { input.scale * Double(wScale.scalars[wScale.count == 1 ? 0 : $0]) })]
        if node.inputs.count > 2 {
            epilogue.append(.bias(try biasValues(node.inputs[2], for: node)))
        }
        // Bipolar inputs b stand for 2b − 1: Σ w·(2b − 1) = Σ 2w·b − Σ w.
        var productBias: [Int64]? = nil
        if input.bipolar {
            let k = codes.count / Swift.max(m, 1)
            productBias = (0..<m).map { c in -codes[(c * k)..<((c + 1) * k)].reduce(Int64(0)) { $0 + Int64($1) } }
            codes = codes.map { 2 * $0 }
        }
        let weights = QTensor(shape: shape, values: codes)
        return IntegerLayer(name: node.name, codeOps: codeOps, product: IntegerProduct(kind: kind, weights: weights, bias: productBias),
                            accumulatorRange: [], accumulatorBits: 0, accumulatorCap: nil,
                            flipped: [Bool](repeating: false, count: m), roundedBias: nil, epilogue: epilogue, requantization: .output,
                            output: nil, input: input)
            .withRanges()
    }

    /// A layer's bias: a float initializer, or a Quant node on one (a quantized bias, up to 32
    /// bits): then its values q·s with q = clamp(round(b / s)) in Float32, as the fake-quantized
    /// model computes them.
    func biasValues(_ name: String, for node: Node) throws -> [Double] {
        guard let q = producer[name] else { return try tensor(name, for: node).scalars.map(Double.init) }
        guard q.op == .quant, q.inputs.count == 4 else { throw StreamlineError(q.name, "a bias must be an initializer or a Quant node on one") }
        let b = try tensor(q.inputs[0], for: q), scale = try tensor(q.inputs[1], for: q), bits = try tensor(q.inputs[3], for: q)
        let zero = try tensor(q.inputs[2], for: q)
        guard bits.count == 1, let width = Int(exactly: bits.item), (2...32).contains(width), zero.scalars.allSatisfy({ $0 == 0 }),
              scale.count == 1 || scale.count == b.count, scale.scalars.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw StreamlineError(q.name, "a bias quantizer needs a 2…32-bit width, zero point 0 and positive scales")
        }
        let grid = IntQuantGrid(bitWidth: width, signed: q.attributes["signed"]?.intValue != 0, narrow: q.attributes["narrow"]?.intValue == 1,
                                rounding: q.attributes["rounding_mode"]?.stringValue.flatMap(RoundingMode.init(qonnxName:)) ?? .round)
        let codes = b.quantizedIntegers(scale: scale, zeroPoint: Tensor(shape: [1], scalars: [0]), grid: grid)
        return codes.enumerated().map { i, c in Double(c) * Double(scale.scalars[scale.count == 1 ? 0 : i]) }
    }

    func epilogueOp(_ node: Node, channels: Int) throws -> EpilogueOp {
        switch node.op {
        case .relu: return .relu
        case .sigmoid: return .sigmoid
        case .tanh: return .tanh
        default:
            let gamma = try tensor(node.inputs[1], for: node).scalars, beta = try tensor(node.inputs[2], for: node).scalars
            let mean = try tensor(node.inputs[3], for: node).scalars, variance = try tensor(node.inputs[4], for: node).scalars
            guard [gamma, beta, mean, variance].allSatisfy({ $0.count == channels }) else {
                throw StreamlineError(node.name, "BatchNormalization has parameters for \(gamma.count) channels, the layer has \(channels)")
            }
            let eps = Double(node.attributes["epsilon"]?.floatValue ?? 1e-5)
            // As the float model computes it: factor = γ/√(σ² + ε) in Float32, then (x − μ)·factor + β.
            let factor = (0..<channels).map { Double(gamma[$0] / (variance[$0] + Float(eps)).squareRoot()) }
            return .batchNorm(mean: mean.map(Double.init), factor: factor, shift: beta.map(Double.init))
        }
    }

    /// Chooses the requantization of a layer with an output quantizer.
    func requantize(_ layer: inout IntegerLayer, form: RequantizationForm, options: StreamlineOptions) throws {
        // Negate the rows of channels whose epilogue decreases, so every channel increases.
        for c in layer.flipped.indices where !layer.epilogue.allSatisfy({ $0.increasing(c) }) { layer.flipped[c] = true }
        if layer.flipped.contains(true) {
            let m = layer.flipped.count, per = layer.product.weights.count / m
            var v = layer.product.weights.values
            for c in 0..<m where layer.flipped[c] { for j in 0..<per { v[c * per + j] = -v[c * per + j] } }
            layer.product.weights = QTensor(shape: layer.product.weights.shape, values: v)
            layer = layer.withRanges()
        }
        // 2^b − 1 thresholds per channel are a table too large beyond 16 bits (seed 000's
        // 32-bit activations): those layers take the shift, which is exact for power-of-two scales.
        var form = form, tooWide: String?
        if form == .thresholds, let out = layer.output, out.grid.maxInt - out.grid.minInt > MultiThreshold.maxLevels {
            form = .shift
            tooWide = "a \(out.grid.bitWidth)-bit output needs \(out.grid.maxInt - out.grid.minInt) thresholds per channel (at most \(MultiThreshold.maxLevels)), so it requantizes with a shift, but "
        }
        switch form {
        case .thresholds:
            layer.requantization = .thresholds(thresholds(for: layer))
        case .multiplier, .shift:
            let (slope, offset) = try affine(layer)
            let out = layer.output!
            var multipliers: [Int32] = [], shifts: [Int] = [], bias: [Int64] = []
            for c in slope.indices {
                let bucket = Double(Int64(1) << Int64(layer.droppedBits))  // a truncated accumulator counts 2^k
                let factor = slope[c] / out.scale * bucket
                bias.append(Int64((offset[c] / slope[c] / bucket).rounded()))
                if form == .shift {
                    let e = log2(factor)
                    guard e == e.rounded() else {
                        throw StreamlineError(layer.name, (tooWide ?? "") + "the scale chain \(factor) of channel \(c) is not a power of two; use \(tooWide == nil ? "thresholds or multiplier" : "the multiplier form"), or train with power-of-two scales")
                    }
                    multipliers.append(1)
                    shifts.append(-Int(e))
                } else {
                    let (mult, shift) = MultiplyShift.approximating(factor, bits: options.multiplierBits)
                    multipliers.append(mult)
                    shifts.append(shift)
                }
            }
            layer.roundedBias = bias
            layer = layer.withRanges()
            // A ReLU clamps at the code of 0, which an unsigned grid without zero point does already.
            let relu = layer.epilogue.contains(.relu)
            let lowest: Int64? = relu && out.zeroPoint > out.grid.minInt ? Int64(out.zeroPoint) : nil
            layer.requantization = .multiplyShift(MultiplyShift(multipliers: multipliers, shifts: shifts, offsets: [Int64(out.zeroPoint)],
                                                                grid: out.grid, lowest: lowest))
        }
    }

    /// y = slope·acc + offset per channel, for epilogues of scale, bias, BatchNorm and ReLU
    /// (after flipping, slope > 0 or = 0).
    func affine(_ layer: IntegerLayer) throws -> (slope: [Double], offset: [Double]) {
        let m = layer.flipped.count
        var slope = [Double](repeating: 1, count: m), offset = [Double](repeating: 0, count: m)
        for c in 0..<m where layer.flipped[c] { slope[c] = -1 }
        for op in layer.epilogue {
            for c in 0..<m {
                switch op {
                case .scale(let f): slope[c] *= f[f.count == 1 ? 0 : c]; offset[c] *= f[f.count == 1 ? 0 : c]
                case .bias(let b): offset[c] += b[b.count == 1 ? 0 : c]
                case let .batchNorm(mean, factor, shift): slope[c] *= factor[c]; offset[c] = (offset[c] - mean[c]) * factor[c] + shift[c]
                case .relu: break  // the clamp at the code of 0 (the grid's lowest, or MultiplyShift.lowest)
                case .sigmoid, .tanh:
                    throw StreamlineError(layer.name, "a sigmoid or tanh cannot become a multiplier and shift; use thresholds")
                }
            }
        }
        for c in 0..<m where slope[c] <= 0 {
            throw StreamlineError(layer.name, "channel \(c) has a zero scale chain (BatchNorm γ = 0); use thresholds")
        }
        return (slope, offset)
    }

    /// For every channel and code level, the smallest accumulator (within the channel's range)
    /// whose reference code reaches the level: binary search on the monotone Double epilogue.
    func thresholds(for layer: IntegerLayer) -> MultiThreshold {
        let grid = layer.requantizedGrid!.grid
        let levels = grid.maxInt - grid.minInt
        let k = Int64(layer.droppedBits)
        // With MSB truncation the thresholds apply to acc >>> k: each truncated value t stands
        // for the accumulators t·2^k … t·2^k + 2^k − 1 and is judged by the first of them.
        let code = { (t: Int64, c: Int) in layer.requantizedCode(t << k, channel: c) }
        let lists: [[Int64]] = layer.accumulatorRange.map { ($0.lowerBound >> k)...($0.upperBound >> k) }.enumerated().map { c, range in
            (1...Swift.max(levels, 1)).prefix(levels).map { step -> Int64 in
                let level = Int32(grid.minInt + step)
                if code(range.upperBound, c) < level { return range.upperBound &+ 1 }
                var lo = range.lowerBound, hi = range.upperBound  // code(hi) ≥ level
                if code(lo, c) >= level { return lo }
                while hi - lo > 1 {  // code(lo) < level ≤ code(hi)
                    let mid = lo + (hi - lo) / 2
                    if code(mid, c) >= level { hi = mid } else { lo = mid }
                }
                return hi
            }
        }
        return MultiThreshold(thresholds: lists, outBias: Int64(grid.minInt), grid: grid)
    }
}

extension IntQuantGrid {
    /// The narrowest grid (unsigned when `codes` has no negative code, else signed; not narrow)
    /// that holds every code of `codes`, at most 32 bits.
    static func smallest(holding codes: ClosedRange<Int>) -> IntQuantGrid {
        let signed = codes.lowerBound < 0
        var bits = 1
        while bits < 32 {
            let g = IntQuantGrid(bitWidth: bits, signed: signed)
            if g.minInt <= codes.lowerBound && codes.upperBound <= g.maxInt { break }
            bits += 1
        }
        return IntQuantGrid(bitWidth: bits, signed: signed)
    }
}

extension IntegerLayer {
    /// The layer with its zero-point bias, accumulator ranges and width recomputed from its
    /// weights, input grid and rounded bias.
    func withRanges() -> IntegerLayer {
        var l = self
        let m = product.weights.shape[0], per = product.weights.count / Swift.max(m, 1)
        if input.zeroPoint != 0 {  // Σ w·(q − z) = Σ w·q − z·Σ w
            l.product.bias = (0..<m).map { c in -Int64(input.zeroPoint) * product.weights.values[(c * per)..<((c + 1) * per)].reduce(0) { $0 + Int64($1) } }
        }
        let padded: Bool
        if case let .conv(_, p) = product.kind { padded = p > 0 } else { padded = false }
        let biases = (0..<m).map { (l.product.bias?[$0] ?? 0) + (roundedBias?[$0] ?? 0) }
        l.accumulatorRange = IntegerOps.accumulatorRanges(weight: product.weights,
                                                          inputs: Int32(input.grid.minInt)...Int32(input.grid.maxInt),
                                                          bias: biases, zeroPadded: padded)
        l.accumulatorBits = l.accumulatorRange.map { IntegerOps.signedBitsNeeded(min: $0.lowerBound, max: $0.upperBound) }.max() ?? 1
        return l
    }
}
