import Foundation
import QForgeData
import QForgeGraph
import QForgeTensor

// A model saves as a QForge graph: one node per layer (named by the layer's dotted path),
// weights as initializers under their dotted paths (PyTorch layout), and the model's own
// facts (task, input shape, scalers) in the graph's metadata. Loading rebuilds the layers
// from the graph, so training can continue from a file.

/// What a layer writes into a graph when it lowers itself (quantized layers, in QForgeQuant).
public struct GraphBuilder {
    public var nodes: [Node] = []
    public var tensors: [String: Tensor] = [:]
    public var quantizers: [String: QuantizerSpec] = [:]
    public var metadata: [String: String] = [:]
    public init() {}
}

/// A layer that writes its own nodes: returns the name of its output value. Node names are the
/// layer's path (`layers.3`) for the main node and `layers.3/<part>` for the others.
public protocol GraphLowerable {
    func lower(into graph: inout GraphBuilder, name: String, input: String, inputShape: [Int]) throws -> String
}

/// Rebuilds a layer from its group of nodes (all nodes named `layers.i` or `layers.i/…`), or
/// returns nil when the group is not one it knows.
public protocol GraphLayerReader {
    func read(_ group: [Node], graph: Graph, tensors: [String: Tensor]) throws -> (any Layer)?
}

extension Model {
    static let metaTask = "qforge.task", metaInput = "qforge.input_shape"
    static let metaInputScaler = "qforge.input_scaler", metaTargetScaler = "qforge.target_scaler"

    /// The model as a graph plus its tensors (parameters and BatchNorm statistics).
    public func lowered() throws -> (graph: Graph, tensors: [String: Tensor]) {
        var b = GraphBuilder()
        for (path, t) in namedTensors { b.tensors[path] = t }
        var current = "input"
        var shape = inputShape
        for (i, layer) in network.layers.enumerated() {
            let name = "layers.\(i)"
            let out = name + ".out"
            let outShape = (try? layer.outputShape(for: shape)) ?? shape
            if let custom = layer as? GraphLowerable {
                current = try custom.lower(into: &b, name: name, input: current, inputShape: shape)
                shape = outShape
                continue
            }
            guard let spec = layer.spec else {
                throw ModelError.notAChain(reason: "layers[\(i)] (\(type(of: layer))) cannot be saved in a float model file")
            }
            switch spec {
            case let .dense(_, _, bias):
                if shape.count > 1 {
                    // Dense flattens its input; the graph says so explicitly.
                    b.nodes.append(Node(name: name + "/flatten", op: .flatten, inputs: [current], outputs: [name + ".flat"],
                                      attributes: ["axis": .int(1)]))
                    current = name + ".flat"
                }
                b.nodes.append(Node(name: name, op: .gemm, inputs: [current, name + ".weight"] + (bias ? [name + ".bias"] : []),
                                  outputs: [out], attributes: ["transB": .int(1)]))
            case let .conv2d(_, _, k, s, p, bias):
                b.nodes.append(Node(name: name, op: .conv, inputs: [current, name + ".weight"] + (bias ? [name + ".bias"] : []),
                                  outputs: [out], attributes: ["kernel_shape": .ints([k, k]), "strides": .ints([s, s]),
                                                               "pads": .ints([p, p, p, p]), "dilations": .ints([1, 1]), "group": .int(1)]))
            case let .batchNorm(_, momentum, epsilon):
                b.nodes.append(Node(name: name, op: .batchNormalization,
                                  inputs: [current] + ["weight", "bias", "running_mean", "running_var"].map { "\(name).\($0)" },
                                  outputs: [out], attributes: ["epsilon": .float(epsilon), "momentum": .float(momentum)]))
            case .relu: b.nodes.append(Node(name: name, op: .relu, inputs: [current], outputs: [out], attributes: [:]))
            case .sigmoid: b.nodes.append(Node(name: name, op: .sigmoid, inputs: [current], outputs: [out], attributes: [:]))
            case .tanh: b.nodes.append(Node(name: name, op: .tanh, inputs: [current], outputs: [out], attributes: [:]))
            case .flatten: b.nodes.append(Node(name: name, op: .flatten, inputs: [current], outputs: [out], attributes: ["axis": .int(1)]))
            case let .maxPool2d(k, s):
                b.nodes.append(Node(name: name, op: .maxPool, inputs: [current], outputs: [out],
                                  attributes: ["kernel_shape": .ints([k, k]), "strides": .ints([s, s]), "pads": .ints([0, 0, 0, 0])]))
            case let .dropout(p):
                b.nodes.append(Node(name: name, op: .dropout, inputs: [current], outputs: [out], attributes: ["ratio": .float(p)]))
            case .sequential:
                throw ModelError.notAChain(reason: "layers[\(i)] is a nested Sequential; list its layers in the outer one")
            }
            current = out
            shape = outShape
        }
        var metadata = b.metadata
        metadata.merge([Model.metaTask: task.rawValue, Model.metaInput: inputShape.map(String.init).joined(separator: ",")]) { $1 }
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        if let s = inputScaler, let d = try? enc.encode(s) { metadata[Model.metaInputScaler] = String(decoding: d, as: UTF8.self) }
        if let s = targetScaler, let d = try? enc.encode(s) { metadata[Model.metaTargetScaler] = String(decoding: d, as: UTF8.self) }
        let graph = Graph(name: name,
                          inputs: [ValueInfo(name: "input", shape: [nil] + inputShape.map { Optional($0) })],
                          outputs: [ValueInfo(name: current, shape: [nil] + outputShape.map { Optional($0) })],
                          nodes: b.nodes, initializers: b.tensors.keys.sorted(), quantizers: b.quantizers, metadata: metadata)
        return (graph, b.tensors)
    }

    /// Saves as a QForge model file (safetensors + graph).
    public func save(to path: String) throws {
        let (graph, tensors) = try lowered()
        try ModelFile.save(graph: graph, tensors: tensors, to: path)
    }

    /// Loads a QForge model file and rebuilds its layers.
    public static func load(from path: String, readers: [any GraphLayerReader] = []) throws -> Model {
        let (graph, tensors, _) = try ModelFile.load(path)
        do {
            return try Model(graph: graph, tensors: tensors, readers: readers)
        } catch let e as ModelError {
            throw ModelError.inFile(path: path, e)
        }
    }

    /// Rebuilds a model from a graph of the shape `lowered()` writes: a chain of layers, each a
    /// group of nodes named `layers.i` (and `layers.i/…`). `readers` rebuild the groups that
    /// are not float layers (quantized layers).
    public init(graph: Graph, tensors: [String: Tensor], readers: [any GraphLayerReader] = []) throws {
        guard let input = graph.inputs.first, graph.inputs.count == 1 else {
            throw ModelError.notAChain(reason: "the graph has \(graph.inputs.count) inputs, QForge layers take one")
        }
        let inputShape = input.shape.dropFirst().map { $0 ?? 0 }
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelError.notAChain(reason: "input '\(input.name)' has no fixed sample shape (\(input.shape))")
        }
        var groups: [(key: String, nodes: [Node])] = []
        for node in graph.nodes {
            let key = String(node.name.split(separator: "/", maxSplits: 1).first ?? "")
            if groups.last?.key == key { groups[groups.count - 1].nodes.append(node) } else { groups.append((key, [node])) }
        }
        var layers: [any Layer] = []
        var current = input.name
        var shape = Array(inputShape)
        for (key, group) in groups {
            guard group.contains(where: { $0.inputs.first == current }) else {
                throw ModelError.notAChain(reason: "node \(group[0].name) (\(group[0].op.rawValue)) does not take the previous layer's output '\(current)'")
            }
            current = group.last?.outputs.first ?? current
            var layer: (any Layer)? = nil
            for reader in readers where layer == nil { layer = try reader.read(group, graph: graph, tensors: tensors) }
            if layer == nil {
                // A float layer: its main node (helper nodes such as Dense's explicit flatten aside).
                guard let main = group.first(where: { $0.name == key }) else {
                    throw ModelError.notAChain(reason: "layer \(key) has no node named \(key)")
                }
                guard let float = try Model.floatLayer(from: main, tensors: tensors) else { continue }
                layer = float
            }
            do { shape = try layer!.outputShape(for: shape) } catch let e as ModelError { throw e.at(layer: layers.count) }
            layers.append(layer!)
        }
        let task = ModelDescription.Task(rawValue: graph.metadata[Model.metaTask] ?? "") ?? .classification
        let dec = JSONDecoder()
        let inScaler = graph.metadata[Model.metaInputScaler].flatMap { try? dec.decode(Standardizer.self, from: Data($0.utf8)) }
        let outScaler = graph.metadata[Model.metaTargetScaler].flatMap { try? dec.decode(Standardizer.self, from: Data($0.utf8)) }
        self.init(name: graph.name, network: Sequential(layers), inputShape: Array(inputShape), task: task,
                  inputScaler: inScaler, targetScaler: outScaler)
    }

    /// The float layer of one node (nil for Identity), with its weights from `tensors`; `weight`
    /// replaces the weight input (a quantized layer's float weight behind its Quant node).
    public static func floatLayer(from node: Node, tensors: [String: Tensor], weight: Tensor? = nil) throws -> (any Layer)? {
        func tensor(_ name: String) throws -> Tensor {
            guard let t = tensors[name] else { throw ModelError.notAChain(reason: "node \(node.name) needs tensor '\(name)', which the file lacks") }
            return t
        }
        func weightTensor() throws -> Tensor { try weight ?? tensor(node.inputs[1]) }
        let layer: any Layer
        switch node.op {
        case .gemm:
            layer = Dense(weight: try weightTensor(), bias: node.inputs.count > 2 ? try tensor(node.inputs[2]) : nil)
        case .conv:
            let k = node.attributes["kernel_shape"]?.intsValue ?? []
            let s = node.attributes["strides"]?.intsValue ?? [1, 1]
            let p = node.attributes["pads"]?.intsValue ?? [0, 0, 0, 0]
            guard k.count == 2, k[0] == k[1], s.count == 2, s[0] == s[1], p.count == 4, Set(p).count == 1,
                  (node.attributes["group"]?.intValue ?? 1) == 1 else {
                throw ModelError.notAChain(reason: "node \(node.name): only square kernels, equal strides and equal pads are supported")
            }
            layer = Conv2d(weight: try weightTensor(), bias: node.inputs.count > 2 ? try tensor(node.inputs[2]) : nil,
                           stride: s[0], padding: p[0])
        case .batchNormalization:
            guard node.inputs.count == 5 else { throw ModelError.notAChain(reason: "node \(node.name): BatchNormalization needs 5 inputs") }
            let gamma = try tensor(node.inputs[1])
            let bn = BatchNorm(features: gamma.count, momentum: node.attributes["momentum"]?.floatValue ?? 0.1,
                               epsilon: node.attributes["epsilon"]?.floatValue ?? 1e-5)
            bn.gamma.assign(gamma)
            bn.beta.assign(try tensor(node.inputs[2]))
            bn.runningMean.value = try tensor(node.inputs[3])
            bn.runningVariance.value = try tensor(node.inputs[4])
            layer = bn
        case .relu: layer = ReLU()
        case .sigmoid: layer = Sigmoid()
        case .tanh: layer = Tanh()
        case .flatten: layer = Flatten()
        case .maxPool:
            let k = node.attributes["kernel_shape"]?.intsValue ?? []
            let s = node.attributes["strides"]?.intsValue ?? k
            guard k.count == 2, k[0] == k[1], s.count == 2, s[0] == s[1] else {
                throw ModelError.notAChain(reason: "node \(node.name): only square max-pool windows are supported")
            }
            layer = MaxPool2d(kernel: k[0], stride: s[0])
        case .dropout: layer = Dropout(node.attributes["ratio"]?.floatValue ?? 0.5)
        case .identity: return nil
        default:
            throw ModelError.notAChain(reason: "node \(node.name): op \(node.op.rawValue) has no QForge layer")
        }
        return layer
    }
}
