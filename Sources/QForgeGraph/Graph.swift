import Foundation

/// A neural network as a dataflow graph: the hub between training, QONNX import,
/// quantization, the integer model and hardware generation.
///
/// Values are named strings. A value is a graph input, an initializer (a weight tensor kept
/// in the safetensors data under the same name, e.g. `layers.0.weight`), or the output of a
/// node. Nodes are listed in topological order: a node reads only values defined before it.
/// Ops follow ONNX / QONNX names and input orders; see `OpType` for each op's signature.
///
/// JSON form: `Codable` with the field names below, keys sorted, so the same graph always
/// gives the same bytes (`jsonData()`). `initializers`, `quantizers`, `metadata` and
/// `attributes` may be omitted when empty.
public struct Graph: Codable, Equatable, Sendable {
    public var name: String
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    public var nodes: [Node]
    /// Names of the weight tensors stored in the model file's tensor data.
    public var initializers: [String]
    /// Quantizers keyed by the name of the value they quantize (an initializer such as
    /// `layers.0.weight`, a graph input, or a node output).
    public var quantizers: [String: QuantizerSpec]
    /// Free-form string annotations (producer, training settings, …).
    public var metadata: [String: String]

    public init(name: String, inputs: [ValueInfo], outputs: [ValueInfo], nodes: [Node],
                initializers: [String] = [], quantizers: [String: QuantizerSpec] = [:],
                metadata: [String: String] = [:]) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.initializers = initializers
        self.quantizers = quantizers
        self.metadata = metadata
    }

    private enum CodingKeys: String, CodingKey {
        case name, inputs, outputs, nodes, initializers, quantizers, metadata
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        inputs = try c.decode([ValueInfo].self, forKey: .inputs)
        outputs = try c.decode([ValueInfo].self, forKey: .outputs)
        nodes = try c.decode([Node].self, forKey: .nodes)
        initializers = try c.decodeIfPresent([String].self, forKey: .initializers) ?? []
        quantizers = try c.decodeIfPresent([String: QuantizerSpec].self, forKey: .quantizers) ?? [:]
        metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata) ?? [:]
    }

    /// The node that produces `value`, if any.
    public func producer(of value: String) -> Node? {
        nodes.first { $0.outputs.contains(value) }
    }

    /// The nodes that read `value`, in graph order.
    public func consumers(of value: String) -> [Node] {
        nodes.filter { $0.inputs.contains(value) }
    }

    /// The node named `name`, if any.
    public func node(named name: String) -> Node? {
        nodes.first { $0.name == name }
    }
}

/// A graph input or output: a value name and its shape, `nil` for a dynamic dimension
/// (typically the batch). JSON: `{"name": "x", "shape": [null, 784]}`.
public struct ValueInfo: Codable, Equatable, Sendable {
    public var name: String
    public var shape: [Int?]

    public init(name: String, shape: [Int?]) {
        self.name = name
        self.shape = shape
    }
}

/// One operation. `name` is the layer's dotted path (e.g. `layers.0`), which is also the
/// prefix of its weights (`layers.0.weight`).
public struct Node: Codable, Equatable, Sendable {
    public var name: String
    public var op: OpType
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: AttributeValue]

    public init(name: String, op: OpType, inputs: [String], outputs: [String],
                attributes: [String: AttributeValue] = [:]) {
        self.name = name
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }

    private enum CodingKeys: String, CodingKey {
        case name, op, inputs, outputs, attributes
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        let opName = try c.decode(String.self, forKey: .op)
        guard let op = OpType(rawValue: opName) else {
            throw GraphError(.unknownOp(node: name, path: GraphJSON.path(decoder.codingPath), op: opName))
        }
        self.op = op
        inputs = try c.decode([String].self, forKey: .inputs)
        outputs = try c.decode([String].self, forKey: .outputs)
        attributes = try c.decodeIfPresent([String: AttributeValue].self, forKey: .attributes) ?? [:]
    }
}

/// The operations a graph can hold: what training produces and what QONNX import needs.
/// Names and input orders are ONNX's (QONNX's for the quantization ops).
///
/// | op | inputs | attributes |
/// |----|--------|------------|
/// | Gemm | x, W [out, in], b [out]? | — (y = x·Wᵀ + b) |
/// | MatMul | a, b | — |
/// | Conv | x, W [out, in/group, kh, kw], b [out]? | strides, pads [top, left, bottom, right], dilations, group, kernel_shape |
/// | BatchNormalization | x, scale, bias, mean, var | epsilon, momentum |
/// | Relu, Sigmoid, Tanh, Identity | x | — |
/// | MaxPool | x | kernel_shape (required), strides, pads, dilations, ceil_mode |
/// | Flatten | x | axis |
/// | Reshape | x, shape? | shape (when there is no second input) |
/// | Transpose | x | perm |
/// | Add, Mul | a, b | — |
/// | Softmax | x | axis |
/// | Dropout | x, ratio?, training_mode? | ratio (identity at inference) |
/// | Quant | x, scale, zeropt, bitwidth | signed, narrow, rounding_mode (QONNX IntQuant) |
/// | BipolarQuant | x, scale | — |
/// | Trunc | x, scale, zeropt, in_bitwidth, [out_scale, [out_zeropt,]] out_bitwidth | rounding_mode, signed, narrow |
/// | MultiThreshold | x, thresholds | out_dtype, out_scale, out_bias, data_layout |
public enum OpType: String, Codable, CaseIterable, Sendable {
    case gemm = "Gemm"
    case matMul = "MatMul"
    case conv = "Conv"
    case batchNormalization = "BatchNormalization"
    case relu = "Relu"
    case sigmoid = "Sigmoid"
    case tanh = "Tanh"
    case maxPool = "MaxPool"
    case flatten = "Flatten"
    case reshape = "Reshape"
    case transpose = "Transpose"
    case add = "Add"
    case mul = "Mul"
    case softmax = "Softmax"
    case dropout = "Dropout"
    case identity = "Identity"
    case quant = "Quant"
    case bipolarQuant = "BipolarQuant"
    case trunc = "Trunc"
    case multiThreshold = "MultiThreshold"
}

/// A node attribute, stored in JSON as a plain value: `3`, `0.1`, `"ROUND"`, `[3, 3]`,
/// `[0.5, 1.5]`.
///
/// JSON does not distinguish `1` from `1.0`, so decoding tries integers first: a float
/// attribute whose value is integral (e.g. `momentum: 0.0`) comes back as `.int`. The
/// accessors `floatValue` / `floatsValue` accept integers for that reason, and `==` treats
/// `.int(a)` and `.float(b)` as equal when `Float(a) == b` (likewise for the arrays), so a
/// graph compares equal to its own JSON round trip.
public enum AttributeValue: Codable, Sendable, Equatable, CustomStringConvertible,
                            ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral {
    case int(Int)
    case float(Float)
    case string(String)
    case ints([Int])
    case floats([Float])

    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Float) { self = .float(value) }
    public init(stringLiteral value: String) { self = .string(value) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self = .int(v); return }
        if let v = try? c.decode(Float.self) { self = .float(v); return }
        if let v = try? c.decode(String.self) { self = .string(v); return }
        if let v = try? c.decode([Int].self) { self = .ints(v); return }
        if let v = try? c.decode([Float].self) { self = .floats(v); return }
        throw DecodingError.dataCorruptedError(
            in: c, debugDescription: "an attribute must be an integer, a float, a string, or an array of numbers"
                + " (floats must fit in Float32)")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .float(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .ints(let v): try c.encode(v)
        case .floats(let v): try c.encode(v)
        }
    }

    /// The value of `.int`.
    public var intValue: Int? {
        if case .int(let v) = self { return v }
        return nil
    }

    /// The value of `.float`, or of `.int` converted.
    public var floatValue: Float? {
        switch self {
        case .float(let v): return v
        case .int(let v): return Float(v)
        default: return nil
        }
    }

    /// The value of `.string`.
    public var stringValue: String? {
        if case .string(let v) = self { return v }
        return nil
    }

    /// The value of `.ints` (an empty `.floats` counts as an empty list of ints).
    public var intsValue: [Int]? {
        switch self {
        case .ints(let v): return v
        case .floats(let v) where v.isEmpty: return []
        default: return nil
        }
    }

    /// The value of `.floats`, or of `.ints` converted.
    public var floatsValue: [Float]? {
        switch self {
        case .floats(let v): return v
        case .ints(let v): return v.map(Float.init)
        default: return nil
        }
    }

    public static func == (lhs: AttributeValue, rhs: AttributeValue) -> Bool {
        switch (lhs, rhs) {
        case (.int(let a), .int(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.ints(let a), .ints(let b)): return a == b
        case (.float(let a), .float(let b)): return a == b
        case (.floats(let a), .floats(let b)): return a == b
        case (.int(let a), .float(let b)), (.float(let b), .int(let a)): return Float(a) == b
        case (.ints(let a), .floats(let b)), (.floats(let b), .ints(let a)):
            return a.count == b.count && zip(a, b).allSatisfy { Float($0) == $1 }
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return String(v)
        case .string(let v): return GraphError.quote(v)
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        case .floats(let v): return "[" + v.map { String($0) }.joined(separator: ", ") + "]"
        }
    }
}

// MARK: - JSON

extension Graph {
    /// The graph as deterministic JSON (sorted keys; `prettyPrinted` adds indentation).
    /// Throws `GraphError.Kind.graphEncoding` for values JSON cannot hold (NaN, infinity).
    public func jsonData(prettyPrinted: Bool = false) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = prettyPrinted ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                                                 : [.sortedKeys, .withoutEscapingSlashes]
        do {
            return try encoder.encode(self)
        } catch let error as EncodingError {
            switch error {
            case .invalidValue(let value, let context):
                throw GraphError(.graphEncoding(path: GraphJSON.path(context.codingPath),
                                                detail: "\(value) cannot be written as JSON"))
            @unknown default:
                throw GraphError(.graphEncoding(path: "", detail: String(describing: error)))
            }
        }
    }

    /// `jsonData()` as a string.
    public func jsonString(prettyPrinted: Bool = false) throws -> String {
        String(decoding: try jsonData(prettyPrinted: prettyPrinted), as: UTF8.self)
    }

    /// Decodes a graph from JSON. Errors are `GraphError`s naming the JSON path (and the node
    /// for an unknown op); the graph is not validated (call `validate()`).
    public init(jsonData: Data) throws {
        do {
            self = try JSONDecoder().decode(Graph.self, from: jsonData)
        } catch let error as GraphError {
            throw error
        } catch let error as DecodingError {
            throw GraphJSON.graphError(error)
        } catch {
            throw GraphError(.graphJSON(path: "", detail: String(describing: error)))
        }
    }

    /// Decodes a graph from a JSON string.
    public init(jsonString: String) throws {
        try self.init(jsonData: Data(jsonString.utf8))
    }
}

enum GraphJSON {
    /// A coding path as `nodes[2].attributes.kernel_shape`.
    static func path(_ codingPath: [CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let i = key.intValue {
                out += "[\(i)]"
            } else {
                let name = key.stringValue
                let plain = !name.isEmpty && name.unicodeScalars.allSatisfy {
                    ($0.properties.isAlphabetic || $0.properties.numericType != nil || $0 == "_") && $0.isASCII
                }
                if plain {
                    out += out.isEmpty ? name : "." + name
                } else {
                    out += "[\(GraphError.quote(name))]"
                }
            }
        }
        return out
    }

    static func graphError(_ error: DecodingError) -> GraphError {
        switch error {
        case .typeMismatch(let type, let context):
            return GraphError(.graphJSON(path: path(context.codingPath),
                                         detail: "expected \(typeName(type)): \(context.debugDescription)"))
        case .valueNotFound(let type, let context):
            return GraphError(.graphJSON(path: path(context.codingPath), detail: "missing \(typeName(type))"))
        case .keyNotFound(let key, let context):
            return GraphError(.graphJSON(path: path(context.codingPath),
                                         detail: "missing key \(GraphError.quote(key.stringValue))"))
        case .dataCorrupted(let context):
            var detail = context.debugDescription
            if let underlying = context.underlyingError { detail += " (\(underlying.localizedDescription))" }
            return GraphError(.graphJSON(path: path(context.codingPath), detail: detail))
        @unknown default:
            return GraphError(.graphJSON(path: "", detail: String(describing: error)))
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type: return "an integer"
        case is Bool.Type: return "a boolean"
        case is Float.Type, is Double.Type: return "a number"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") || name.hasPrefix("[") { return "an array" }
            if name.hasPrefix("Dictionary") || name.contains(":") { return "an object" }
            return "an object"
        }
    }
}
