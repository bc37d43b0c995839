import QForgeTensor
extension OpType {
    /// How many inputs a node of this op takes (ONNX / QONNX signatures; see `OpType`).
    public var inputCount: ClosedRange<Int> {
        switch self {
        case .gemm, .conv: return 2...3
        case .matMul, .add, .mul, .bipolarQuant, .multiThreshold: return 2...2
        case .batchNormalization: return 5...5
        case .relu, .sigmoid, .tanh, .maxPool, .flatten, .transpose, .softmax, .identity: return 1...1
        case .reshape: return 1...2
        case .dropout: return 1...3
        case .quant: return 4...4
        case .trunc: return 5...7
        }
    }

    /// How many outputs a node of this op has (Dropout may also output its mask).
    public var outputCount: ClosedRange<Int> {
        self == .dropout ? 1...2 : 1...1
    }

    enum AttributeKind: String {
        case int = "an integer", float = "a number", string = "a string"
        case ints = "a list of integers", floats = "a list of numbers"

        func accepts(_ value: AttributeValue) -> Bool {
            switch self {
            case .int: return value.intValue != nil
            case .float: return value.floatValue.map { $0.isFinite } ?? false
            case .string: return value.stringValue != nil
            case .ints: return value.intsValue != nil
            case .floats: return value.floatsValue.map { $0.allSatisfy(\.isFinite) } ?? false
            }
        }
    }

    /// The attributes whose type is checked for this op. Others are allowed and kept as they
    /// are (ONNX files carry extras such as `auto_pad`).
    var attributeKinds: [String: AttributeKind] {
        switch self {
        case .conv: return ["strides": .ints, "pads": .ints, "dilations": .ints, "group": .int, "kernel_shape": .ints]
        case .maxPool:
            return ["kernel_shape": .ints, "strides": .ints, "pads": .ints, "dilations": .ints, "ceil_mode": .int]
        case .batchNormalization: return ["epsilon": .float, "momentum": .float]
        case .flatten, .softmax: return ["axis": .int]
        case .reshape: return ["shape": .ints]
        case .transpose: return ["perm": .ints]
        case .dropout: return ["ratio": .float]
        case .quant, .trunc: return ["signed": .int, "narrow": .int, "rounding_mode": .string]
        case .multiThreshold: return ["out_dtype": .string, "out_scale": .float, "out_bias": .float, "data_layout": .string]
        default: return [:]
        }
    }
}

extension Graph {
    /// Checks the graph's structure; throws the first problem found, naming the node:
    ///
    /// - graph inputs, initializers, node outputs: non-empty names, each defined once;
    /// - node names non-empty and unique; nodes in topological order (every input is a graph
    ///   input, an initializer, or an earlier node's output);
    /// - each node's input and output counts fit its op (`OpType.inputCount`, `outputCount`);
    /// - known attributes have the right type and sane values (e.g. Conv strides ≥ 1,
    ///   Transpose perm a permutation, MaxPool kernel_shape present, Quant rounding_mode known);
    /// - graph outputs unique and defined;
    /// - every quantizer keyed by a defined value and valid (`QuantizerSpec.validate()`).
    public func validate() throws {
        var definedBy: [String: String] = [:]
        func define(_ value: String, by who: String) throws {
            if let previous = definedBy[value] {
                throw GraphError(.valueRedefined(value: value, by: who, previous: previous))
            }
            definedBy[value] = who
        }

        for (i, input) in inputs.enumerated() {
            guard !input.name.isEmpty else { throw GraphError(.emptyName(what: "graph input \(i)")) }
            if input.shape.contains(where: { ($0 ?? 0) < 0 }) {
                throw GraphError(.invalidInputShape(input: input.name, shape: input.shape))
            }
            try define(input.name, by: "graph input")
        }
        for (i, name) in initializers.enumerated() {
            guard !name.isEmpty else { throw GraphError(.emptyName(what: "initializer \(i)")) }
            try define(name, by: "initializer")
        }

        var nodeNames = Set<String>()
        for (i, node) in nodes.enumerated() {
            guard !node.name.isEmpty else { throw GraphError(.emptyName(what: "node nodes[\(i)] (\(node.op.rawValue))")) }
            guard nodeNames.insert(node.name).inserted else { throw GraphError(.duplicateNodeName(node.name)) }
            let who = "node \(GraphError.quote(node.name))"

            let inRange = node.op.inputCount, outRange = node.op.outputCount
            guard inRange.contains(node.inputs.count) else {
                throw GraphError(.wrongInputCount(node: node.name, op: node.op.rawValue, count: node.inputs.count,
                                                  expected: Graph.describe(inRange)))
            }
            guard outRange.contains(node.outputs.count) else {
                throw GraphError(.wrongOutputCount(node: node.name, op: node.op.rawValue, count: node.outputs.count,
                                                   expected: Graph.describe(outRange)))
            }
            for input in node.inputs {
                guard !input.isEmpty else { throw GraphError(.emptyName(what: "an input of \(who)")) }
                guard definedBy[input] != nil else { throw GraphError(.undefinedInput(node: node.name, input: input)) }
            }
            try Graph.checkAttributes(of: node)
            for output in node.outputs {
                guard !output.isEmpty else { throw GraphError(.emptyName(what: "an output of \(who)")) }
                try define(output, by: who)
            }
        }

        var outputNames = Set<String>()
        for (i, output) in outputs.enumerated() {
            guard !output.name.isEmpty else { throw GraphError(.emptyName(what: "graph output \(i)")) }
            guard outputNames.insert(output.name).inserted else { throw GraphError(.duplicateGraphOutput(output.name)) }
            guard definedBy[output.name] != nil else { throw GraphError(.undefinedGraphOutput(output.name)) }
        }

        for key in Safetensors.sortedNames(quantizers.keys) {
            guard definedBy[key] != nil else { throw GraphError(.quantizerTargetUnknown(key)) }
            do {
                try quantizers[key]?.validate()
            } catch let error as GraphError {
                throw error.inContext("quantizer \(GraphError.quote(key))")
            }
        }
    }

    /// `validate()`, then checks the weights against the graph: every initializer has a
    /// shape in `initializerShapes`, and the weights each node reads fit it (Gemm W rank 2
    /// and b [out]; Conv W rank 3–5 with out divisible by group, kernel matching
    /// kernel_shape, b [out]; BatchNormalization parameters [C]; Quant and Trunc bit widths
    /// single values; MultiThreshold thresholds rank 2). Per-channel quantizers of
    /// initializers need `axis` inside the rank and one scale per channel.
    public func validate(initializerShapes shapes: [String: [Int]]) throws {
        try validate()
        for name in initializers where shapes[name] == nil {
            throw GraphError(.missingInitializer(name))
        }
        let initializerSet = Set(initializers)
        for node in nodes {
            func weight(_ i: Int) -> (name: String, shape: [Int])? {
                guard i < node.inputs.count, initializerSet.contains(node.inputs[i]),
                      let shape = shapes[node.inputs[i]] else { return nil }
                return (node.inputs[i], shape)
            }
            func fail(_ w: (name: String, shape: [Int]), _ expected: String) -> GraphError {
                GraphError(.initializerShape(node: node.name, tensor: w.name, shape: w.shape, expected: expected))
            }
            func checkSingle(_ i: Int, _ what: String) throws {
                // One element: every dimension is 1 (a scalar has none).
                if let w = weight(i), !w.shape.allSatisfy({ $0 == 1 }) { throw fail(w, "a single \(what) value") }
            }
            switch node.op {
            case .gemm:
                let out = weight(1)?.shape
                if let w = weight(1), w.shape.count != 2 { throw fail(w, "rank 2 [out, in]") }
                if let b = weight(2) {
                    if let out, b.shape != [out[0]] { throw fail(b, "[\(out[0])] (one bias per output)") }
                    if out == nil && b.shape.count != 1 { throw fail(b, "rank 1 [out]") }
                }
            case .conv:
                var out: Int?
                if let w = weight(1) {
                    guard (3...5).contains(w.shape.count) else { throw fail(w, "rank 3 to 5 [out, in/group, kernel…]") }
                    let group = node.attributes["group"]?.intValue ?? 1
                    if group > 0, w.shape[0] % group != 0 {
                        throw fail(w, "an output channel count divisible by group \(group)")
                    }
                    if let kernel = node.attributes["kernel_shape"]?.intsValue, Array(w.shape.dropFirst(2)) != kernel {
                        throw fail(w, "kernel dimensions \(GraphError.shape(kernel)) from kernel_shape")
                    }
                    out = w.shape[0]
                }
                if let b = weight(2) {
                    if let out, b.shape != [out] { throw fail(b, "[\(out)] (one bias per output channel)") }
                    if out == nil && b.shape.count != 1 { throw fail(b, "rank 1 [out]") }
                }
            case .batchNormalization:
                var channels: Int?
                for i in 1...4 {
                    guard let p = weight(i) else { continue }
                    guard p.shape.count == 1 else { throw fail(p, "rank 1 [C]") }
                    if let c = channels, p.shape[0] != c { throw fail(p, "[\(c)] like the other BatchNormalization parameters") }
                    channels = p.shape[0]
                }
            case .quant:
                try checkSingle(3, "bit width")
            case .trunc:
                try checkSingle(3, "input bit width")
                try checkSingle(node.inputs.count - 1, "output bit width")
            case .multiThreshold:
                if let t = weight(1), t.shape.count != 2 { throw fail(t, "rank 2 [channels, thresholds]") }
            default:
                break
            }
        }
        for key in Safetensors.sortedNames(quantizers.keys) {
            guard let spec = quantizers[key], let axis = spec.axis, let shape = shapes[key] else { continue }
            let context = "quantizer \(GraphError.quote(key))"
            guard axis < shape.count else {
                throw GraphError(.invalidQuantizer(problem: "axis \(axis) is outside tensor shape \(GraphError.shape(shape))"),
                                 context: context)
            }
            guard spec.scale.count == 1 || spec.scale.count == shape[axis] else {
                throw GraphError(.invalidQuantizer(
                    problem: "\(spec.scale.count) scales for \(shape[axis]) channels on axis \(axis)"), context: context)
            }
        }
    }

    static func describe(_ range: ClosedRange<Int>) -> String {
        range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
    }

    static func checkAttributes(of node: Node) throws {
        func fail(_ attribute: String, _ problem: String) -> GraphError {
            GraphError(.invalidAttribute(node: node.name, attribute: attribute, problem: problem))
        }
        let kinds = node.op.attributeKinds
        for name in kinds.keys.sorted() {
            guard let kind = kinds[name], let value = node.attributes[name] else { continue }
            guard kind.accepts(value) else { throw fail(name, "must be \(kind.rawValue), found \(value)") }
        }
        let a = node.attributes
        func positive(_ name: String) throws {
            if let v = a[name]?.intsValue, v.contains(where: { $0 < 1 }) { throw fail(name, "must be all ≥ 1, found \(AttributeValue.ints(v))") }
        }
        func nonNegative(_ name: String) throws {
            if let v = a[name]?.intsValue, v.contains(where: { $0 < 0 }) { throw fail(name, "must be all ≥ 0, found \(AttributeValue.ints(v))") }
        }
        func flag(_ name: String) throws {
            if let v = a[name]?.intValue, v != 0 && v != 1 { throw fail(name, "must be 0 or 1, found \(v)") }
        }
        switch node.op {
        case .conv, .maxPool:
            try positive("strides")
            try positive("dilations")
            try positive("kernel_shape")
            try nonNegative("pads")
            if let pads = a["pads"]?.intsValue, pads.count % 2 != 0 {
                throw fail("pads", "must have a begin and an end per spatial axis, found \(pads.count) values")
            }
            if let g = a["group"]?.intValue, g < 1 { throw fail("group", "must be ≥ 1, found \(g)") }
            if node.op == .maxPool && a["kernel_shape"] == nil { throw fail("kernel_shape", "is required for MaxPool") }
        case .batchNormalization:
            if let eps = a["epsilon"]?.floatValue, eps < 0 { throw fail("epsilon", "must be ≥ 0, found \(eps)") }
        case .reshape:
            if let shape = a["shape"]?.intsValue {
                if shape.contains(where: { $0 < -1 }) { throw fail("shape", "entries must be ≥ −1, found \(AttributeValue.ints(shape))") }
                if shape.filter({ $0 == -1 }).count > 1 { throw fail("shape", "may infer (−1) at most one dimension") }
            } else if node.inputs.count < 2 {
                throw fail("shape", "is required when Reshape has no shape input")
            }
        case .transpose:
            if let perm = a["perm"]?.intsValue, perm.sorted() != Array(0..<perm.count) {
                throw fail("perm", "must be a permutation of 0..<\(perm.count), found \(AttributeValue.ints(perm))")
            }
        case .dropout:
            if let r = a["ratio"]?.floatValue, !(0..<1).contains(r) { throw fail("ratio", "must be in [0, 1), found \(r)") }
        case .quant, .trunc:
            try flag("signed")
            try flag("narrow")
            if let mode = a["rounding_mode"]?.stringValue, RoundingMode(qonnxName: mode) == nil {
                throw fail("rounding_mode", "is \(GraphError.quote(mode)), known: "
                           + RoundingMode.allCases.map(\.rawValue).joined(separator: ", "))
            }
        default:
            break
        }
    }
}
