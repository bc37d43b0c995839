import Foundation
import QForgeNN
import QForgeTensor

/// Which layers get which quantizers.
///
/// Every Dense and Conv2d gets `weights`, every ReLU becomes a QuantReLU with `activations`,
/// every Sigmoid and Tanh a QuantTableActivation (a lookup table in the integer model) at the
/// activation width, and an input quantizer (`input`, 8-bit unsigned by default; signed when the model
/// standardises its inputs) goes in front. `overrides`
/// replaces the weight or activation width of single layers by their dotted path in the float
/// model (`layers.3`), for mixed precision. BatchNorm, pooling and the rest stay float.
public struct QuantPolicy: Sendable {
    public var weights: QuantizerSettings
    public var activations: QuantizerSettings
    public var input: QuantizerSettings?
    public var weightBits: [String: Int]
    public var activationBits: [String: Int]
    /// Weights of this width or less take their scale from mean|w| instead of max|w| when
    /// `weights.source` is `.maxAbs`: at 2 bits a max|w| scale rounds most weights to zero
    /// (Brevitas's CNN collapsed so). 0 turns the rule off.
    public var meanScaleUpTo: Int
    /// Quantize biases to this many bits (2…32, typically 32) at input scale × weight scale
    /// (`biasScaling` .accumulator) or at their own scale (.own, a power of two when
    /// `weights.powerOfTwo`); nil keeps them float.
    public var biasBits: Int?
    public var biasScaling: BiasQuantizer.Scaling = .accumulator

    public init(weights: QuantizerSettings, activations: QuantizerSettings,
                input: QuantizerSettings? = QuantizerSettings.activations(bits: 8),
                weightBits: [String: Int] = [:], activationBits: [String: Int] = [:], meanScaleUpTo: Int = 2) {
        self.weights = weights; self.activations = activations; self.input = input
        self.weightBits = weightBits; self.activationBits = activationBits; self.meanScaleUpTo = meanScaleUpTo
        biasBits = nil
    }

    /// The anchors' recipe: `wbits`-bit signed narrow per-tensor weights from max|w| (mean|w|
    /// at 2 bits and below), `abits`-bit unsigned learned activations, 8-bit unsigned input.
    public static func uniform(weightBits: Int, activationBits: Int, perChannel: Bool = false, powerOfTwo: Bool = false,
                               zeroPoint: QuantizerSettings.ZeroPointMode = .zero) -> QuantPolicy {
        var activations = QuantizerSettings.activations(bits: activationBits, powerOfTwo: powerOfTwo)
        var input = QuantizerSettings.activations(bits: 8, powerOfTwo: powerOfTwo)
        activations.zeroPoint = zeroPoint
        input.zeroPoint = zeroPoint
        return QuantPolicy(weights: .weights(bits: weightBits, perChannel: perChannel, powerOfTwo: powerOfTwo),
                           activations: activations, input: input)
    }
}

/// Swaps a float model's layers for quantized ones by the policy. The quantized layers share
/// the float layers' parameters (quantization-aware training starts from the float weights).
public func quantize(_ model: Model, policy: QuantPolicy) throws -> Model {
    let paths = model.network.layers.indices.map { "layers.\($0)" }
    for path in Set(policy.weightBits.keys).union(policy.activationBits.keys) where !paths.contains(path) {
        throw QuantError.unknownLayer(path: path, known: paths)
    }
    var layers: [any Layer] = []
    if var input = policy.input {
        // Standardised inputs (regression models) are signed: an unsigned grid without a zero
        // point would clip half of them.
        if model.inputScaler != nil && input.zeroPoint == .zero || input.bitWidth == 32 { input.signed = true }
        try input.validate("input quantizer", activation: true)
        layers.append(QuantIdentity(input))
    }
    for (i, layer) in model.network.layers.enumerated() {
        let path = paths[i]
        var w = policy.weights, a = policy.activations
        if let b = policy.weightBits[path] { w.bitWidth = b }
        if w.source == .maxAbs && w.bitWidth <= policy.meanScaleUpTo { w.source = .meanAbs }
        // One signed bit has no positive level: 1-bit weights are bipolar (±mean|w|).
        if w.bitWidth == 1 && w.signed && !w.bipolar && w.nested == nil {
            w = .bipolarWeights(perChannel: w.perChannel, powerOfTwo: w.powerOfTwo)
        }
        if let b = policy.activationBits[path] { a.bitWidth = b }
        // 32-bit activations are int32 registers (seed 000): a signed grid, which a ReLU keeps
        // non-negative (codes are int32, so an unsigned grid ends at 31 bits).
        if a.bitWidth == 32 { a.signed = true }
        func bias(_ has: Bool) throws -> BiasQuantizer? {
            guard let bits = policy.biasBits, has else { return nil }
            guard (2...32).contains(bits) else { throw QuantError.badBitWidth(bits, context: "\(path) bias", allowed: 2...32) }
            return BiasQuantizer(bits: bits, scaling: policy.biasScaling, powerOfTwo: w.powerOfTwo)
        }
        switch layer {
        case let d as Dense:
            try w.validate("\(path) weights")
            layers.append(QuantDense(d, quantizer: Quantizer(w), bias: try bias(d.bias != nil)))
        case let c as Conv2d:
            try w.validate("\(path) weights")
            layers.append(QuantConv2d(c, quantizer: Quantizer(w), bias: try bias(c.bias != nil)))
        case is ReLU:
            try a.validate("\(path) activations", activation: true)
            layers.append(QuantReLU(a))
        case is Sigmoid, is Tanh:  // a lookup table in the integer model
            guard (2...16).contains(a.bitWidth) else {
                throw QuantError.unsupported("\(path): a quantized sigmoid or tanh becomes a lookup table of 2^bits entries; use 2…16 activation bits, not \(a.bitWidth)")
            }
            layers.append(QuantTableActivation(layer is Sigmoid ? .sigmoid : .tanh, bits: a.bitWidth, powerOfTwo: a.powerOfTwo))
        case is QuantizedLayer:
            throw QuantError.unsupported("\(path) is already quantized")
        default:
            layers.append(layer)
        }
    }
    try linkBiasQuantizers(layers)
    var q = model
    q.network = Sequential(layers)
    return q
}

/// Points every bias quantizer at the quantizer of its layer's input: the last activation
/// quantizer before it, through max-pool, flatten and dropout (which keep the scale).
func linkBiasQuantizers(_ layers: [any Layer]) throws {
    var current: Quantizer?
    for (i, layer) in layers.enumerated() {
        switch layer {
        case let q as QuantIdentity: current = q.quantizer
        case let q as QuantReLU: current = q.quantizer
        case let q as QuantTableActivation: current = q.quantizer
        case is MaxPool2d, is Flatten, is Dropout: break
        case let l as any WeightQuantizedLayer:
            try link(l.biasQuantizer, current, i)
            current = nil
        default: current = nil
        }
    }
    func link(_ b: BiasQuantizer?, _ input: Quantizer?, _ i: Int) throws {
        guard let b else { return }
        guard let input else {
            throw QuantError.unsupported("layers.\(i): a quantized bias needs a quantized input (an activation quantizer right before the layer)")
        }
        b.input = input
    }
}
