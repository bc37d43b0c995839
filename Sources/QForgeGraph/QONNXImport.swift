import Foundation
import QForgeTensor

/// QONNX (and plain ONNX) import: a model as Brevitas exports it becomes a QForge graph of the
/// form QForge's own model files hold, so the layer reader, the evaluator and the
/// streamliner take it as they take a trained model.
///
/// The ONNX graph must be a chain: one input, one output, each computing node reading the
/// previous one's output (plus constants). Nodes map to QForge layers `layers.0`, `layers.1`, …:
///
/// | ONNX | QForge layer (node names) |
/// |------|---------------------------|
/// | Quant on the chain | QuantIdentity (`layers.N`), or with the Relu before it QuantReLU (`layers.N`, `layers.N/act_quant`) |
/// | BipolarQuant on the chain (one scale) | QuantIdentity with a bipolar (±scale) quantizer |
/// | Gemm / MatMul [+ Add bias] with a Quant or BipolarQuant weight | QuantDense (`layers.N/weight_quant`, [`layers.N/bias_quant`], `layers.N`) |
/// | Conv with a Quant or BipolarQuant weight | QuantConv2d |
/// | Gemm / MatMul / Conv with a float weight | Dense / Conv2d |
/// | BatchNormalization; Mul or Add by a per-channel constant | BatchNorm (an affine one for Mul / Add) |
/// | Relu, Sigmoid, Tanh, MaxPool, Flatten | the float layer |
/// | Reshape or Transpose that flattens or keeps the layout | Flatten, or nothing |
/// | Identity, Dropout | nothing |
/// | MultiThreshold (FINN) on the chain | ThresholdActivation (`layers.N`, thresholds from the file) |
/// | Trunc (QONNX, version 1 or 2) on the chain | TruncActivation (`layers.N`) |
///
/// Constant subgraphs fold: initializers and `Constant` nodes, Identity / Reshape / Transpose /
/// Cast / (Un)Squeeze / Gather / Concat of them, and `Shape` of the chain (the batch as 1, so
/// that a flatten computed from the input's shape folds); a Quant or BipolarQuant on a
/// constant is a weight quantizer, and the
/// Transpose or Identity between it and its MatMul folds into the weight. Quantizer
/// parameters (scale, zero point, bit width) must be constants. Anything else is a
/// `GraphError` naming the node, its op type and what would be needed.
///
/// Quant nodes keep what the file says (bit width, signed, narrow, rounding mode, scale);
/// they carry no QForge training settings, so the layer reader rebuilds them with the file's
/// scales fixed (`QuantizerSettings.ScaleSource.fixed`).
public enum ONNXImport {
    /// Metadata keys the import writes.
    public static let metaSource = "qforge.import.source", metaProducer = "qforge.import.producer"

    /// Reads the ONNX file at `path` (external data beside it) as a QForge graph and its tensors.
    public static func load(_ path: String) throws -> (graph: Graph, tensors: [String: Tensor]) {
        do {
            var file = try ONNXFile(path: path)
            let name = URL(fileURLWithPath: path).deletingPathExtension().deletingPathExtension().lastPathComponent
            var importer = Importer(file: file, name: name)
            return try importer.run(&file)
        } catch let e as GraphError {
            throw e.inFile(path)
        }
    }

    /// Reads ONNX bytes; external data is looked up in `directory`.
    public static func read(bytes: [UInt8], name: String = "model", fileName: String = "<memory>",
                            directory: String = ".") throws -> (graph: Graph, tensors: [String: Tensor]) {
        do {
            var file = try ONNXFile(bytes: bytes, fileName: fileName, directory: directory)
            var importer = Importer(file: file, name: name)
            return try importer.run(&file)
        } catch let e as GraphError {
            throw e.inFile(fileName)
        }
    }
}

/// A Quant or BipolarQuant on a constant: a weight (or bias) quantizer, with the weight as
/// transformed by the folded Transposes after it.
private struct QuantizedConstant {
    var node: Onnx_NodeProto
    var weight: Tensor
    var scale: Tensor
    var zeroPoint: Tensor?
    var bitWidth: Tensor?
}

private struct Importer {
    let name: String
    let onnx: Onnx_GraphProto
    let producer: String

    /// Float constants by ONNX value name.
    var constants: [String: Tensor] = [:]
    var quantized: [String: QuantizedConstant] = [:]

    // The QForge graph being built.
    var nodes: [Node] = []
    var tensors: [String: Tensor] = [:]
    var quantizers: [String: QuantizerSpec] = [:]
    var layerCount = 0

    /// The chain's head: the ONNX names that stand for it, its QForge name and per-sample shape.
    var headNames: Set<String> = []
    var head = "input"
    var shape: [Int] = []
    /// The last layer's group of nodes (indices into `nodes`), its op, and whether a bias
    /// may still fold into it (MatMul / bias-free Gemm or Conv followed by Add).
    var lastGroup: [Int] = []

    init(file: ONNXFile, name: String) {
        self.name = name
        onnx = file.model.graph
        producer = [file.model.producerName, file.model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ")
    }

    static let standardDomains: Set<String> = ["", "ai.onnx"]
    static let qonnxDomains: Set<String> = ["qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas"]
    static let qonnxOps: Set<String> = ["Quant", "BipolarQuant", "Trunc", "MultiThreshold"]

    // MARK: Errors

    func unsupported(_ n: Onnx_NodeProto, _ need: String) -> GraphError {
        GraphError(.unsupportedNode(node: n.name.isEmpty ? (n.output.first ?? "?") : n.name, op: n.opType, need: need))
    }

    func problem(_ s: String) -> GraphError { GraphError(.onnx(problem: s)) }

    // MARK: Attributes

    func attribute(_ n: Onnx_NodeProto, _ key: String) -> Onnx_AttributeProto? { n.attribute.first { $0.name == key } }

    func int(_ n: Onnx_NodeProto, _ key: String, _ fallback: Int) throws -> Int {
        guard let a = attribute(n, key) else { return fallback }
        guard a.type == .int || (a.type == .undefined && a.hasI) else { throw unsupported(n, "attribute '\(key)' must be an integer") }
        guard let v = Int(exactly: a.i) else { throw unsupported(n, "attribute '\(key)' is out of range") }
        return v
    }

    func ints(_ n: Onnx_NodeProto, _ key: String) throws -> [Int]? {
        guard let a = attribute(n, key) else { return nil }
        guard a.type == .ints || (a.type == .undefined && !a.ints.isEmpty) else { throw unsupported(n, "attribute '\(key)' must be a list of integers") }
        return try a.ints.map { v in
            guard let i = Int(exactly: v), abs(i) < (1 << 31) else { throw unsupported(n, "attribute '\(key)' holds \(v), out of range") }
            return i
        }
    }

    func float(_ n: Onnx_NodeProto, _ key: String, _ fallback: Float) throws -> Float {
        guard let a = attribute(n, key) else { return fallback }
        guard a.type == .float || (a.type == .undefined && a.hasF) else { throw unsupported(n, "attribute '\(key)' must be a float") }
        return a.f
    }

    func string(_ n: Onnx_NodeProto, _ key: String, _ fallback: String) throws -> String {
        guard let a = attribute(n, key) else { return fallback }
        guard a.type == .string || (a.type == .undefined && a.hasS) else { throw unsupported(n, "attribute '\(key)' must be a string") }
        return String(decoding: a.s, as: UTF8.self)
    }

    // MARK: Run

    mutating func run(_ file: inout ONNXFile) throws -> (graph: Graph, tensors: [String: Tensor]) {
        for t in onnx.initializer {
            guard !t.name.isEmpty else { throw problem("an initializer has no name") }
            constants[t.name] = try file.tensor(t)
        }
        if !onnx.sparseInitializer.isEmpty {
            throw problem("sparse initializers ('\(onnx.sparseInitializer[0].values.name)') are not supported; store them dense")
        }
        let inputs = onnx.input.filter { constants[$0.name] == nil }
        guard !inputs.isEmpty else { throw problem("the graph has no input (every input is an initializer)") }
        guard onnx.output.count == 1 else {
            throw problem("the graph has \(onnx.output.count) outputs; QForge imports models with one output")
        }
        let input = inputs[0]
        shape = try inputShape(input)
        headNames = [input.name]

        for n in onnx.node {
            try visit(n, &file)
        }
        if inputs.count > 1 {  // after the nodes, so that a node reading another input is named first
            throw problem("the graph has \(inputs.count) inputs (\(inputs.map { GraphError.quote($0.name) }.joined(separator: ", "))); QForge imports models with one input")
        }
        guard headNames.contains(onnx.output[0].name) else {
            throw problem("the graph output \(GraphError.quote(onnx.output[0].name)) is not the end of the chain of layers from the input (\(GraphError.quote(headNames.sorted().first ?? ""))); QForge imports chains of layers")
        }
        guard layerCount > 0 else { throw problem("the graph computes nothing QForge can hold as a layer") }
        let inputShape = shape0
        var metadata = ["qforge.task": "classification", "qforge.input_shape": inputShape.map(String.init).joined(separator: ","),
                        ONNXImport.metaSource: "onnx"]
        if !producer.isEmpty { metadata[ONNXImport.metaProducer] = producer }
        if nodes.contains(where: { [.quant, .bipolarQuant, .trunc, .multiThreshold].contains($0.op) }) { metadata[ONNXImport.metaSource] = "qonnx" }
        let graph = Graph(name: onnx.name.isEmpty || onnx.name == "main_graph" || onnx.name == "torch_jit" ? name : onnx.name,
                          inputs: [ValueInfo(name: "input", shape: [nil] + inputShape.map { Optional($0) })],
                          outputs: [ValueInfo(name: head, shape: [nil] + shape.map { Optional($0) })],
                          nodes: nodes, initializers: tensors.keys.sorted(), quantizers: quantizers, metadata: metadata)
        try graph.validate(initializerShapes: tensors.mapValues(\.shape))
        return (graph, tensors)
    }

    /// The input's per-sample shape (the first dimension is the batch).
    var shape0: [Int] = []

    mutating func inputShape(_ v: Onnx_ValueInfoProto) throws -> [Int] {
        guard case .tensorType(let t)? = v.type.value else {
            throw problem("input \(GraphError.quote(v.name)) is not a tensor")
        }
        guard t.elemType == 1 else {
            throw problem("input \(GraphError.quote(v.name)) has element type \(t.elemType); QForge models take float32 (type 1) inputs")
        }
        guard t.hasShape, t.shape.dim.count >= 2 else {
            throw problem("input \(GraphError.quote(v.name)) needs a shape [batch, …] with at least 2 dimensions; run shape inference (qonnx.util.cleanup) before importing")
        }
        let dims = try t.shape.dim.dropFirst().enumerated().map { i, d -> Int in
            guard case .dimValue(let n)? = d.value, n > 0, n < (1 << 24) else {
                throw problem("input \(GraphError.quote(v.name)) dimension \(i + 1) is not a fixed positive size; QForge needs fixed sample shapes")
            }
            return Int(n)
        }
        var total = 1
        for d in dims { total = total.multipliedReportingOverflow(by: d).overflow ? Int.max : Swift.min(total * d, Int.max / (1 << 24)) }
        guard total <= (1 << 28) else {
            throw problem("input \(GraphError.quote(v.name)) shape \(dims) is too large for one sample")
        }
        shape0 = dims
        return dims
    }

    // MARK: Nodes

    mutating func newLayer() -> String {
        defer { layerCount += 1 }
        return "layers.\(layerCount)"
    }

    mutating func add(_ node: Node, newGroup: Bool) {
        if newGroup { lastGroup = [] }
        lastGroup.append(nodes.count)
        nodes.append(node)
    }

    /// The chain value `n` computes from, after checking that every other input is constant.
    func chainInput(_ n: Onnx_NodeProto, constantInputs: Int = 0) throws {
        let inputs = n.input.filter { !$0.isEmpty }
        let dynamic = inputs.filter { constants[$0] == nil && quantized[$0] == nil }
        guard dynamic.count == 1 else {
            throw unsupported(n, dynamic.isEmpty ? "all its inputs are constants but QForge cannot fold this op; precompute it (qonnx.util.cleanup)"
                                                 : "it reads \(dynamic.count) computed values (\(dynamic.map { GraphError.quote($0) }.joined(separator: ", "))); QForge imports chains of layers, each reading the previous one and constants")
        }
        guard headNames.contains(dynamic[0]), n.input.first == dynamic[0] else {
            throw unsupported(n, "it reads \(GraphError.quote(dynamic[0])), not the previous layer's output as its first input; QForge imports chains of layers (no branches or skip connections)")
        }
    }

    mutating func advance(_ n: Onnx_NodeProto, to value: String, shape newShape: [Int]? = nil) throws {
        guard n.output.filter({ !$0.isEmpty }).count == 1 else {
            throw unsupported(n, "it has \(n.output.count) outputs; QForge imports nodes with one output (for BatchNormalization and Dropout: the inference form)")
        }
        headNames = [n.output[0]]
        head = value
        if let newShape { shape = newShape }
    }

    /// A constant input holding integers (shapes, axes, indices), each within ±2^31.
    func integers(_ n: Onnx_NodeProto, _ i: Int, _ what: String) throws -> [Int] {
        try constantInput(n, i, what).scalars.map { v in
            guard v.isFinite, v == v.rounded(), abs(v) < 2_147_483_648 else { throw unsupported(n, "its \(what) holds \(v), not an integer in range") }
            return Int(v)
        }
    }

    /// The product of sizes, or an error when it exceeds 2^40 elements.
    func product(_ dims: [Int], _ n: Onnx_NodeProto) throws -> Int {
        try dims.reduce(1) { p, d in
            let (m, overflow) = p.multipliedReportingOverflow(by: d)
            guard !overflow, abs(m) < (1 << 40) else { throw unsupported(n, "shape \(dims) is too large") }
            return m
        }
    }

    func constantInput(_ n: Onnx_NodeProto, _ i: Int, _ what: String) throws -> Tensor {
        guard i < n.input.count, !n.input[i].isEmpty else { throw unsupported(n, "it has no \(what) input") }
        guard let t = constants[n.input[i]] else {
            throw unsupported(n, "its \(what) input \(GraphError.quote(n.input[i])) is computed, not a constant; QForge needs a constant \(what) (fold it first, e.g. with qonnx.util.cleanup)")
        }
        return t
    }

    mutating func visit(_ n: Onnx_NodeProto, _ file: inout ONNXFile) throws {
        let op = n.opType
        let isQONNX = Importer.qonnxDomains.contains(n.domain) || (n.domain.isEmpty && Importer.qonnxOps.contains(op))
        guard Importer.standardDomains.contains(n.domain) || isQONNX else {
            throw unsupported(n, "operator domain \(GraphError.quote(n.domain)) is not ONNX's or QONNX's (qonnx.custom_op.general)")
        }
        let inputs = n.input.filter { !$0.isEmpty }
        let allConstant = inputs.allSatisfy { constants[$0] != nil }
        // Constant folding.
        if op == "Constant" {
            guard let a = n.attribute.first, n.attribute.count == 1, n.output.count == 1 else {
                throw unsupported(n, "a Constant needs exactly one value attribute")
            }
            switch a.name {
            case "value": constants[n.output[0]] = try file.tensor(a.t)
            case "value_float": constants[n.output[0]] = Tensor(shape: [], scalars: [a.f])
            case "value_floats": constants[n.output[0]] = Tensor(shape: [a.floats.count], scalars: a.floats)
            case "value_int": constants[n.output[0]] = Tensor(shape: [], scalars: [Float(a.i)])
            case "value_ints": constants[n.output[0]] = Tensor(shape: [a.ints.count], scalars: a.ints.map { Float($0) })
            default: throw unsupported(n, "a Constant with attribute '\(a.name)' is not supported (value, value_float(s), value_int(s) are)")
            }
            return
        }
        // The shape of the chain value (exporters compute flattening shapes from it): a
        // constant, with the batch as 1.
        if op == "Shape" && !isQONNX, n.input.count == 1, headNames.contains(n.input[0]), n.output.count == 1 {
            let full = [1] + shape
            let start = try int(n, "start", 0), end = try int(n, "end", full.count)
            let lo = Swift.min(Swift.max(start < 0 ? start + full.count : start, 0), full.count)
            let hi = Swift.min(Swift.max(end < 0 ? end + full.count : end, lo), full.count)
            constants[n.output[0]] = Tensor(shape: [hi - lo], scalars: full[lo..<hi].map { Float($0) })
            return
        }
        if (op == "Quant" || op == "BipolarQuant") && isQONNX, let x = n.input.first, let w = constants[x] {
            try quantizedConstant(n, weight: w)
            return
        }
        if allConstant && !inputs.isEmpty {
            try foldConstant(n)
            return
        }
        if let x = n.input.first, let q = quantized[x], ["Identity", "Transpose", "Reshape"].contains(op) {
            try foldQuantized(n, q)
            return
        }
        if isQONNX && (op == "Quant" || op == "BipolarQuant") {  // constant parameters before the chain check
            let names = ["x", "scale", "zero point", "bit width"]
            for i in 1..<Swift.max(1, Swift.min(n.input.count, op == "Quant" ? 4 : 2)) { _ = try constantInput(n, i, names[i]) }
        }
        if isQONNX && (op == "Trunc" || op == "MultiThreshold") {
            let names = op == "MultiThreshold" ? ["v", "thresholds"]
                : n.input.count == 6 ? ["x", "scale", "zero point", "input bit width", "output scale", "output bit width"]
                : ["x", "scale", "zero point", "input bit width", "output bit width"]
            for i in 1..<Swift.max(1, Swift.min(n.input.count, names.count)) { _ = try constantInput(n, i, names[i]) }
        }
        try chainInput(n)
        switch (isQONNX, op) {
        case (true, "Quant"): try activationQuant(n)
        case (true, "BipolarQuant"): try activationBipolar(n)
        case (true, "Trunc"): try trunc(n)
        case (true, "MultiThreshold"): try multiThreshold(n)
        case (false, "Gemm"), (false, "MatMul"): try dense(n)
        case (false, "Conv"): try conv(n)
        case (false, "BatchNormalization"): try batchNorm(n)
        case (false, "Add"), (false, "Mul"): try affine(n)
        case (false, "Relu"), (false, "Sigmoid"), (false, "Tanh"):
            let layer = newLayer()
            add(Node(name: layer, op: OpType(rawValue: op)!, inputs: [head], outputs: ["\(layer).out"]), newGroup: true)
            try advance(n, to: "\(layer).out")
        case (false, "MaxPool"): try maxPool(n)
        case (false, "Flatten"):
            let axis = try int(n, "axis", 1)
            guard axis == 1 || (axis == -shape.count) else {
                throw unsupported(n, "Flatten with axis \(axis) is not supported (QForge flattens everything but the batch: axis 1)")
            }
            try flatten(n)
        case (false, "Reshape"): try reshape(n, target: try integers(n, 1, "shape"))
        case (false, "Transpose"): try transpose(n)
        case (false, "Identity"): try advance(n, to: head)
        case (false, "Dropout"):
            guard n.output.filter({ !$0.isEmpty }).count == 1 else { throw unsupported(n, "a Dropout with a mask output is a training graph; export for inference") }
            try advance(n, to: head)
        default:
            throw unsupported(n, "QForge does not import this op (it imports Quant, BipolarQuant, Trunc, MultiThreshold, Gemm, MatMul, Conv, BatchNormalization, Add/Mul by constants, Relu, Sigmoid, Tanh, MaxPool, Flatten, flattening Reshape/Transpose, Identity, Dropout)")
        }
    }

    // MARK: Constant folding

    mutating func foldConstant(_ n: Onnx_NodeProto) throws {
        let x = constants[n.input[0]]!
        let out: Tensor
        switch n.opType {
        case "Identity": out = x
        case "Reshape":
            let target = try integers(n, 1, "shape")
            out = Tensor(shape: try resolve(target, count: x.count, like: x.shape, n), scalars: x.scalars)
        case "Transpose":
            out = try permuted(x, perm: try ints(n, "perm") ?? Array((0..<x.rank).reversed()), n)
        case "Cast":  // values are held as Float32; integer targets truncate
            let to = try int(n, "to", 1)
            out = [1, 10, 11, 16].contains(to) ? x : Tensor(shape: x.shape, scalars: x.scalars.map { $0.rounded(.towardZero) })
        case "Unsqueeze", "Squeeze":
            let axes = try ints(n, "axes") ?? (n.input.count > 1 ? try integers(n, 1, "axes") : [])
            var shape = x.shape
            if n.opType == "Unsqueeze" {
                let rank = shape.count + axes.count
                for a in axes.map({ $0 < 0 ? $0 + rank : $0 }).sorted() {
                    guard (0...shape.count).contains(a) else { throw unsupported(n, "axis \(a) is out of range") }
                    shape.insert(1, at: a)
                }
            } else {
                let drop = Set(axes.isEmpty ? shape.indices.filter { shape[$0] == 1 } : axes.map { $0 < 0 ? $0 + shape.count : $0 })
                guard drop.allSatisfy({ shape.indices.contains($0) && shape[$0] == 1 }) else { throw unsupported(n, "axes \(axes) are not of length 1 in \(shape)") }
                shape = shape.indices.filter { !drop.contains($0) }.map { shape[$0] }
            }
            out = Tensor(shape: shape, scalars: x.scalars)
        case "Gather":  // of a 1-D constant (shape arithmetic)
            let indices = try constantInput(n, 1, "indices")
            guard x.rank == 1, try int(n, "axis", 0) == 0 else { throw unsupported(n, "QForge folds Gather of 1-D constants on axis 0 only") }
            let picked = try integers(n, 1, "indices").map { i -> Float in
                let k = i < 0 ? i + x.count : i
                guard (0..<x.count).contains(k) else { throw unsupported(n, "index \(i) is out of range for \(x.count) values") }
                return x.scalars[k]
            }
            out = Tensor(shape: indices.shape, scalars: picked)
        case "Concat":  // of 1-D constants
            let parts = try (0..<n.input.count).map { try constantInput(n, $0, "input \($0)") }
            guard parts.allSatisfy({ $0.rank == 1 }) else { throw unsupported(n, "QForge folds Concat of 1-D constants only") }
            out = Tensor(shape: [parts.reduce(0) { $0 + $1.count }], scalars: parts.flatMap(\.scalars))
        default:
            throw unsupported(n, "it computes on constants only, and QForge folds only Identity, Reshape, Transpose, Cast, (Un)Squeeze, Gather and Concat of constants and Quant/BipolarQuant of weights; precompute it (qonnx.util.cleanup)")
        }
        guard n.output.count == 1 else { throw unsupported(n, "constant folding needs one output") }
        constants[n.output[0]] = out
    }

    /// A Quant or BipolarQuant on a constant: remembered as a quantized weight for the layer
    /// that reads it.
    mutating func quantizedConstant(_ n: Onnx_NodeProto, weight: Tensor) throws {
        let scale = try constantInput(n, 1, "scale")
        var q = QuantizedConstant(node: n, weight: weight, scale: scale)
        if n.opType == "Quant" {
            guard n.input.count == 4 else { throw unsupported(n, "a Quant node needs 4 inputs (x, scale, zero point, bit width), it has \(n.input.count)") }
            q.zeroPoint = try constantInput(n, 2, "zero point")
            q.bitWidth = try constantInput(n, 3, "bit width")
        } else {
            guard n.input.count == 2 else { throw unsupported(n, "a BipolarQuant node needs 2 inputs (x, scale), it has \(n.input.count)") }
        }
        guard n.output.count == 1 else { throw unsupported(n, "a quantizer has one output") }
        quantized[n.output[0]] = q
    }

    /// Identity, Transpose or Reshape of a quantized constant: applied to the weight and, for
    /// per-channel scales, to the scale.
    mutating func foldQuantized(_ n: Onnx_NodeProto, _ q: QuantizedConstant) throws {
        var q = q
        switch n.opType {
        case "Identity": break
        case "Transpose":
            let perm = try ints(n, "perm") ?? Array((0..<q.weight.rank).reversed())
            q.weight = try permuted(q.weight, perm: perm, n)
            if q.scale.count > 1 {
                guard q.scale.rank == perm.count else { throw unsupported(n, "a per-channel scale of shape \(q.scale.shape) cannot follow a transpose of a rank-\(perm.count) weight") }
                q.scale = try permuted(q.scale, perm: perm, n)
            }
        default:  // Reshape: only the same shape (a no-op) keeps the quantizer meaningful
            let target = try resolve(try integers(n, 1, "shape"), count: q.weight.count, like: q.weight.shape, n)
            guard target == q.weight.shape || q.scale.count == 1 else {
                throw unsupported(n, "reshaping a weight with per-channel scales is not supported")
            }
            q.weight = Tensor(shape: target, scalars: q.weight.scalars)
        }
        guard n.output.count == 1 else { throw unsupported(n, "constant folding needs one output") }
        quantized[n.output[0]] = q
    }

    func permuted(_ x: Tensor, perm: [Int], _ n: Onnx_NodeProto) throws -> Tensor {
        guard perm.count == x.rank, perm.sorted() == Array(0..<x.rank) else {
            throw unsupported(n, "perm \(perm) is not a permutation of the \(x.rank) axes of \(x.shape)")
        }
        let shape = perm.map { x.shape[$0] }
        var strides = [Int](repeating: 1, count: x.rank)
        for i in stride(from: x.rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * x.shape[i + 1] }
        let src = x.scalars
        var out = [Float](repeating: 0, count: x.count)
        var index = [Int](repeating: 0, count: x.rank)
        for i in 0..<x.count {
            var offset = 0
            for (k, axis) in perm.enumerated() { offset += index[k] * strides[axis] }
            out[i] = src[offset]
            var k = x.rank - 1
            while k >= 0 { index[k] += 1; if index[k] < shape[k] { break }; index[k] = 0; k -= 1 }
        }
        return Tensor(shape: shape, scalars: out)
    }

    /// A Reshape target with 0 (copy) and −1 (infer) resolved for `count` elements.
    func resolve(_ target: [Int], count: Int, like old: [Int], _ n: Onnx_NodeProto) throws -> [Int] {
        var dims = try target.enumerated().map { i, d -> Int in
            if d == 0 {
                guard i < old.count else { throw unsupported(n, "shape \(target) copies dimension \(i), which the input \(old) lacks") }
                return old[i]
            }
            guard d >= -1 else { throw unsupported(n, "shape \(target) has a negative size") }
            return d
        }
        let known = try product(dims.filter { $0 != -1 }, n)
        switch dims.filter({ $0 == -1 }).count {
        case 0: break
        case 1:
            guard known > 0, count % known == 0 else { throw unsupported(n, "shape \(target) does not fit \(count) elements") }
            dims[dims.firstIndex(of: -1)!] = count / known
        default: throw unsupported(n, "shape \(target) infers more than one dimension")
        }
        guard try product(dims, n) == count else { throw unsupported(n, "shape \(target) does not hold the \(count) elements of \(old)") }
        return dims
    }

    // MARK: Layers

    /// Writes a quantizer node (and its tensors and spec) for `q` at `prefix`/`nodeName`;
    /// returns its output value.
    mutating func emitQuant(_ n: Onnx_NodeProto, input: String, scale: Tensor, scaleShape: [Int], zeroPoint: Float, bits: Int?,
                            prefix: String, nodeName: String, axis: Int?) throws -> String {
        let out = nodeName.replacingOccurrences(of: "/", with: ".") + ".q"
        tensors["\(prefix).scale"] = Tensor(shape: scaleShape, scalars: scale.scalars)
        let powerOfTwo = scale.scalars.allSatisfy { $0 > 0 && $0.isFinite && $0 == Float(sign: .plus, exponent: $0.exponent, significand: 1) }
        if n.opType == "BipolarQuant" {
            add(Node(name: nodeName, op: .bipolarQuant, inputs: [input, "\(prefix).scale"], outputs: [out]), newGroup: false)
            quantizers[out] = QuantizerSpec(bitWidth: 1, scale: scale.scalars, axis: axis, kind: .bipolar, scaleIsPowerOfTwo: powerOfTwo)
            return out
        }
        let signed = try int(n, "signed", 1), narrow = try int(n, "narrow", 0)
        let mode = try string(n, "rounding_mode", "ROUND")
        guard let rounding = RoundingMode(qonnxName: mode) else {
            throw unsupported(n, "rounding_mode \(GraphError.quote(mode)) is unknown (known: \(RoundingMode.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard signed == 0 || signed == 1, narrow == 0 || narrow == 1 else { throw unsupported(n, "signed and narrow must be 0 or 1") }
        tensors["\(prefix).zeropt"] = Tensor(shape: [1], scalars: [zeroPoint])
        tensors["\(prefix).bitwidth"] = Tensor(shape: [1], scalars: [Float(bits ?? 0)])
        add(Node(name: nodeName, op: .quant, inputs: [input, "\(prefix).scale", "\(prefix).zeropt", "\(prefix).bitwidth"], outputs: [out],
                 attributes: ["signed": .int(signed), "narrow": .int(narrow), "rounding_mode": .string(rounding.rawValue)]), newGroup: false)
        quantizers[out] = QuantizerSpec(bitWidth: bits ?? 0, signed: signed == 1, narrow: narrow == 1, roundingMode: rounding, scale: scale.scalars,
                                        zeroPoint: [zeroPoint], axis: axis, scaleIsPowerOfTwo: powerOfTwo)
        do { try quantizers[out]!.validate() } catch let e as GraphError { throw unsupported(n, e.kind.message) }
        return out
    }

    /// The single integer in a bit-width tensor.
    func bitWidth(_ n: Onnx_NodeProto, _ t: Tensor, range: ClosedRange<Int>, what: String) throws -> Int {
        guard t.count == 1, let b = Int(exactly: t.scalars[0]), range.contains(b) else {
            throw unsupported(n, "bit width \(t.scalars.prefix(4)) is not one integer in \(range.lowerBound)…\(range.upperBound) (\(what))")
        }
        return b
    }

    /// A Quant on the chain: an activation quantizer.
    mutating func activationQuant(_ n: Onnx_NodeProto) throws {
        guard n.input.count == 4 else { throw unsupported(n, "a Quant node needs 4 inputs (x, scale, zero point, bit width), it has \(n.input.count)") }
        let scale = try constantInput(n, 1, "scale"), zero = try constantInput(n, 2, "zero point")
        let bits = try bitWidth(n, try constantInput(n, 3, "bit width"), range: 1...32, what: "activations take 1…32 bits")
        guard scale.count == 1 else {
            throw unsupported(n, "an activation quantizer with \(scale.count) scales (per channel) is not supported; QForge quantizes activations per tensor")
        }
        guard zero.count == 1, zero.scalars[0] == zero.scalars[0].rounded() else {
            throw unsupported(n, "the zero point \(zero.scalars.prefix(4)) must be one integer")
        }
        // After a lone Relu the quantizer joins its layer (QuantReLU), otherwise it is a layer.
        let joinsRelu = lastGroup.count == 1 && nodes[lastGroup[0]].op == .relu && nodes[lastGroup[0]].outputs == [head]
        let layer = joinsRelu ? nodes[lastGroup[0]].name : newLayer()
        if !joinsRelu { lastGroup = [] }
        let nodeName = joinsRelu ? "\(layer)/act_quant" : layer
        let out = try emitQuant(n, input: head, scale: scale, scaleShape: [1], zeroPoint: zero.scalars[0], bits: bits,
                                prefix: "\(layer).act_quant", nodeName: nodeName, axis: nil)
        try advance(n, to: out)
    }

    /// A BipolarQuant on the chain (FINN's 1-bit activations): a layer of its own, ±scale.
    mutating func activationBipolar(_ n: Onnx_NodeProto) throws {
        guard n.input.count == 2 else { throw unsupported(n, "a BipolarQuant node needs 2 inputs (x, scale), it has \(n.input.count)") }
        let scale = try constantInput(n, 1, "scale")
        guard scale.count == 1, scale.scalars[0] > 0, scale.scalars[0].isFinite else {
            throw unsupported(n, "a bipolar activation needs one positive scale (per tensor), found \(scale.scalars.prefix(4)); QForge quantizes activations per tensor")
        }
        let layer = newLayer()
        lastGroup = []
        let out = try emitQuant(n, input: head, scale: scale, scaleShape: [1], zeroPoint: 0, bits: 1,
                                prefix: "\(layer).act_quant", nodeName: layer, axis: nil)
        try advance(n, to: out)
    }

    /// A MultiThreshold on the chain (FINN): a ThresholdActivation layer (`layers.N`, its
    /// thresholds `layers.N.thresholds`), channels on axis 1 as QForge holds them.
    mutating func multiThreshold(_ n: Onnx_NodeProto) throws {
        guard n.input.count == 2 else { throw unsupported(n, "a MultiThreshold node needs 2 inputs (v, thresholds), it has \(n.input.count)") }
        let t = try constantInput(n, 1, "thresholds")
        let channels = shape.first ?? 1
        guard t.rank == 2, t.shape[1] >= 1, t.shape[0] == 1 || t.shape[0] == channels, !t.scalars.contains(where: \.isNaN) else {
            throw unsupported(n, "thresholds of shape \(t.shape) do not fit \(channels) channels; MultiThreshold needs [channels or 1, steps] numbers")
        }
        let layout = try string(n, "data_layout", "")
        let channelsSecond = layout.isEmpty ? shape.count != 2 : Array(layout).count == shape.count + 1 && Array(layout).firstIndex(of: "C") == 1
        guard channelsSecond else {
            throw unsupported(n, "data_layout \(layout.isEmpty ? "(none, so qonnx reads rank 3 as NWC)" : GraphError.quote(layout)) on values of shape \([1] + shape) does not put channels on axis 1; QForge holds activations channels first (NC, NCHW)")
        }
        let outScale = try float(n, "out_scale", 1), outBias = try float(n, "out_bias", 0)
        guard outScale.isFinite, outBias.isFinite else { throw unsupported(n, "out_scale and out_bias must be finite") }
        let layer = newLayer()
        tensors["\(layer).thresholds"] = t
        var attributes: [String: AttributeValue] = ["out_scale": .float(outScale), "out_bias": .float(outBias)]
        let type = try string(n, "out_dtype", "")
        if !type.isEmpty { attributes["out_dtype"] = .string(type) }
        add(Node(name: layer, op: .multiThreshold, inputs: [head, "\(layer).thresholds"], outputs: ["\(layer).out"], attributes: attributes), newGroup: true)
        try advance(n, to: "\(layer).out")
    }

    /// A Trunc on the chain: a TruncActivation layer (`layers.N`, parameters `layers.N.trunc.*`).
    /// Version 1 has 5 inputs (x, scale, zero point, input bit width, output bit width),
    /// version 2 six (…, input bit width, output scale, output bit width) and signed / narrow.
    mutating func trunc(_ n: Onnx_NodeProto) throws {
        guard n.input.count == 5 || n.input.count == 6 else {
            throw unsupported(n, "a Trunc node needs 5 inputs (x, scale, zero point, input bit width, output bit width) or 6 (with the output scale before the output bit width), it has \(n.input.count)")
        }
        let v2 = n.input.count == 6
        func single(_ i: Int, _ what: String) throws -> Float {
            let t = try constantInput(n, i, what)
            guard t.count == 1, t.scalars[0].isFinite else { throw unsupported(n, "its \(what) must be one finite number (per tensor), found \(t.scalars.prefix(4))") }
            return t.scalars[0]
        }
        let scale = try single(1, "scale"), zero = try single(2, "zero point")
        let inBits = try bitWidth(n, try constantInput(n, 3, "input bit width"), range: 1...32, what: "Trunc input")
        let outBits = try bitWidth(n, try constantInput(n, v2 ? 5 : 4, "output bit width"), range: 1...32, what: "Trunc output")
        guard scale > 0 else { throw unsupported(n, "its scale must be positive, found \(scale)") }
        let mode = try string(n, "rounding_mode", "FLOOR")
        guard let rounding = RoundingMode(qonnxName: mode) else {
            throw unsupported(n, "rounding_mode \(GraphError.quote(mode)) is unknown (known: \(RoundingMode.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let layer = newLayer(), p = "\(layer).trunc"
        tensors["\(p).scale"] = Tensor(shape: [1], scalars: [scale])
        tensors["\(p).zeropt"] = Tensor(shape: [1], scalars: [zero])
        tensors["\(p).in_bitwidth"] = Tensor(shape: [1], scalars: [Float(inBits)])
        tensors["\(p).out_bitwidth"] = Tensor(shape: [1], scalars: [Float(outBits)])
        var inputs = [head, "\(p).scale", "\(p).zeropt", "\(p).in_bitwidth"]
        var attributes: [String: AttributeValue] = ["rounding_mode": .string(rounding.rawValue)]
        if v2 {
            let outScale = try single(4, "output scale")
            guard outScale > 0 else { throw unsupported(n, "its output scale must be positive, found \(outScale)") }
            tensors["\(p).out_scale"] = Tensor(shape: [1], scalars: [outScale])
            inputs.append("\(p).out_scale")
            let signed = try int(n, "signed", 1), narrow = try int(n, "narrow", 0)
            guard signed == 0 || signed == 1, narrow == 0 || narrow == 1 else { throw unsupported(n, "signed and narrow must be 0 or 1") }
            attributes["signed"] = .int(signed)
            attributes["narrow"] = .int(narrow)
        } else if inBits < outBits {
            throw unsupported(n, "input bit width \(inBits) is below the output bit width \(outBits)")
        }
        inputs.append("\(p).out_bitwidth")
        add(Node(name: layer, op: .trunc, inputs: inputs, outputs: ["\(layer).out"], attributes: attributes), newGroup: true)
        try advance(n, to: "\(layer).out")
    }

    /// The weight of a Gemm / MatMul / Conv as `[out, …]`, with its quantizer if any.
    /// `transpose2D` turns a [in, out] matrix into [out, in].
    func weight(_ n: Onnx_NodeProto, _ i: Int, transpose2D: Bool) throws -> (Tensor, QuantizedConstant?) {
        guard i < n.input.count else { throw unsupported(n, "it has no weight input") }
        let name = n.input[i]
        if var q = quantized[name] {
            if transpose2D {
                guard q.weight.rank == 2 else { throw unsupported(n, "weight of shape \(q.weight.shape) is not a matrix") }
                q.weight = try permuted(q.weight, perm: [1, 0], n)
                if q.scale.count > 1 { q.scale = try permuted(q.scale.rank == 2 ? q.scale : Tensor(shape: [1, q.scale.count], scalars: q.scale.scalars), perm: [1, 0], n) }
            }
            return (q.weight, q)
        }
        guard var w = constants[name] else {
            throw unsupported(n, "its weight \(GraphError.quote(name)) is computed, not a constant or a quantized constant; QForge layers have constant weights")
        }
        if transpose2D {
            guard w.rank == 2 else { throw unsupported(n, "weight of shape \(w.shape) is not a matrix") }
            w = try permuted(w, perm: [1, 0], n)
        }
        return (w, nil)
    }

    /// Emits the weight (and its quantizer) of layer `layer`; returns the value the main node reads.
    mutating func emitWeight(_ n: Onnx_NodeProto, _ w: Tensor, _ q: QuantizedConstant?, layer: String) throws -> String {
        tensors["\(layer).weight"] = w
        guard let q else { return "\(layer).weight" }
        let out = w.shape[0]
        // One scale, or one per output channel (axis 0, every other axis of the scale 1).
        var axis: Int?
        var scaleShape = [1]
        if q.scale.count > 1 {
            // Numpy broadcasting: only a scale of the weight's rank shaped [out, 1, …] is per output channel.
            guard q.scale.rank == w.rank, q.scale.shape[0] == out, q.scale.shape.dropFirst().allSatisfy({ $0 == 1 }) else {
                throw unsupported(q.node, "weight scales of shape \(q.scale.shape) for a weight of shape \(w.shape) are not per tensor or per output channel; QForge scales weights per tensor or per output channel")
            }
            axis = 0
            scaleShape = [out] + [Int](repeating: 1, count: w.rank - 1)
        }
        var zero: Float = 0, bits: Int?
        if q.node.opType == "Quant" {
            guard let z = q.zeroPoint, z.scalars.allSatisfy({ $0 == 0 }) else {
                throw unsupported(q.node, "weight zero points \(q.zeroPoint?.scalars.prefix(4) ?? []) are not 0; QForge quantizes weights symmetrically")
            }
            zero = 0
            bits = try bitWidth(q.node, q.bitWidth!, range: 1...16, what: "weights take 1…16 bits")
        }
        lastGroup = []
        return try emitQuant(q.node, input: "\(layer).weight", scale: q.scale, scaleShape: scaleShape, zeroPoint: zero, bits: bits,
                             prefix: "\(layer).weight_quant", nodeName: "\(layer)/weight_quant", axis: axis)
    }

    /// A bias: a constant, or a Quant on one (`layer/bias_quant`); returns the value to read.
    mutating func emitBias(_ n: Onnx_NodeProto, _ name: String, channels: Int, layer: String) throws -> String {
        if let q = quantized[name] {
            guard q.node.opType == "Quant", q.weight.count == channels else {
                throw unsupported(n, "its bias \(GraphError.quote(name)) must be a float or Quant-ed constant of \(channels) values")
            }
            tensors["\(layer).bias"] = Tensor(shape: [channels], scalars: q.weight.scalars)
            guard let z = q.zeroPoint, z.scalars.allSatisfy({ $0 == 0 }), q.scale.count == 1 || q.scale.count == channels else {
                throw unsupported(q.node, "a bias quantizer needs zero point 0 and one scale or one per channel")
            }
            let bits = try bitWidth(q.node, q.bitWidth!, range: 2...32, what: "biases take 2…32 bits")
            let scale = Tensor(shape: [channels], scalars: q.scale.count == 1 ? [Float](repeating: q.scale.scalars[0], count: channels) : q.scale.scalars)
            return try emitQuant(q.node, input: "\(layer).bias", scale: scale, scaleShape: [channels], zeroPoint: 0, bits: bits,
                                 prefix: "\(layer).bias_quant", nodeName: "\(layer)/bias_quant", axis: channels > 1 ? 0 : nil)
        }
        guard let b = constants[name] else {
            throw unsupported(n, "its bias \(GraphError.quote(name)) is computed, not a constant")
        }
        guard b.count == channels || b.count == 1 else {
            throw unsupported(n, "its bias has shape \(b.shape), expected \(channels) values (one per output)")
        }
        tensors["\(layer).bias"] = Tensor(shape: [channels], scalars: b.count == 1 ? [Float](repeating: b.scalars[0], count: channels) : b.scalars)
        return "\(layer).bias"
    }

    mutating func dense(_ n: Onnx_NodeProto) throws {
        let isGemm = n.opType == "Gemm"
        guard shape.count == 1 else {
            throw unsupported(n, "it multiplies a rank-\(shape.count + 1) input \([1] + shape); QForge's dense layers take [batch, features] (flatten first)")
        }
        if isGemm {
            guard try float(n, "alpha", 1) == 1, try int(n, "transA", 0) == 0 else {
                throw unsupported(n, "Gemm with alpha ≠ 1 or transA = 1 is not supported (QForge computes x·Wᵀ + b)")
            }
            if n.input.count > 2, !n.input[2].isEmpty, try float(n, "beta", 1) != 1 {
                throw unsupported(n, "Gemm with beta ≠ 1 is not supported")
            }
        }
        let transB = isGemm ? try int(n, "transB", 0) : 0
        let (w, q) = try weight(n, 1, transpose2D: transB == 0)
        guard w.rank == 2, w.shape[1] == shape[0] else {
            throw unsupported(n, "weight of shape \(w.shape) (as [out, in]) does not fit \(shape[0]) input features")
        }
        let layer = newLayer()
        lastGroup = []
        let wv = try emitWeight(n, w, q, layer: layer)
        var inputs = [head, wv]
        if isGemm, n.input.count > 2, !n.input[2].isEmpty {
            inputs.append(try emitBias(n, n.input[2], channels: w.shape[0], layer: layer))
        }
        add(Node(name: layer, op: .gemm, inputs: inputs, outputs: ["\(layer).out"], attributes: ["transB": .int(1)]), newGroup: false)
        try advance(n, to: "\(layer).out", shape: [w.shape[0]])
    }

    mutating func conv(_ n: Onnx_NodeProto) throws {
        guard shape.count == 3 else { throw unsupported(n, "QForge convolutions are 2-D on [batch, channels, height, width] inputs, this input is \([1] + shape)") }
        let (w, q) = try weight(n, 1, transpose2D: false)
        guard w.rank == 4, w.shape[1] == shape[0] else {
            throw unsupported(n, "weight of shape \(w.shape) does not fit \(shape[0]) input channels (grouped convolutions are not supported)")
        }
        let k = try ints(n, "kernel_shape") ?? [w.shape[2], w.shape[3]]
        let strides = try ints(n, "strides") ?? [1, 1], dilations = try ints(n, "dilations") ?? [1, 1]
        let autoPad = try string(n, "auto_pad", "NOTSET")
        let pads = try ints(n, "pads") ?? [0, 0, 0, 0]
        guard try int(n, "group", 1) == 1, dilations.allSatisfy({ $0 == 1 }), k.count == 2, k[0] == k[1], k == [w.shape[2], w.shape[3]],
              strides.count == 2, strides[0] == strides[1], pads.count == 4, Set(pads).count == 1,
              autoPad == "NOTSET" || (autoPad == "VALID" && pads[0] == 0) else {
            throw unsupported(n, "QForge's Conv2d needs a square kernel, equal strides, equal pads on all sides, no dilation, group 1 and auto_pad NOTSET; found kernel \(k), strides \(strides), pads \(pads), dilations \(dilations), auto_pad \(autoPad)")
        }
        let (s, p) = (strides[0], pads[0])
        let h = (shape[1] + 2 * p - k[0]) / s + 1, wd = (shape[2] + 2 * p - k[0]) / s + 1
        guard h > 0, wd > 0 else { throw unsupported(n, "the kernel does not fit the \(shape[1])×\(shape[2]) input") }
        let layer = newLayer()
        lastGroup = []
        let wv = try emitWeight(n, w, q, layer: layer)
        var inputs = [head, wv]
        if n.input.count > 2, !n.input[2].isEmpty { inputs.append(try emitBias(n, n.input[2], channels: w.shape[0], layer: layer)) }
        add(Node(name: layer, op: .conv, inputs: inputs, outputs: ["\(layer).out"],
                 attributes: ["kernel_shape": .ints(k), "strides": .ints(strides), "pads": .ints(pads), "dilations": .ints([1, 1]), "group": .int(1)]),
            newGroup: false)
        try advance(n, to: "\(layer).out", shape: [w.shape[0], h, wd])
    }

    mutating func batchNorm(_ n: Onnx_NodeProto) throws {
        guard n.input.count == 5 else { throw unsupported(n, "BatchNormalization needs 5 inputs (x, scale, bias, mean, var)") }
        guard try int(n, "training_mode", 0) == 0 else { throw unsupported(n, "training_mode = 1 is a training graph; export for inference") }
        let params = try (1...4).map { try constantInput(n, $0, ["", "scale", "bias", "mean", "variance"][$0]) }
        let c = shape.first ?? 0
        guard params.allSatisfy({ $0.count == c }) else {
            throw unsupported(n, "parameters of \(params.map(\.count)) values do not fit \(c) channels")
        }
        let layer = newLayer()
        for (t, key) in zip(params, ["weight", "bias", "running_mean", "running_var"]) { tensors["\(layer).\(key)"] = Tensor(shape: [c], scalars: t.scalars) }
        let momentum = try float(n, "momentum", 0.9)
        add(Node(name: layer, op: .batchNormalization, inputs: [head] + ["weight", "bias", "running_mean", "running_var"].map { "\(layer).\($0)" },
                 outputs: ["\(layer).out"], attributes: ["epsilon": .float(try float(n, "epsilon", 1e-5)), "momentum": .float(1 - momentum)]),
            newGroup: true)
        try advance(n, to: "\(layer).out")
    }

    /// Add or Mul by a constant: a bias of the layer before (MatMul / Gemm / Conv without
    /// one), or a per-channel affine map (a BatchNorm with mean 0, variance 1, ε 0).
    mutating func affine(_ n: Onnx_NodeProto) throws {
        guard n.input.count == 2 else { throw unsupported(n, "\(n.opType) needs 2 inputs") }
        let c = try constantInput(n, 1, n.opType == "Add" ? "addend" : "factor")
        let channels = shape.first ?? 1
        // Which values broadcast per channel: a scalar, or C values along the channel axis.
        let perChannel: Bool
        let cShape = c.shape.drop { $0 == 1 && c.rank > shape.count }
        if c.count == 1 {
            perChannel = false
        } else if c.count == channels && (Array(cShape) == [channels] + [Int](repeating: 1, count: Swift.max(0, cShape.count - 1)))
                    && cShape.count <= shape.count && (cShape.count == shape.count || shape.count == 1) {
            perChannel = true
        } else {
            throw unsupported(n, "\(n.opType) by a constant of shape \(c.shape) on values of shape \([1] + shape) is not per tensor or per channel; QForge imports per-channel affine maps only")
        }
        let values = perChannel ? c.scalars : [Float](repeating: c.scalars[0], count: channels)
        // A bias for the product just before.
        if n.opType == "Add", let last = lastGroup.last, [.gemm, .conv].contains(nodes[last].op), nodes[last].outputs == [head],
           nodes[last].inputs.count == 2 {
            let layer = nodes[last].name
            tensors["\(layer).bias"] = Tensor(shape: [channels], scalars: values)
            nodes[last].inputs.append("\(layer).bias")
            try advance(n, to: head)
            return
        }
        let layer = newLayer()
        let isMul = n.opType == "Mul"
        tensors["\(layer).weight"] = Tensor(shape: [channels], scalars: isMul ? values : [Float](repeating: 1, count: channels))
        tensors["\(layer).bias"] = Tensor(shape: [channels], scalars: isMul ? [Float](repeating: 0, count: channels) : values)
        tensors["\(layer).running_mean"] = Tensor(zeros: [channels])
        tensors["\(layer).running_var"] = Tensor(shape: [channels], scalars: [Float](repeating: 1, count: channels))
        add(Node(name: layer, op: .batchNormalization, inputs: [head] + ["weight", "bias", "running_mean", "running_var"].map { "\(layer).\($0)" },
                 outputs: ["\(layer).out"], attributes: ["epsilon": .float(0), "momentum": .float(0.1)]), newGroup: true)
        try advance(n, to: "\(layer).out")
    }

    mutating func maxPool(_ n: Onnx_NodeProto) throws {
        guard shape.count == 3 else { throw unsupported(n, "QForge's MaxPool2d takes [batch, channels, height, width] inputs, this input is \([1] + shape)") }
        let k = try ints(n, "kernel_shape") ?? []
        let strides = try ints(n, "strides") ?? [1, 1], pads = try ints(n, "pads") ?? [0, 0, 0, 0]
        let dilations = try ints(n, "dilations") ?? [1, 1], autoPad = try string(n, "auto_pad", "NOTSET")
        guard k.count == 2, k[0] == k[1], strides.count == 2, strides[0] == strides[1], pads.allSatisfy({ $0 == 0 }),
              dilations.allSatisfy({ $0 == 1 }), try int(n, "ceil_mode", 0) == 0, autoPad == "NOTSET" || autoPad == "VALID" else {
            throw unsupported(n, "QForge's MaxPool2d needs a square kernel, equal strides, no padding, no dilation and ceil_mode 0; found kernel \(k), strides \(strides), pads \(pads)")
        }
        let h = (shape[1] - k[0]) / strides[0] + 1, w = (shape[2] - k[0]) / strides[0] + 1
        guard h > 0, w > 0 else { throw unsupported(n, "the window does not fit the \(shape[1])×\(shape[2]) input") }
        let layer = newLayer()
        add(Node(name: layer, op: .maxPool, inputs: [head], outputs: ["\(layer).out"],
                 attributes: ["kernel_shape": .ints(k), "strides": .ints(strides), "pads": .ints([0, 0, 0, 0])]), newGroup: true)
        try advance(n, to: "\(layer).out", shape: [shape[0], h, w])
    }

    mutating func flatten(_ n: Onnx_NodeProto) throws {
        let layer = newLayer()
        add(Node(name: layer, op: .flatten, inputs: [head], outputs: ["\(layer).out"], attributes: ["axis": .int(1)]), newGroup: true)
        try advance(n, to: "\(layer).out", shape: [shape.reduce(1, *)])
    }

    /// A Reshape of the chain: keeping the batch and either the sample shape (nothing to do)
    /// or flattening it (a Flatten layer). The batch entry may be 1 (models exported for one
    /// image), 0 (copy) or −1.
    mutating func reshape(_ n: Onnx_NodeProto, target: [Int]) throws {
        let count = shape.reduce(1, *)
        guard let first = target.first, [1, 0, -1].contains(first), target.count >= 2 else {
            throw unsupported(n, "shape \(target) changes the batch dimension; QForge imports reshapes that keep it")
        }
        var sample = Array(target.dropFirst())
        if first == -1 && sample.contains(-1) { throw unsupported(n, "shape \(target) infers two dimensions") }
        sample = try resolve(sample, count: count, like: shape, n)
        if sample == shape { return try advance(n, to: head) }
        if sample == [count] { return try flatten(n) }
        throw unsupported(n, "reshaping \([1] + shape) to \(target) is not a flatten; QForge imports Reshapes that flatten or keep the sample shape")
    }

    /// A Transpose of the chain that moves no data: it keeps the batch first and permutes
    /// only axes of which at most one is longer than 1 (a pure relabelling of the layout).
    mutating func transpose(_ n: Onnx_NodeProto) throws {
        let full = [1] + shape
        let perm = try ints(n, "perm") ?? Array((0..<full.count).reversed())
        guard perm.count == full.count, perm.sorted() == Array(0..<full.count), perm[0] == 0 else {
            throw unsupported(n, "perm \(perm) moves the batch axis or does not fit \(full); QForge imports Transposes that only change the layout")
        }
        let moved = perm.enumerated().filter { $0.offset != $0.element }.map { full[$0.element] }
        guard moved.filter({ $0 > 1 }).count <= 1 else {
            throw unsupported(n, "perm \(perm) reorders data of shape \(full); QForge imports Transposes that only change the layout (permuting axes of length 1)")
        }
        let newShape = Array(perm.dropFirst().map { full[$0] })
        if newShape == shape { return try advance(n, to: head) }
        // Same data order, another shape: a flatten when the result is 1-D, else unsupported.
        if newShape.count == 1 { return try flatten(n) }
        throw unsupported(n, "a Transpose to \([1] + newShape) has no QForge layer; flatten after it instead")
    }
}
