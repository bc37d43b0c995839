import Foundation
import QForgeTensor

/// ONNX export of a QForge graph, in one of two forms:
///
/// - `.qonnx`: the graph as it is, its quantizers as QONNX `Quant` / `BipolarQuant` nodes
///   (domain `qonnx.custom_op.general`), which the `qonnx` Python package executes and FINN
///   compiles. Float weights stay float initializers with their Quant node; every
///   intermediate value's shape is written (`value_info`), as in a cleaned Brevitas export.
/// - `.qdq`: standard ONNX only, for any ONNX runtime: a quantized activation becomes
///   QuantizeLinear → [Clip to the grid] → DequantizeLinear (8 bits or fewer, rounding
///   ROUND, which is QuantizeLinear's half-to-even); a quantized weight or bias becomes its
///   integer codes (INT8 / UINT8, INT32 above 8 bits) and a DequantizeLinear.
///
/// The batch dimension is `batch`, or symbolic (`N`) when nil: QONNX tools (qonnx's
/// executor, FINN) expect a fixed batch, as Brevitas exports 1. Opset 13 (per-axis
/// Quantize/DequantizeLinear).
public enum ONNXExport {
    public enum Format: String, CaseIterable, Sendable {
        case qonnx, qdq
    }

    static let qonnxDomain = "qonnx.custom_op.general"
    static let opset: Int64 = 13

    /// The ONNX bytes of `graph` with its weights `tensors`.
    public static func encode(graph: Graph, tensors: [String: Tensor], format: Format, batch: Int? = nil,
                              producerVersion: String = ModelFile.version) throws -> [UInt8] {
        try graph.validate(initializerShapes: tensors.mapValues(\.shape))
        if let batch, batch < 1 { throw GraphError(.onnx(problem: "batch size \(batch) must be at least 1")) }
        var w = Writer(graph: graph, tensors: tensors, format: format, batch: batch)
        try w.run()
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.producerName = "qforge"
        m.producerVersion = producerVersion
        var standard = Onnx_OperatorSetIdProto()
        standard.version = opset
        m.opsetImport = [standard]
        if w.usesQONNX {
            var q = Onnx_OperatorSetIdProto()
            q.domain = qonnxDomain
            q.version = 1
            m.opsetImport.append(q)
        }
        m.graph = w.out
        return try ONNXFile.encode(m)
    }

    /// Writes the ONNX file atomically: on any error nothing at `path` changes.
    public static func write(graph: Graph, tensors: [String: Tensor], format: Format, batch: Int? = nil, to path: String) throws {
        do {
            let bytes = try encode(graph: graph, tensors: tensors, format: format, batch: batch)
            try FileIO.replaceAtomically(path) { sink in try bytes.withUnsafeBytes { try sink($0) } }
        } catch let e as GraphError {
            throw e.inFile(path)
        }
    }
}

private struct Writer {
    let graph: Graph
    let tensors: [String: Tensor]
    let format: ONNXExport.Format
    let batch: Int?
    var out = Onnx_GraphProto()
    var usesQONNX = false
    var written: Set<String> = []

    init(graph: Graph, tensors: [String: Tensor], format: ONNXExport.Format, batch: Int?) {
        self.graph = graph
        self.tensors = tensors
        self.format = format
        self.batch = batch
    }

    func unsupported(_ n: Node, _ need: String) -> GraphError {
        GraphError(.unsupportedNode(node: n.name, op: n.op.rawValue, need: need))
    }

    static func valueInfo(_ v: ValueInfo, batch: Int?) -> Onnx_ValueInfoProto {
        var p = Onnx_ValueInfoProto()
        p.name = v.name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = ONNXFile.ElementType.float.rawValue
        t.shape.dim = v.shape.map { d in
            var x = Onnx_TensorShapeProto.Dimension()
            if let d = d ?? batch { x.dimValue = Int64(d) } else { x.dimParam = "N" }
            return x
        }
        p.type.tensorType = t
        return p
    }

    static func attribute(_ name: String, _ v: AttributeValue) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        switch v {
        case .int(let i): a.type = .int; a.i = Int64(i)
        case .float(let f): a.type = .float; a.f = f
        case .string(let s): a.type = .string; a.s = Data(s.utf8)
        case .ints(let v): a.type = .ints; a.ints = v.map(Int64.init)
        case .floats(let v): a.type = .floats; a.floats = v
        }
        return a
    }

    static func node(_ name: String, _ op: String, _ inputs: [String], _ outputs: [String], domain: String = "",
                     attributes: [String: AttributeValue] = [:]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.name = name
        n.opType = op
        n.domain = domain
        n.input = inputs
        n.output = outputs
        n.attribute = attributes.keys.sorted().map { attribute($0, attributes[$0]!) }
        return n
    }

    /// A graph initializer as a float tensor; per-tensor quantizer parameters (one value,
    /// read by a Quant node) as scalars, as Brevitas writes them.
    mutating func initializer(_ name: String, scalar: Bool = false) {
        guard !written.contains(name), let t = tensors[name] else { return }
        written.insert(name)
        out.initializer.append(ONNXFile.tensorProto(name, t, shape: scalar && t.count == 1 ? [] : t.shape))
    }

    func tensor(_ name: String, _ n: Node) throws -> Tensor {
        guard let t = tensors[name] else { throw unsupported(n, "input '\(name)' is not a constant the file holds") }
        return t
    }

    var initializerNames: Set<String> { Set(graph.initializers) }

    mutating func run() throws {
        out.name = graph.name
        out.input = graph.inputs.map { Writer.valueInfo($0, batch: batch) }
        out.output = graph.outputs.map { Writer.valueInfo($0, batch: batch) }
        let constants = initializerNames
        for n in graph.nodes {
            let isQuantizer = [.quant, .bipolarQuant, .trunc, .multiThreshold].contains(n.op)
            if isQuantizer && format == .qdq {
                try qdq(n)
                continue
            }
            if format == .qdq, [.gemm, .conv].contains(n.op), n.inputs.count > 2, constants.contains(n.inputs[2]) {
                try separateBias(n)
                continue
            }
            for (i, input) in n.inputs.enumerated() where constants.contains(input) {
                initializer(input, scalar: isQuantizer && i > 0)
            }
            var attributes = n.attributes
            var op = n.op.rawValue, inputs = n.inputs
            switch n.op {
            case .dropout:
                op = "Identity"
                inputs = [n.inputs[0]]
                attributes = [:]
            case .batchNormalization:
                // QForge stores PyTorch's momentum (weight of the new batch); ONNX the old mean's.
                if let m = attributes["momentum"]?.floatValue { attributes["momentum"] = .float(1 - m) }
            case .reshape where n.inputs.count == 1:
                let shape = attributes.removeValue(forKey: "shape")?.intsValue ?? []
                out.initializer.append(ONNXFile.intTensorProto("\(n.name).shape", shape, shape: [shape.count], type: .int64))
                inputs.append("\(n.name).shape")
            default: break
            }
            let domain = isQuantizer ? ONNXExport.qonnxDomain : ""
            if isQuantizer { usesQONNX = true }
            out.node.append(Writer.node(n.name, op, inputs, n.outputs, domain: domain, attributes: attributes))
        }
        if format == .qonnx { addValueInfo() }
    }

    /// Shapes of the intermediate values (`value_info`), as a cleaned Brevitas export has
    /// them: qonnx's executor needs them. Values whose shape cannot be told are left out.
    mutating func addValueInfo() {
        var shapes: [String: [Int?]] = [:]
        for v in graph.inputs { shapes[v.name] = [batch] + v.shape.dropFirst() }
        for (name, t) in tensors { shapes[name] = t.shape }
        let outputs = Set(graph.outputs.map(\.name))
        for n in graph.nodes {
            guard let x = n.inputs.first.flatMap({ shapes[$0] }) else { continue }
            let a = n.attributes
            var y: [Int?]?
            func window(_ kernel: [Int], _ extra: Int?) -> [Int?]? {
                guard x.count == kernel.count + 2 else { return nil }
                let strides = a["strides"]?.intsValue ?? [Int](repeating: 1, count: kernel.count)
                let pads = a["pads"]?.intsValue ?? [Int](repeating: 0, count: 2 * kernel.count)
                let dilations = a["dilations"]?.intsValue ?? [Int](repeating: 1, count: kernel.count)
                guard strides.count == kernel.count, pads.count == 2 * kernel.count, dilations.count == kernel.count else { return nil }
                let spatial = kernel.indices.map { i -> Int? in
                    x[i + 2].map { ($0 + pads[i] + pads[i + kernel.count] - dilations[i] * (kernel[i] - 1) - 1) / strides[i] + 1 }
                }
                return [x[0], extra ?? x[1]] + spatial
            }
            switch n.op {
            case .gemm:
                if let w = n.inputs.dropFirst().first.flatMap({ shapes[$0] }), w.count == 2 {
                    y = [x[0], a["transB"]?.intValue == 1 ? w[0] : w[1]]
                }
            case .matMul:
                if let w = n.inputs.dropFirst().first.flatMap({ shapes[$0] }), let last = w.last { y = x.dropLast() + [last] }
            case .conv:
                if let w = n.inputs.dropFirst().first.flatMap({ shapes[$0] }), w.count >= 3, let out = w[0] {
                    y = window((a["kernel_shape"]?.intsValue ?? w.dropFirst(2).compactMap { $0 }), out)
                }
            case .maxPool:
                if let k = a["kernel_shape"]?.intsValue { y = window(k, nil) }
            case .flatten:
                let axis = a["axis"]?.intValue ?? 1
                if (1..<x.count).contains(axis) || axis == x.count {
                    let lead = x[..<axis], rest = x[axis...]
                    func prod(_ s: ArraySlice<Int?>) -> Int? { s.allSatisfy { $0 != nil } ? s.reduce(1) { $0 * $1! } : nil }
                    y = [prod(lead), prod(rest)]
                }
            case .reshape:
                if let target = a["shape"]?.intsValue ?? n.inputs.dropFirst().first.flatMap({ tensors[$0]?.scalars.compactMap { Int(exactly: $0) } }),
                   target.allSatisfy({ abs($0) < (1 << 31) }),
                   x.allSatisfy({ $0 != nil }) {
                    let count = x.reduce(1) { $0 * $1! }
                    var dims = target.enumerated().map { i, d in d == 0 && i < x.count ? x[i]! : d }
                    let known = dims.filter { $0 != -1 }.reduce(1, *)
                    if let i = dims.firstIndex(of: -1), known > 0 { dims[i] = count / known }
                    y = dims.map { $0 }
                }
            case .transpose:
                let perm = a["perm"]?.intsValue ?? Array((0..<x.count).reversed())
                if perm.sorted() == Array(0..<x.count) { y = perm.map { x[$0] } }
            default:  // elementwise, normalisation, activations, quantizers: the input's shape
                y = x
            }
            guard let y, let o = n.outputs.first else { continue }
            shapes[o] = y
            if !outputs.contains(o) {
                out.valueInfo.append(Writer.valueInfo(ValueInfo(name: o, shape: y), batch: batch))
            }
        }
    }

    /// A Gemm or Conv with a float bias, in QDQ form: the product without its bias, then an Add
    /// of the bias. As the product's third input, onnxruntime's WeightBiasQuantization (on from
    /// ORT_ENABLE_BASIC, the default level) would replace the bias by round(b / (s_in·s_w))
    /// INT32 codes, changing the model: the Fashion-MNIST mlp w8a8 then moves 1,865 of 10,000
    /// samples' logits (up to half a hidden code) and one class. An Add keeps the float bias.
    mutating func separateBias(_ n: Node) throws {
        let bias = try tensor(n.inputs[2], n)
        let y = n.outputs[0], product = "\(y).nobias", name = "\(n.name).bias_add"
        for input in n.inputs.prefix(2) where initializerNames.contains(input) { initializer(input) }
        out.node.append(Writer.node(n.name, n.op.rawValue, Array(n.inputs.prefix(2)), [product], attributes: n.attributes))
        // [M] broadcasts over a Gemm's [N, M]; a Conv's [N, C, H, W] needs [C, 1, 1].
        out.initializer.append(ONNXFile.tensorProto(name, bias, shape: n.op == .conv ? [bias.count, 1, 1] : [bias.count]))
        out.node.append(Writer.node("\(n.name)/bias", "Add", [product, name], [y]))
    }

    /// A quantizer as standard ONNX (QDQ form).
    mutating func qdq(_ n: Node) throws {
        guard n.op == .quant || n.op == .bipolarQuant else {
            throw unsupported(n, "\(n.op.rawValue) has no QuantizeLinear/DequantizeLinear form; export with --format qonnx")
        }
        let x = n.inputs[0], y = n.outputs[0]
        let scale = try tensor(n.inputs[1], n)
        let perChannel = scale.count > 1
        let scaleName = "\(n.name).qdq_scale", zeroName = "\(n.name).qdq_zero_point"
        // Per tensor: scalar scale and zero point; per channel: 1-D along axis 0.
        out.initializer.append(ONNXFile.tensorProto(scaleName, scale, shape: perChannel ? [scale.count] : []))
        let attributes: [String: AttributeValue] = perChannel ? ["axis": .int(0)] : [:]
        let constant = initializerNames.contains(x)
        if n.op == .bipolarQuant {
            guard constant else { throw unsupported(n, "bipolar activations have no QDQ form; export with --format qonnx") }
            let codes = try tensor(x, n).scalars.map { $0 >= 0 ? 1 : -1 }
            try dequantize(n, codes: codes, shape: try tensor(x, n).shape, type: .int8, zero: 0, channels: perChannel ? scale.count : nil,
                           scaleName: scaleName, zeroName: zeroName, attributes: attributes)
            return
        }
        let zero = try tensor(n.inputs[2], n), bits = try tensor(n.inputs[3], n)
        guard zero.count == 1, let z = Int(exactly: zero.scalars[0]), bits.count == 1, let b = Int(exactly: bits.scalars[0]), (1...32).contains(b) else {
            throw unsupported(n, "needs one integer zero point and one bit width in 1…32")
        }
        let rounding = n.attributes["rounding_mode"]?.stringValue.flatMap(RoundingMode.init(qonnxName:)) ?? .round
        let grid = IntQuantGrid(bitWidth: b, signed: n.attributes["signed"]?.intValue == 1, narrow: n.attributes["narrow"]?.intValue == 1, rounding: rounding)
        guard (grid.minInt...grid.maxInt).contains(z) else { throw unsupported(n, "zero point \(z) lies outside the \(b)-bit grid") }
        let type: ONNXFile.ElementType = b <= 8 ? (grid.signed ? .int8 : .uint8) : .int32
        if constant {
            let w = try tensor(x, n)
            guard b <= 31 || grid.signed else { throw unsupported(n, "an unsigned 32-bit grid does not fit INT32 codes") }
            let codes = w.quantizedIntegers(scale: scale, zeroPoint: Tensor(shape: [1], scalars: [Float(z)]), grid: grid)
            try dequantize(n, codes: codes, shape: w.shape, type: type, zero: z, channels: perChannel ? scale.count : nil,
                           scaleName: scaleName, zeroName: zeroName, attributes: attributes)
            return
        }
        guard b <= 8 else {
            throw unsupported(n, "a \(b)-bit activation does not fit QuantizeLinear's 8-bit codes; export with --format qonnx, or quantize activations to 8 bits or fewer")
        }
        guard rounding == .round else {
            throw unsupported(n, "rounding mode \(rounding.rawValue) has no QuantizeLinear form (it rounds half to even, ROUND); export with --format qonnx")
        }
        guard !perChannel else { throw unsupported(n, "per-channel activation scales are not exported") }
        out.initializer.append(ONNXFile.intTensorProto(zeroName, [z], shape: [], type: type))
        out.node.append(Writer.node("\(n.name)/quantize", "QuantizeLinear", [x, scaleName, zeroName], ["\(y).codes"], attributes: attributes))
        var codes = "\(y).codes"
        let full = type == .int8 ? (-128...127) : (0...255)
        if grid.minInt != full.lowerBound || grid.maxInt != full.upperBound {
            out.initializer.append(ONNXFile.intTensorProto("\(n.name).qdq_min", [grid.minInt], shape: [], type: type))
            out.initializer.append(ONNXFile.intTensorProto("\(n.name).qdq_max", [grid.maxInt], shape: [], type: type))
            out.node.append(Writer.node("\(n.name)/clip", "Clip", [codes, "\(n.name).qdq_min", "\(n.name).qdq_max"], ["\(y).clipped"]))
            codes = "\(y).clipped"
        }
        out.node.append(Writer.node("\(n.name)/dequantize", "DequantizeLinear", [codes, scaleName, zeroName], [y], attributes: attributes))
    }

    /// Integer codes as an initializer and the DequantizeLinear that reads them.
    mutating func dequantize(_ n: Node, codes: [Int], shape: [Int], type: ONNXFile.ElementType, zero: Int, channels: Int?,
                             scaleName: String, zeroName: String, attributes: [String: AttributeValue]) throws {
        let codesName = "\(n.name).qdq_codes"
        out.initializer.append(ONNXFile.intTensorProto(codesName, codes, shape: shape, type: type))
        let zeros = [Int](repeating: zero, count: channels ?? 1)
        out.initializer.append(ONNXFile.intTensorProto(zeroName, zeros, shape: channels.map { [$0] } ?? [], type: type))
        out.node.append(Writer.node("\(n.name)/dequantize", "DequantizeLinear", [codesName, scaleName, zeroName], [n.outputs[0]], attributes: attributes))
    }
}
