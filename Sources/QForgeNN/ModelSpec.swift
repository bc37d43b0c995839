import Foundation
import QForgeTensor
import Yams

/// Errors in describing or loading a model. One line each, naming the file and layer.
public indirect enum ModelError: Error, CustomStringConvertible, Equatable {
    case sizeMismatch(layer: String, expected: Int, got: [Int])
    case badInputRank(layer: String, expected: String, got: [Int])
    case kernelTooLarge(layer: String, kernel: Int, input: [Int])
    case unknownLayer(type: String, index: Int)
    case missingField(type: String, field: String, index: Int)
    case invalidField(type: String, field: String, value: String, index: Int)
    case inLayer(index: Int, ModelError)
    case inFile(path: String, ModelError)
    case unreadable(path: String, reason: String)
    case unknownPreset(String)
    case notAChain(reason: String)

    public static let knownLayers = ["Dense", "Conv2d", "BatchNorm", "ReLU", "Sigmoid", "Tanh", "MaxPool2d", "Dropout", "Flatten"]

    func at(layer index: Int) -> ModelError {
        if case .inLayer = self { return self }
        return .inLayer(index: index, self)
    }

    public var description: String {
        switch self {
        case let .sizeMismatch(layer, expected, got):
            return "\(layer) expects \(expected) input features but receives shape \(got)"
        case let .badInputRank(layer, expected, got):
            return "\(layer) needs input \(expected), receives shape \(got)"
        case let .kernelTooLarge(layer, kernel, input):
            return "\(layer) kernel \(kernel) does not fit input \(input)"
        case let .unknownLayer(type, index):
            return "layers[\(index)]: unknown layer type '\(type)' (known: \(ModelError.knownLayers.joined(separator: ", ")))"
        case let .missingField(type, field, index):
            return "layers[\(index)] (\(type)): missing field '\(field)'"
        case let .invalidField(type, field, value, index):
            return "layers[\(index)] (\(type)): invalid \(field) \(value)"
        case let .inLayer(index, inner):
            return "layers[\(index)]: \(inner)"
        case let .inFile(path, inner):
            return "\(path): \(inner)"
        case let .unreadable(path, reason):
            return "\(path): \(reason)"
        case let .unknownPreset(name):
            return "unknown preset '\(name)' (known: \(Presets.names.joined(separator: ", ")))"
        case let .notAChain(reason):
            return "graph is not a layer chain QForge can train: \(reason)"
        }
    }
}

/// The serialisable form of a layer: what model files say and what the graph stores.
public indirect enum LayerSpec: Equatable, Sendable {
    case dense(inputs: Int, outputs: Int, bias: Bool)
    case conv2d(inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int, bias: Bool)
    case batchNorm(features: Int, momentum: Float, epsilon: Float)
    case relu, sigmoid, tanh, flatten
    case maxPool2d(kernel: Int, stride: Int)
    case dropout(probability: Float)
    case sequential([LayerSpec])

    /// Builds the layer with fresh PyTorch-style initial weights.
    public func build(rng: inout SeededRandom) -> any Layer {
        switch self {
        case let .dense(i, o, b): return Dense(i, o, bias: b, rng: &rng)
        case let .conv2d(i, o, k, s, p, b): return Conv2d(i, o, kernel: k, stride: s, padding: p, bias: b, rng: &rng)
        case let .batchNorm(f, m, e): return BatchNorm(features: f, momentum: m, epsilon: e)
        case .relu: return ReLU()
        case .sigmoid: return Sigmoid()
        case .tanh: return Tanh()
        case .flatten: return Flatten()
        case let .maxPool2d(k, s): return MaxPool2d(kernel: k, stride: s)
        case let .dropout(p): return Dropout(p)
        case let .sequential(specs): return Sequential(specs.map { $0.build(rng: &rng) })
        }
    }
}

/// A model file as users write it (JSON or YAML):
///
///     name: my-mlp
///     input: [784]            # feature shape without the batch dimension
///     task: classification    # or regression
///     layers:
///       - {type: Dense, out: 256}
///       - {type: ReLU}
///       - {type: Dense, out: 10}
///
/// Input sizes (`in`) may be given and are then checked; otherwise they are inferred from
/// the previous layer's output shape.
///
/// Quantization-aware training: top-level `wbits` / `abits` give every Dense/Conv2d weight
/// and every ReLU activation a width, and a layer's own `wbits` (Dense, Conv2d) or `abits`
/// (ReLU) overrides it (mixed precision):
///
///     wbits: 4
///     abits: 4
///     layers:
///       - {type: Dense, out: 256, wbits: 8}   # first layer at 8 bits
///       - {type: ReLU, abits: 8}
public struct ModelDescription: Codable, Equatable, Sendable {
    public var name: String?
    public var input: [Int]
    public var task: Task?
    /// Default weight / activation widths for quantization-aware training.
    public var wbits: Int?
    public var abits: Int?
    public var layers: [LayerEntry]

    public enum Task: String, Codable, Sendable { case classification, regression }

    public struct LayerEntry: Codable, Equatable, Sendable {
        public var type: String
        public var `in`: Int?
        public var out: Int?
        public var kernel: Int?
        public var stride: Int?
        public var padding: Int?
        public var bias: Bool?
        public var p: Float?
        public var momentum: Float?
        public var eps: Float?
        /// Weight width of this Dense/Conv2d, activation width of this ReLU (QAT).
        public var wbits: Int?
        public var abits: Int?

        public init(type: String, in: Int? = nil, out: Int? = nil, kernel: Int? = nil, stride: Int? = nil,
                    padding: Int? = nil, bias: Bool? = nil, p: Float? = nil) {
            self.type = type; self.in = `in`; self.out = out; self.kernel = kernel
            self.stride = stride; self.padding = padding; self.bias = bias; self.p = p
        }
    }

    public init(name: String?, input: [Int], task: Task? = nil, layers: [LayerEntry]) {
        self.name = name; self.input = input; self.task = task; self.layers = layers
    }

    /// Reads a JSON (`.json`) or YAML (anything else) model file.
    public static func load(path: String) throws -> ModelDescription {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.unreadable(path: path, reason: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ModelError.unreadable(path: path, reason: "not UTF-8 text")
        }
        do {
            let d: ModelDescription
            if path.lowercased().hasSuffix(".json") {
                d = try JSONDecoder().decode(ModelDescription.self, from: data)
            } else {
                d = try YAMLDecoder().decode(ModelDescription.self, from: text)
            }
            _ = try d.layerSpecs()
            return d
        } catch let e as ModelError {
            throw ModelError.inFile(path: path, e)
        } catch {
            throw ModelError.unreadable(path: path, reason: "not a model description: \(shortDecodingError(error))")
        }
    }

    /// Resolves every layer's sizes by walking the shapes from the input.
    public func layerSpecs() throws -> [LayerSpec] {
        guard !input.isEmpty, input.allSatisfy({ $0 > 0 }) else {
            throw ModelError.invalidField(type: "model", field: "input", value: "\(input)", index: -1)
        }
        var shape = input
        var specs: [LayerSpec] = []
        for (i, e) in layers.enumerated() {
            func need(_ v: Int?, _ field: String) throws -> Int {
                guard let v else { throw ModelError.missingField(type: e.type, field: field, index: i) }
                guard v > 0 else { throw ModelError.invalidField(type: e.type, field: field, value: "\(v)", index: i) }
                return v
            }
            let spec: LayerSpec
            switch e.type.lowercased() {
            case "dense", "linear":
                let features = shape.reduce(1, *)
                if let given = e.in, given != features {
                    throw ModelError.inLayer(index: i, .sizeMismatch(layer: "Dense(in: \(given))", expected: given, got: shape))
                }
                spec = .dense(inputs: features, outputs: try need(e.out, "out"), bias: e.bias ?? true)
            case "conv2d", "conv":
                guard shape.count == 3 else { throw ModelError.inLayer(index: i, .badInputRank(layer: "Conv2d", expected: "[C, H, W]", got: shape)) }
                if let given = e.in, given != shape[0] {
                    throw ModelError.inLayer(index: i, .sizeMismatch(layer: "Conv2d(in: \(given))", expected: given, got: shape))
                }
                if let s = e.stride, s <= 0 { throw ModelError.invalidField(type: e.type, field: "stride", value: "\(s)", index: i) }
                if let p = e.padding, p < 0 { throw ModelError.invalidField(type: e.type, field: "padding", value: "\(p)", index: i) }
                spec = .conv2d(inChannels: shape[0], outChannels: try need(e.out, "out"), kernel: try need(e.kernel, "kernel"),
                               stride: e.stride ?? 1, padding: e.padding ?? 0, bias: e.bias ?? true)
            case "batchnorm", "batchnorm1d", "batchnorm2d":
                if let given = e.in, given != shape[0] {
                    throw ModelError.inLayer(index: i, .sizeMismatch(layer: "BatchNorm(\(given))", expected: given, got: shape))
                }
                spec = .batchNorm(features: shape[0], momentum: e.momentum ?? 0.1, epsilon: e.eps ?? 1e-5)
            case "relu": spec = .relu
            case "sigmoid": spec = .sigmoid
            case "tanh": spec = .tanh
            case "flatten": spec = .flatten
            case "maxpool2d", "maxpool":
                let k = try need(e.kernel, "kernel")
                spec = .maxPool2d(kernel: k, stride: e.stride ?? k)
            case "dropout":
                let p = e.p ?? 0.5
                guard p >= 0 && p < 1 else { throw ModelError.invalidField(type: e.type, field: "p", value: "\(p)", index: i) }
                spec = .dropout(probability: p)
            default:
                throw ModelError.unknownLayer(type: e.type, index: i)
            }
            try checkWidths(e, spec, index: i)
            var rng = SeededRandom(seed: 0)
            do { shape = try spec.build(rng: &rng).outputShape(for: shape) } catch let err as ModelError { throw err.at(layer: i) }
            specs.append(spec)
        }
        if let b = wbits, !(1...16).contains(b) { throw ModelError.invalidField(type: "model", field: "wbits", value: "\(b) (must be 1...16)", index: -1) }
        if let b = abits, !(1...32).contains(b) { throw ModelError.invalidField(type: "model", field: "abits", value: "\(b) (must be 1...32)", index: -1) }
        return specs
    }

    /// A layer's `wbits` belongs on Dense/Conv2d and `abits` on ReLU, each in 1...16.
    private func checkWidths(_ e: LayerEntry, _ spec: LayerSpec, index i: Int) throws {
        if let b = e.wbits {
            switch spec {
            case .dense, .conv2d: break
            default: throw ModelError.invalidField(type: e.type, field: "wbits", value: "\(b) (only Dense and Conv2d have weights to quantize)", index: i)
            }
            guard (1...16).contains(b) else { throw ModelError.invalidField(type: e.type, field: "wbits", value: "\(b) (must be 1...16)", index: i) }
        }
        if let b = e.abits {
            switch spec {
            case .relu, .sigmoid, .tanh: break
            default: throw ModelError.invalidField(type: e.type, field: "abits", value: "\(b) (activation widths go on ReLU, Sigmoid and Tanh layers)", index: i)
            }
            guard (1...32).contains(b) else { throw ModelError.invalidField(type: e.type, field: "abits", value: "\(b) (must be 1...32)", index: i) }
        }
    }

    /// Per-layer widths by layer path (`layers.3`), from the layers' `wbits` / `abits`.
    public var layerWidths: (weights: [String: Int], activations: [String: Int]) {
        var w: [String: Int] = [:], a: [String: Int] = [:]
        for (i, e) in layers.enumerated() {
            if let b = e.wbits { w["layers.\(i)"] = b }
            if let b = e.abits { a["layers.\(i)"] = b }
        }
        return (w, a)
    }

    /// Whether the file asks for quantization-aware training.
    public var isQuantized: Bool {
        wbits != nil || abits != nil || layers.contains { $0.wbits != nil || $0.abits != nil }
    }
}

/// The first line of a decoding error, with the coding path when there is one.
func shortDecodingError(_ error: Error) -> String {
    if let e = error as? DecodingError {
        switch e {
        case let .keyNotFound(key, ctx): return "missing key '\(key.stringValue)'\(pathText(ctx.codingPath))"
        case let .typeMismatch(_, ctx), let .valueNotFound(_, ctx), let .dataCorrupted(ctx):
            return ctx.debugDescription + pathText(ctx.codingPath)
        @unknown default: break
        }
    }
    return String(describing: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
}

private func pathText(_ path: [CodingKey]) -> String {
    path.isEmpty ? "" : " at " + path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
}
