import Foundation

/// Every error the graph target reports: reading or writing safetensors, decoding the graph
/// JSON, validating a graph or a quantizer, and loading or saving a model file.
///
/// The description is one line: the file (when there is one), the context (when there is
/// one, e.g. the quantizer being checked), then the problem. Names taken from a file are
/// quoted, escaped and shortened, so a hostile name cannot break the line or flood a log:
///
///     model.safetensors: corrupt safetensors: header length 1234567 exceeds file size 2048
///     model.safetensors: tensor 'layers.0.weight' has shape [256, 784] but data_offsets cover 4 bytes (F32 needs 802816)
///     quantizer 'layers.0.weight': bit width 33 is outside 1…32
///
/// Tests and callers match on `kind`; `file` and `context` say where it happened.
public struct GraphError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file the error is about, as the caller named it (nil for in-memory work).
    public var file: String?
    /// Where inside the model, when `kind` alone does not say (e.g. "quantizer 'fc.weight'").
    public var context: String?
    /// What went wrong.
    public var kind: Kind

    public init(_ kind: Kind, file: String? = nil, context: String? = nil) {
        self.kind = kind
        self.file = file
        self.context = context
    }

    /// The same error attributed to `file`, unless it already names one.
    public func inFile(_ path: String?) -> GraphError {
        var copy = self
        if copy.file == nil { copy.file = path }
        return copy
    }

    /// The same error inside `context`, unless it already has one.
    public func inContext(_ where: String) -> GraphError {
        var copy = self
        if copy.context == nil { copy.context = `where` }
        return copy
    }

    public var description: String {
        var parts: [String] = []
        if let file { parts.append(GraphError.oneLine(file)) }
        if let context { parts.append(GraphError.oneLine(context)) }
        parts.append(kind.message)
        return parts.joined(separator: ": ")
    }

    /// The problems, one case each. Associated values carry what the message needs and what a
    /// test wants to assert.
    public enum Kind: Equatable, Sendable {
        // MARK: File access
        /// The file could not be opened or read; `reason` is the system's message.
        case cannotRead(reason: String)
        /// The file (or its temporary sibling) could not be written or renamed.
        case cannotWrite(reason: String)

        // MARK: Safetensors container
        /// Fewer than the 8 bytes of the header length.
        case fileTooShort(size: Int)
        /// The 8-byte header length points past the end of the file.
        case headerLengthExceedsFile(headerLength: UInt64, fileSize: Int)
        /// The header bytes are not valid UTF-8.
        case headerNotUTF8
        /// The header is not valid JSON; `detail` says what and where.
        case headerNotJSON(detail: String)
        /// The header is JSON but not an object starting at its first byte; `found` says what it is.
        case headerNotObject(found: String)
        /// `__metadata__` is not an object.
        case metadataNotObject(found: String)
        /// A `__metadata__` value is not a string.
        case metadataValueNotString(key: String, found: String)
        /// The same key twice in the header.
        case duplicateHeaderKey(String)
        /// A tensor entry is not a JSON object.
        case entryNotObject(tensor: String, found: String)
        /// A tensor entry lacks `dtype`, `shape` or `data_offsets`.
        case missingField(tensor: String, field: String)
        /// A tensor entry field has the wrong form.
        case invalidField(tensor: String, field: String, problem: String)
        /// A dtype this reader does not know.
        case unknownDType(tensor: String, dtype: String)
        /// The element count or byte size of a shape does not fit in an Int.
        case shapeOverflow(tensor: String, shape: [Int])
        /// `data_offsets` run backwards or past the end of the data section.
        case offsetsOutOfRange(tensor: String, begin: Int, end: Int, dataLength: Int)
        /// `data_offsets` cover a different number of bytes than shape × dtype size.
        case sizeMismatch(tensor: String, shape: [Int], dtype: String, expectedBytes: Int, actualBytes: Int)
        /// Two tensors share bytes.
        case overlappingTensors(tensor: String, begin: Int, previous: String, previousEnd: Int)
        /// Unused bytes between tensors (the first tensor must start at 0).
        case gapBeforeTensor(tensor: String, begin: Int, expectedBegin: Int)
        /// The data section is longer than the tensors (trailing bytes).
        case dataLengthMismatch(dataLength: Int, tensorsEnd: Int)
        /// No tensor of that name in the file.
        case tensorNotFound(name: String)
        /// An integer accessor was used on a floating-point tensor.
        case notIntegerDType(tensor: String, dtype: String)
        /// An unsigned 64-bit value does not fit in Int.
        case integerOutOfRange(tensor: String, value: UInt64)
        /// The writer refuses this tensor name (empty, or `__metadata__`).
        case invalidTensorName(name: String, problem: String)
        /// The writer got the same name as a float and as an integer tensor.
        case duplicateTensorName(String)

        // MARK: Graph JSON
        /// The graph JSON could not be decoded; `path` is the JSON path (e.g. `nodes[2].inputs`).
        case graphJSON(path: String, detail: String)
        /// The graph could not be encoded (e.g. a NaN attribute or scale).
        case graphEncoding(path: String, detail: String)
        /// A node's `op` is not an `OpType`.
        case unknownOp(node: String, path: String, op: String)
        /// An enumerated string (rounding mode, quantizer kind) with an unknown value.
        case unknownValue(what: String, path: String, value: String, known: [String])

        // MARK: Graph structure
        /// A name that must not be empty is empty; `what` says whose.
        case emptyName(what: String)
        /// Two nodes share a name.
        case duplicateNodeName(String)
        /// A value name defined twice; `by` and `previous` say where ("node 'fc1'", "graph input", …).
        case valueRedefined(value: String, by: String, previous: String)
        /// A node reads a value that is not defined before it.
        case undefinedInput(node: String, input: String)
        /// A node has the wrong number of inputs for its op.
        case wrongInputCount(node: String, op: String, count: Int, expected: String)
        /// A node has the wrong number of outputs for its op.
        case wrongOutputCount(node: String, op: String, count: Int, expected: String)
        /// A node attribute has the wrong type or value, or a required one is missing.
        case invalidAttribute(node: String, attribute: String, problem: String)
        /// A graph output that no node, input or initializer defines.
        case undefinedGraphOutput(String)
        /// The same graph output listed twice.
        case duplicateGraphOutput(String)
        /// A graph input with a negative dimension.
        case invalidInputShape(input: String, shape: [Int?])
        /// A quantizer keyed by a name that is not a value of the graph.
        case quantizerTargetUnknown(String)

        // MARK: Quantizer
        /// Bit width outside 1…32.
        case bitWidthOutOfRange(Int)
        /// A scale that is not finite and positive.
        case invalidScale(index: Int, value: Float)
        /// Zero-point count neither 1 nor the scale count.
        case scaleZeroPointMismatch(scales: Int, zeroPoints: Int)
        /// Any other inconsistent quantizer setting.
        case invalidQuantizer(problem: String)

        // MARK: Model file
        /// The file has no `qforge_graph` metadata: it holds weights only.
        case noGraph
        /// A graph initializer with no tensor in the file.
        case missingInitializer(String)
        /// A weight tensor whose shape does not fit the node using it.
        case initializerShape(node: String, tensor: String, shape: [Int], expected: String)
        /// `extraMetadata` tried to set a key `ModelFile` owns.
        case reservedMetadataKey(String)

        // MARK: ONNX / QONNX
        /// The bytes are not an ONNX ModelProto (protobuf decoding failed, or no graph).
        case notONNX(detail: String)
        /// A node QForge cannot import or export; `need` says what would make it work.
        case unsupportedNode(node: String, op: String, need: String)
        /// Any other problem with an ONNX model (a tensor's data, an external-data file, a shape).
        case onnx(problem: String)

        /// The problem in one line, without file or context.
        public var message: String {
            let q = GraphError.quote
            switch self {
            case .cannotRead(let reason):
                return "cannot read: \(GraphError.oneLine(reason))"
            case .cannotWrite(let reason):
                return "cannot write: \(GraphError.oneLine(reason))"
            case .fileTooShort(let size):
                return "corrupt safetensors: file is \(size) bytes, shorter than the 8-byte header length"
            case .headerLengthExceedsFile(let n, let size):
                return "corrupt safetensors: header length \(n) exceeds file size \(size)"
                    + " (8 + header length must be at most the file size)"
            case .headerNotUTF8:
                return "corrupt safetensors: header is not valid UTF-8"
            case .headerNotJSON(let detail):
                return "corrupt safetensors: header is not valid JSON: \(GraphError.oneLine(detail))"
            case .headerNotObject(let found):
                return "corrupt safetensors: header must be a JSON object starting at its first byte, found \(found)"
            case .metadataNotObject(let found):
                return "corrupt safetensors: __metadata__ must be an object of strings, found \(found)"
            case .metadataValueNotString(let key, let found):
                return "corrupt safetensors: __metadata__ value \(q(key)) must be a string, found \(found)"
            case .duplicateHeaderKey(let key):
                return "corrupt safetensors: key \(q(key)) appears twice in the header"
            case .entryNotObject(let t, let found):
                return "corrupt safetensors: tensor \(q(t)) must be an object with dtype, shape and data_offsets, found \(found)"
            case .missingField(let t, let field):
                return "corrupt safetensors: tensor \(q(t)) has no \(field)"
            case .invalidField(let t, let field, let problem):
                return "corrupt safetensors: tensor \(q(t)) \(field) \(problem)"
            case .unknownDType(let t, let dtype):
                return "corrupt safetensors: tensor \(q(t)) has unknown dtype \(q(dtype))"
                    + " (known: \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))"
            case .shapeOverflow(let t, let shape):
                return "corrupt safetensors: tensor \(q(t)) shape \(GraphError.shape(shape)) is too large"
            case .offsetsOutOfRange(let t, let b, let e, let length):
                return "corrupt safetensors: tensor \(q(t)) data_offsets [\(b), \(e)] are outside the \(length)-byte data section"
            case .sizeMismatch(let t, let shape, let dtype, let expected, let actual):
                return "tensor \(q(t)) has shape \(GraphError.shape(shape)) but data_offsets cover \(actual) bytes"
                    + " (\(dtype) needs \(expected))"
            case .overlappingTensors(let t, let b, let previous, let previousEnd):
                return "corrupt safetensors: tensor \(q(t)) begins at byte \(b), inside tensor \(q(previous))"
                    + " which ends at \(previousEnd)"
            case .gapBeforeTensor(let t, let b, let expected):
                return "corrupt safetensors: tensor \(q(t)) begins at byte \(b) but the data before it ends at \(expected)"
                    + " (gaps are not allowed)"
            case .dataLengthMismatch(let length, let end):
                return "corrupt safetensors: data section is \(length) bytes but the tensors end at \(end)"
                    + " (trailing bytes are not allowed)"
            case .tensorNotFound(let name):
                return "no tensor \(q(name))"
            case .notIntegerDType(let t, let dtype):
                return "tensor \(q(t)) is \(dtype), not an integer dtype"
            case .integerOutOfRange(let t, let value):
                return "tensor \(q(t)) holds \(value), which does not fit in a 64-bit signed Int"
            case .invalidTensorName(let name, let problem):
                return "invalid tensor name \(q(name)): \(problem)"
            case .duplicateTensorName(let name):
                return "tensor name \(q(name)) is given both as a float and as an integer tensor"
            case .graphJSON(let path, let detail):
                return "invalid graph JSON at \(path.isEmpty ? "top level" : path): \(GraphError.oneLine(detail))"
            case .graphEncoding(let path, let detail):
                return "cannot encode graph at \(path.isEmpty ? "top level" : path): \(GraphError.oneLine(detail))"
            case .unknownOp(let node, let path, let op):
                return "unknown op \(q(op)) in node \(q(node)) (\(path))"
                    + " (known: \(OpType.allCases.map(\.rawValue).joined(separator: ", ")))"
            case .unknownValue(let what, let path, let value, let known):
                return "unknown \(what) \(q(value)) at \(path) (known: \(known.joined(separator: ", ")))"
            case .emptyName(let what):
                return "\(what) has an empty name"
            case .duplicateNodeName(let name):
                return "two nodes are named \(q(name))"
            case .valueRedefined(let value, let by, let previous):
                return "value \(q(value)) defined by \(by) is already defined by \(previous)"
            case .undefinedInput(let node, let input):
                return "node \(q(node)) input \(q(input)) is not a graph input, an initializer,"
                    + " or the output of an earlier node"
            case .wrongInputCount(let node, let op, let count, let expected):
                return "node \(q(node)) (\(op)) has \(count) input\(count == 1 ? "" : "s"), expected \(expected)"
            case .wrongOutputCount(let node, let op, let count, let expected):
                return "node \(q(node)) (\(op)) has \(count) output\(count == 1 ? "" : "s"), expected \(expected)"
            case .invalidAttribute(let node, let attribute, let problem):
                return "node \(q(node)) attribute \(q(attribute)) \(problem)"
            case .undefinedGraphOutput(let name):
                return "graph output \(q(name)) is not produced by any node, input or initializer"
            case .duplicateGraphOutput(let name):
                return "graph output \(q(name)) is listed twice"
            case .invalidInputShape(let input, let shape):
                let dims = shape.map { $0.map(String.init) ?? "?" }.joined(separator: ", ")
                return "graph input \(q(input)) has a negative dimension in shape [\(dims)]"
            case .quantizerTargetUnknown(let name):
                return "quantizer \(q(name)) names no graph input, initializer or node output"
            case .bitWidthOutOfRange(let bits):
                return "bit width \(bits) is outside 1…32"
            case .invalidScale(let index, let value):
                return "scale[\(index)] = \(value) must be finite and greater than 0"
            case .scaleZeroPointMismatch(let scales, let zeroPoints):
                return "\(scales) scale value\(scales == 1 ? "" : "s") but \(zeroPoints) zero point\(zeroPoints == 1 ? "" : "s")"
                    + " (need 1 zero point or one per scale)"
            case .invalidQuantizer(let problem):
                return GraphError.oneLine(problem)
            case .noGraph:
                return "has no QForge graph (no 'qforge_graph' in __metadata__); ModelFile.loadWeights reads its tensors"
            case .missingInitializer(let name):
                return "initializer \(q(name)) named by the graph has no tensor"
            case .initializerShape(let node, let tensor, let shape, let expected):
                return "node \(q(node)) tensor \(q(tensor)) has shape \(GraphError.shape(shape)), expected \(expected)"
            case .reservedMetadataKey(let key):
                return "metadata key \(q(key)) is reserved for ModelFile"
            case .notONNX(let detail):
                return "not an ONNX model: \(GraphError.oneLine(detail)) (expected an .onnx file: a protobuf ModelProto with a graph)"
            case .unsupportedNode(let node, let op, let need):
                return "node \(q(node)) (\(GraphError.oneLine(op))): \(GraphError.oneLine(need))"
            case .onnx(let problem):
                return GraphError.oneLine(problem)
            }
        }
    }

    // MARK: Formatting helpers

    /// Longest name or detail shown before it is cut with "…".
    static let maxShown = 160

    /// `s` in single quotes, control characters and quotes escaped, at most `maxShown` characters.
    static func quote(_ s: String) -> String {
        var out = "'"
        var shown = 0
        for scalar in s.unicodeScalars {
            if shown >= maxShown { out += "…"; break }
            switch scalar {
            case "'": out += "\\'"
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value)
                    || scalar == "\u{2028}" || scalar == "\u{2029}" {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
            shown += 1
        }
        return out + "'"
    }

    /// `s` with line breaks and control characters replaced by spaces, cut to a sane length.
    static func oneLine(_ s: String) -> String {
        var out = ""
        var shown = 0
        for scalar in s.unicodeScalars {
            if shown >= 4 * maxShown { out += "…"; break }
            if scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{2028}" || scalar == "\u{2029}" {
                out += " "
            } else {
                out.unicodeScalars.append(scalar)
            }
            shown += 1
        }
        return out
    }

    static func shape(_ shape: [Int]) -> String {
        let dims = shape.prefix(16).map(String.init).joined(separator: ", ")
        return "[\(dims)\(shape.count > 16 ? ", …" : "")]"
    }
}
