import Foundation
import QForgeGraph
import QForgeNN
import QForgeTensor

// Quantized layers in the graph, as Brevitas exports QONNX: a `Quant` node (inputs x, scale,
// zero point, bit width; attributes signed, narrow, rounding_mode) on each quantized value —
// weights before their Gemm/Conv, activations after their Relu, the network input. The
// scale, zero point and bit width are initializers named `<layer>.<quantizer>.scale` etc.; the
// graph's `quantizers` map holds the same facts per quantized value, and the metadata keeps
// QForge's training settings (`qforge.quant.<node>`) so training can continue from the file.

enum QuantGraph {
    static let metaPrefix = "qforge.quant."

    /// Writes a Quant node with settings `s` applied to `input`, named `node`, and returns its
    /// output. Nested weights are stored at their outer width; the window is in the settings.
    static func emit(_ s: QuantizerSettings, scale: [Float], scaleShape: [Int], zeroPoint: Float = 0, input: String,
                     prefix: String, node: String, into b: inout GraphBuilder) throws -> String {
        let out = node.replacingOccurrences(of: "/", with: ".") + ".q"
        // The file holds the scale itself; a power-of-two quantizer's trained log2 is not needed.
        b.tensors.removeValue(forKey: "\(prefix).log2_scale")
        b.tensors["\(prefix).scale"] = Tensor(shape: scaleShape, scalars: scale)
        b.metadata[metaPrefix + node] = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
        if s.bipolar {
            b.nodes.append(Node(name: node, op: .bipolarQuant, inputs: [input, "\(prefix).scale"], outputs: [out]))
            b.quantizers[out] = QuantizerSpec(bitWidth: 1, scale: scale, axis: scale.count > 1 ? 0 : nil, kind: .bipolar,
                                              scaleIsPowerOfTwo: s.powerOfTwo)
            return out
        }
        b.tensors.removeValue(forKey: "\(prefix).zero_point")  // the file holds the rounded zero point as zeropt
        b.tensors["\(prefix).zeropt"] = Tensor(shape: [1], scalars: [zeroPoint])
        b.tensors["\(prefix).bitwidth"] = Tensor(shape: [1], scalars: [Float(s.bitWidth)])
        b.nodes.append(Node(name: node, op: .quant,
                            inputs: [input, "\(prefix).scale", "\(prefix).zeropt", "\(prefix).bitwidth"], outputs: [out],
                            attributes: ["signed": .int(s.signed ? 1 : 0), "narrow": .int(s.narrow ? 1 : 0),
                                         "rounding_mode": .string(s.rounding.rawValue)]))
        b.quantizers[out] = QuantizerSpec(bitWidth: s.bitWidth, signed: s.signed, narrow: s.narrow, roundingMode: s.rounding,
                                          scale: scale, zeroPoint: [zeroPoint], axis: scale.count > 1 ? 0 : nil,
                                          scaleIsPowerOfTwo: s.powerOfTwo)
        return out
    }

    /// How a bias quantizer scales (metadata of its Quant node when not the default).
    struct BiasSettings: Codable { var scaling: BiasQuantizer.Scaling; var powerOfTwo: Bool }

    /// A quantized bias as a Quant node (`<layer>/bias_quant`: scale = input scale × weight
    /// scale per channel, zero point 0, signed, `bits` wide, as Brevitas exports `Int32Bias`);
    /// returns the value the layer reads as its bias.
    static func emitBias(_ q: BiasQuantizer?, bias: Parameter?, weightScale: [Float], channels: Int, name: String, into b: inout GraphBuilder) -> String {
        guard let q else { return "\(name).bias" }
        let prefix = "\(name).bias_quant", node = "\(name)/bias_quant"
        let values = bias?.value.detached.scalars ?? []
        b.tensors["\(prefix).scale"] = Tensor(shape: [channels], scalars: q.scale(bias: values, weightScale: weightScale, channels: channels))
        if q.scaling == .own {  // how to rebuild it (the default, accumulator scaling, needs no note)
            b.metadata[metaPrefix + node] = String(decoding: try! JSONEncoder().encode(BiasSettings(scaling: q.scaling, powerOfTwo: q.powerOfTwo)), as: UTF8.self)
        }
        b.tensors["\(prefix).zeropt"] = Tensor(shape: [1], scalars: [0])
        b.tensors["\(prefix).bitwidth"] = Tensor(shape: [1], scalars: [Float(q.bits)])
        b.nodes.append(Node(name: node, op: .quant, inputs: ["\(name).bias", "\(prefix).scale", "\(prefix).zeropt", "\(prefix).bitwidth"],
                            outputs: ["\(prefix).q"], attributes: ["signed": .int(1), "narrow": .int(0), "rounding_mode": .string("ROUND")]))
        return "\(prefix).q"
    }

    /// The settings a Quant node was written with: QForge's metadata, else (a file from
    /// elsewhere, such as an imported QONNX model) its attributes with the file's scale fixed.
    static func settings(of node: Node, graph: Graph, weight: Bool) throws -> QuantizerSettings {
        if let json = graph.metadata[metaPrefix + node.name] {
            do { return try JSONDecoder().decode(QuantizerSettings.self, from: Data(json.utf8)) } catch {
                throw ModelError.notAChain(reason: "node \(node.name): unreadable quantizer settings in the metadata")
            }
        }
        let signed = node.attributes["signed"]?.intValue == 1, narrow = node.attributes["narrow"]?.intValue == 1
        let rounding = node.attributes["rounding_mode"]?.stringValue.flatMap(RoundingMode.init(qonnxName:)) ?? .round
        return QuantizerSettings(bitWidth: 0, signed: signed, narrow: narrow, rounding: rounding, source: .fixed)
    }

    /// A quantizer with the file's scale(s) fixed, for a node without QForge settings; an
    /// activation with a non-zero zero point keeps scale and zero point as loaded values.
    static func fixedQuantizer(_ s: QuantizerSettings, node: Node, tensors: [String: Tensor], weight: Bool) throws -> Quantizer {
        var s = s
        let scale = try tensor(node.inputs[1], tensors, node)
        guard scale.count >= 1, scale.scalars.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw ModelError.notAChain(reason: "node \(node.name): scales must be positive numbers, found \(scale.scalars.prefix(8))")
        }
        s.perChannel = scale.count > 1
        s.powerOfTwo = scale.scalars.allSatisfy { $0 == Float(sign: .plus, exponent: $0.exponent, significand: 1) }
        if !s.bipolar, !weight, let zero = tensors[node.inputs[2]], zero.count == 1, zero.item != 0 {
            guard zero.item.isFinite, zero.item == zero.item.rounded(), scale.count == 1 else {
                throw ModelError.notAChain(reason: "node \(node.name): the zero point must be one integer with one scale, found \(zero.scalars.prefix(4))")
            }
            s.source = .learned
            s.zeroPoint = .learned
            try s.validate(node.name, activation: true)
            return Quantizer(s, scale: scale.item, zeroPoint: zero.item)
        }
        try s.validate(node.name, activation: !weight)
        return Quantizer(s, fixedScale: scale)
    }

    static func tensor(_ name: String, _ tensors: [String: Tensor], _ node: Node) throws -> Tensor {
        guard let t = tensors[name] else { throw ModelError.notAChain(reason: "node \(node.name) needs tensor '\(name)', which the file lacks") }
        return t
    }

    /// A quantizer rebuilt from its Quant node: settings, bit width, and the learned scale.
    static func quantizer(from node: Node, graph: Graph, tensors: [String: Tensor], weight: Bool) throws -> Quantizer {
        if node.op == .bipolarQuant && !weight {  // a bipolar activation: ±scale, one scale from the file
            var s = QuantizerSettings.bipolarWeights()
            s.source = .fixed
            let scale = try tensor(node.inputs[1], tensors, node)
            guard scale.count == 1 else {
                throw ModelError.notAChain(reason: "node \(node.name): a bipolar activation needs one scale (per tensor), found \(scale.count)")
            }
            return try fixedQuantizer(s, node: node, tensors: tensors, weight: false)
        }
        if node.op == .bipolarQuant {
            var s = QuantizerSettings.bipolarWeights()
            guard graph.metadata[metaPrefix + node.name] != nil else {
                s.source = .fixed
                return try fixedQuantizer(s, node: node, tensors: tensors, weight: true)
            }
            s = try settings(of: node, graph: graph, weight: true)
            try s.validate(node.name)
            return Quantizer(s)
        }
        var s = try settings(of: node, graph: graph, weight: weight)
        let bits = try tensor(node.inputs[3], tensors, node)
        guard bits.count == 1, let b = Int(exactly: bits.item), (1...32).contains(b) else {
            throw ModelError.notAChain(reason: "node \(node.name): bit width \(bits.scalars) is not an integer in 1...32")
        }
        s.bitWidth = b
        if graph.metadata[metaPrefix + node.name] == nil { return try fixedQuantizer(s, node: node, tensors: tensors, weight: weight) }
        try s.validate(node.name, activation: !weight)
        if s.source == .learned {
            let scale = try tensor(node.inputs[1], tensors, node)
            guard scale.count == 1, scale.item > 0, scale.item.isFinite else {
                throw ModelError.notAChain(reason: "node \(node.name): a learned scale must be one positive number, found \(scale.scalars)")
            }
            let zero = try tensor(node.inputs[2], tensors, node)
            guard zero.count == 1, zero.item.isFinite, zero.item == zero.item.rounded() else {
                throw ModelError.notAChain(reason: "node \(node.name): the zero point must be one integer, found \(zero.scalars.prefix(4))")
            }
            if s.zeroPoint == .zero && zero.item != 0 { s.zeroPoint = .learned }
            return Quantizer(s, scale: scale.item, zeroPoint: zero.item)
        }
        if s.source == .fixed {
            let scale = try tensor(node.inputs[1], tensors, node)
            guard scale.count >= 1, scale.scalars.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw ModelError.notAChain(reason: "node \(node.name): scales must be positive numbers, found \(scale.scalars.prefix(8))")
            }
            return Quantizer(s, fixedScale: scale)
        }
        return Quantizer(s)
    }
}

extension QuantIdentity: GraphLowerable {
    public func lower(into b: inout GraphBuilder, name: String, input: String, inputShape: [Int]) throws -> String {
        let scale = quantizer.scaleValues(for: Tensor(zeros: [1]))
        return try QuantGraph.emit(quantizer.settings, scale: scale, scaleShape: [1], zeroPoint: quantizer.zeroPoint.item,
                                   input: input, prefix: "\(name).act_quant", node: name, into: &b)
    }
}

extension QuantReLU: GraphLowerable {
    public func lower(into b: inout GraphBuilder, name: String, input: String, inputShape: [Int]) throws -> String {
        b.nodes.append(Node(name: name, op: .relu, inputs: [input], outputs: ["\(name).out"], attributes: [:]))
        let scale = quantizer.scaleValues(for: Tensor(zeros: [1]))
        return try QuantGraph.emit(quantizer.settings, scale: scale, scaleShape: [1], zeroPoint: quantizer.zeroPoint.item,
                                   input: "\(name).out", prefix: "\(name).act_quant",
                                   node: "\(name)/act_quant", into: &b)
    }
}

extension QuantTableActivation: GraphLowerable {
    public func lower(into b: inout GraphBuilder, name: String, input: String, inputShape: [Int]) throws -> String {
        let pre = try QuantGraph.emit(inputQuantizer.settings, scale: inputQuantizer.scaleValues(for: Tensor(zeros: [1])), scaleShape: [1],
                                      zeroPoint: inputQuantizer.zeroPoint.item, input: input, prefix: "\(name).input_quant",
                                      node: "\(name)/input_quant", into: &b)
        b.nodes.append(Node(name: name, op: function == .sigmoid ? .sigmoid : .tanh, inputs: [pre], outputs: ["\(name).out"], attributes: [:]))
        return try QuantGraph.emit(quantizer.settings, scale: quantizer.scaleValues(for: Tensor(zeros: [1])), scaleShape: [1],
                                   input: "\(name).out", prefix: "\(name).act_quant", node: "\(name)/act_quant", into: &b)
    }
}

extension QuantDense: GraphLowerable {
    public func lower(into b: inout GraphBuilder, name: String, input: String, inputShape: [Int]) throws -> String {
        let w = dense.weight.value.detached
        let scale = weightQuantizer.scaleValues(for: w)
        let wq = try QuantGraph.emit(weightQuantizer.resolvedSettings(for: w), scale: scale, scaleShape: scale.count > 1 ? [scale.count, 1] : [1],
                                     input: "\(name).weight", prefix: "\(name).weight_quant", node: "\(name)/weight_quant", into: &b)
        var x = input
        if inputShape.count > 1 {
            b.nodes.append(Node(name: "\(name)/flatten", op: .flatten, inputs: [input], outputs: ["\(name).flat"], attributes: ["axis": .int(1)]))
            x = "\(name).flat"
        }
        let bias = QuantGraph.emitBias(biasQuantizer, bias: dense.bias, weightScale: scale, channels: dense.weight.value.shape[0], name: name, into: &b)
        b.nodes.append(Node(name: name, op: .gemm, inputs: [x, wq] + (dense.bias != nil ? [bias] : []),
                            outputs: ["\(name).out"], attributes: ["transB": .int(1)]))
        return "\(name).out"
    }
}

extension QuantConv2d: GraphLowerable {
    public func lower(into b: inout GraphBuilder, name: String, input: String, inputShape: [Int]) throws -> String {
        let w = conv.weight.value.detached
        let scale = weightQuantizer.scaleValues(for: w)
        let wq = try QuantGraph.emit(weightQuantizer.resolvedSettings(for: w), scale: scale, scaleShape: scale.count > 1 ? [scale.count, 1, 1, 1] : [1],
                                     input: "\(name).weight", prefix: "\(name).weight_quant", node: "\(name)/weight_quant", into: &b)
        let (k, s, p) = (conv.kernel, conv.stride, conv.padding)
        let bias = QuantGraph.emitBias(biasQuantizer, bias: conv.bias, weightScale: scale, channels: conv.weight.value.shape[0], name: name, into: &b)
        b.nodes.append(Node(name: name, op: .conv, inputs: [input, wq] + (conv.bias != nil ? [bias] : []),
                            outputs: ["\(name).out"],
                            attributes: ["kernel_shape": .ints([k, k]), "strides": .ints([s, s]), "pads": .ints([p, p, p, p]),
                                         "dilations": .ints([1, 1]), "group": .int(1)]))
        return "\(name).out"
    }
}

/// Rebuilds QuantIdentity, QuantReLU, QuantDense and QuantConv2d from their node groups, and
/// the file-defined ThresholdActivation (MultiThreshold) and TruncActivation (Trunc).
public struct QuantLayerReader: GraphLayerReader {
    public init() {}

    public func read(_ group: [Node], graph: Graph, tensors: [String: Tensor]) throws -> (any Layer)? {
        if let layer = try FileActivationReader.read(group, tensors: tensors) { return layer }
        guard let quant = group.first(where: { $0.op == .quant || $0.op == .bipolarQuant }) else { return nil }
        guard quant.inputs.count == (quant.op == .quant ? 4 : 2) else {
            throw ModelError.notAChain(reason: "node \(quant.name): \(quant.op.rawValue) needs \(quant.op == .quant ? 4 : 2) inputs")
        }
        let ops = group.map(\.op)
        if ops == [.quant] || ops == [.bipolarQuant] {
            return QuantIdentity(quantizer: try QuantGraph.quantizer(from: quant, graph: graph, tensors: tensors, weight: false))
        }
        if ops.count == 3, ops[0] == .quant, ops[2] == .quant, ops[1] == .sigmoid || ops[1] == .tanh {
            return QuantTableActivation(ops[1] == .sigmoid ? .sigmoid : .tanh,
                                        inputQuantizer: try QuantGraph.quantizer(from: group[0], graph: graph, tensors: tensors, weight: false),
                                        quantizer: try QuantGraph.quantizer(from: group[2], graph: graph, tensors: tensors, weight: false))
        }
        if ops == [.relu, .quant] {
            return QuantReLU(quantizer: try QuantGraph.quantizer(from: quant, graph: graph, tensors: tensors, weight: false))
        }
        guard let main = group.last, main.op == .gemm || main.op == .conv, main.inputs.count >= 2, main.inputs[1] == quant.outputs.first else {
            throw ModelError.notAChain(reason: "node \(quant.name): a Quant node QForge cannot place (ops \(ops.map(\.rawValue)))")
        }
        let q = try QuantGraph.quantizer(from: quant, graph: graph, tensors: tensors, weight: true)
        let weight = try QuantGraph.tensor(quant.inputs[0], tensors, quant)
        // A quantized bias: read the float bias under its Quant node, and its width.
        var node = main, biasQuantizer: BiasQuantizer?
        if main.inputs.count > 2, let bq = group.first(where: { $0.op == .quant && $0.outputs.first == main.inputs[2] }) {
            let bits = try QuantGraph.tensor(bq.inputs[3], tensors, bq)
            guard bits.count == 1, let b = Int(exactly: bits.item), (2...32).contains(b) else {
                throw ModelError.notAChain(reason: "node \(bq.name): bias bit width \(bits.scalars.prefix(2)) is not an integer in 2...32")
            }
            node.inputs[2] = bq.inputs[0]
            var own = QuantGraph.BiasSettings(scaling: .accumulator, powerOfTwo: false)
            if let json = graph.metadata[QuantGraph.metaPrefix + bq.name] {
                guard let s = try? JSONDecoder().decode(QuantGraph.BiasSettings.self, from: Data(json.utf8)) else {
                    throw ModelError.notAChain(reason: "node \(bq.name): unreadable bias quantizer settings in the metadata")
                }
                own = s
            }
            biasQuantizer = BiasQuantizer(bits: b, scaling: own.scaling, powerOfTwo: own.powerOfTwo)
        }
        let float = try Model.floatLayer(from: node, tensors: tensors, weight: weight)
        if let d = float as? Dense { return QuantDense(d, quantizer: q, bias: biasQuantizer) }
        if let c = float as? Conv2d { return QuantConv2d(c, quantizer: q, bias: biasQuantizer) }
        return nil
    }
}

extension Model {
    /// Loads a model file that may hold quantized layers: a QForge model file, or an ONNX /
    /// QONNX file (`.onnx`), imported (`importONNX`).
    public static func loadAny(from path: String) throws -> Model {
        if path.lowercased().hasSuffix(".onnx") { return try importONNX(from: path) }
        let m = try Model.load(from: path, readers: [QuantLayerReader()])
        try linkBiasQuantizers(m.network.layers)
        return m
    }

    /// Imports an ONNX or QONNX file (`ONNXImport`) and rebuilds its layers; imported
    /// quantizers keep the file's scales fixed.
    public static func importONNX(from path: String) throws -> Model {
        let (graph, tensors) = try ONNXImport.load(path)
        return try Model(imported: graph, tensors: tensors, path: path)
    }

    /// The layers of an imported graph (`ONNXImport.read`); `path` names it in errors.
    public init(imported graph: Graph, tensors: [String: Tensor], path: String) throws {
        do {
            self = try Model(graph: graph, tensors: tensors, readers: [QuantLayerReader()])
        } catch let e as ModelError {
            throw ModelError.inFile(path: path, e)
        }
        try linkBiasQuantizers(network.layers)
        // QForge recomputes a quantized bias's scale as input scale × weight scale (Brevitas's
        // Int32Bias); a file whose bias scales are anything else would silently change.
        for (i, layer) in network.layers.enumerated() {
            guard let l = layer as? any WeightQuantizedLayer, let bq = l.biasQuantizer, let bias = l.bias?.value.detached,
                  let file = tensors["layers.\(i).bias_quant.scale"] else { continue }
            let ours = bq.scale(bias: bias.scalars, weightScale: l.weightQuantizer.scaleValues(for: l.weight.value.detached), channels: bias.count)
            for (c, (a, b)) in zip(ours, file.scalars.count == 1 ? [Float](repeating: file.scalars[0], count: ours.count) : file.scalars).enumerated()
            where abs(a - b) > 1e-6 * abs(b) {
                throw ModelError.inFile(path: path, .notAChain(reason: "node layers.\(i)/bias_quant: bias scale \(b) (channel \(c)) is not the input scale × weight scale \(a); QForge quantizes biases at the accumulator scale (Brevitas Int32Bias), so this bias quantizer cannot be imported as it is"))
            }
        }
    }
}
