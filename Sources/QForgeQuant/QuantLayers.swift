import Foundation
import QForgeNN
import QForgeTensor

/// A layer that quantizes something: its quantizers by name (`weight_quant`, `act_quant`).
public protocol QuantizedLayer: Layer {
    var quantizers: [(String, Quantizer)] { get }
}

extension QuantizedLayer {
    /// Quantized layers are not described by the float `LayerSpec`.
    public var spec: LayerSpec? { nil }

    /// Learned scales are parameters too, under `<quantizer>.scale` (`<quantizer>.log2_scale`
    /// for power-of-two scales, which train log2), and learned zero points under
    /// `<quantizer>.zero_point`.
    ///
    /// Grids wider than 24 bits keep their calibrated scale untrained: at 2^31 levels the LSQ
    /// gradient carries nothing, and one optimizer step of the learning rate's size would wreck
    /// a scale near 1e−9.
    func quantizerParameters() -> [(String, Parameter)] {
        quantizers.flatMap { name, q -> [(String, Parameter)] in
            (q.settings.bitWidth > 24 ? [] : q.parameter.map { [("\(name).\(q.settings.powerOfTwo ? "log2_scale" : "scale")", $0)] } ?? [])
                + (q.zeroPointParameter.map { [("\(name).zero_point", $0)] } ?? [])
        }
    }
}

/// A bias quantized to `bits`-bit signed integers, at one of two scales:
/// - `.accumulator`: input scale × weight scale per output channel, as Brevitas's `Int32Bias`.
///   The integer model adds such a bias to the accumulator exactly.
/// - `.own`: a per-tensor scale of its own, max|b| / (2^(bits−1) − 1), rounded up to a power of
///   two when `powerOfTwo` (seed 000's 4-bit biases). The integer model adds it exactly when
///   that scale is a whole multiple of input scale × weight scale (power-of-two scales at
///   least as coarse); thresholds are exact in any case.
public final class BiasQuantizer {
    public enum Scaling: String, Codable, Sendable { case accumulator, own }

    public let bits: Int
    public let scaling: Scaling
    public let powerOfTwo: Bool
    /// The quantizer of the layer's input (set when the model is quantized or loaded).
    public var input: Quantizer?

    public init(bits: Int, scaling: Scaling = .accumulator, powerOfTwo: Bool = false, input: Quantizer? = nil) {
        self.bits = bits; self.scaling = scaling; self.powerOfTwo = powerOfTwo; self.input = input
    }

    var grid: IntQuantGrid { IntQuantGrid(bitWidth: bits, signed: true) }

    /// The bias scale per output channel, in Float32: input scale × weight scale, or the
    /// bias's own scale from max|b|.
    public func scale(bias: [Float], weightScale: [Float], channels: Int) -> [Float] {
        switch scaling {
        case .accumulator:
            let s: Float = input.map { q in q.scaleValues(for: Tensor(zeros: [1]))[0] } ?? 1
            return (0..<channels).map { s * weightScale[weightScale.count == 1 ? 0 : $0] }
        case .own:
            let m = bias.reduce(Float(0)) { Swift.max($0, abs($1)) }
            var s = Swift.max(m, 1e-8) / Float(grid.maxInt)
            if powerOfTwo { s = exp2f(log2f(s).rounded(.up)) }  // up: max|b| never clips
            return [Float](repeating: s, count: channels)
        }
    }

    /// The fake-quantized bias (straight-through gradient inside the range).
    func callAsFunction(_ bias: Tensor, weightScale: [Float]) -> Tensor {
        let s = scale(bias: bias.detached.scalars, weightScale: weightScale, channels: bias.count)
        return bias.fakeQuantized(scale: Tensor(shape: [bias.count], scalars: s), zeroPoint: Tensor(shape: [1], scalars: [0]), grid: grid)
    }
}

/// Dense or Conv2d with fake-quantized weights and a float or quantized bias.
public protocol WeightQuantizedLayer: QuantizedLayer {
    /// The float layer whose parameters this layer quantizes (shared with it).
    var floatLayer: any Layer { get }
    var weight: Parameter { get }
    var bias: Parameter? { get }
    var weightQuantizer: Quantizer { get }
    var biasQuantizer: BiasQuantizer? { get }
    /// The same layer with another weight quantizer; the bias quantizer is kept.
    func replacingWeightQuantizer(_ quantizer: Quantizer) -> Self
}

extension WeightQuantizedLayer {
    public var quantizers: [(String, Quantizer)] { [("weight_quant", weightQuantizer)] }
    public var namedParameters: [(String, Parameter)] { floatLayer.namedParameters + quantizerParameters() }
    public func outputShape(for input: [Int]) throws -> [Int] { try floatLayer.outputShape(for: input) }

    /// The weight and bias the forward pass uses: fake-quantized weight; the bias float, or
    /// fake-quantized at input scale × weight scale.
    func quantizedWeightAndBias() -> (weight: Tensor, bias: Tensor?) {
        let w = weight.value
        guard let b = bias?.value else { return (weightQuantizer(w), nil) }
        return (weightQuantizer(w), biasQuantizer.map { $0(b, weightScale: weightQuantizer.scaleValues(for: w)) } ?? b)
    }
}

/// Dense with fake-quantized weights; the bias stays float (Brevitas's default) or is quantized
/// at the accumulator's scale (`biasQuantizer`).
public struct QuantDense: WeightQuantizedLayer {
    public let dense: Dense
    public let weightQuantizer: Quantizer
    public let biasQuantizer: BiasQuantizer?

    public init(_ dense: Dense, weights: QuantizerSettings) {
        self.init(dense, quantizer: Quantizer(weights))
    }

    public init(_ dense: Dense, quantizer: Quantizer, bias: BiasQuantizer? = nil) {
        self.dense = dense
        weightQuantizer = quantizer
        biasQuantizer = bias
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (w, b) = quantizedWeightAndBias()
        return Tensor.linear(x.rank == 2 ? x : x.flattened(), weight: w, bias: b)
    }

    public var floatLayer: any Layer { dense }
    public var weight: Parameter { dense.weight }
    public var bias: Parameter? { dense.bias }
    public func replacingWeightQuantizer(_ quantizer: Quantizer) -> QuantDense { QuantDense(dense, quantizer: quantizer, bias: biasQuantizer) }
}

/// Conv2d with fake-quantized weights (per tensor or per output channel) and a float or
/// quantized bias.
public struct QuantConv2d: WeightQuantizedLayer {
    public let conv: Conv2d
    public let weightQuantizer: Quantizer
    public let biasQuantizer: BiasQuantizer?

    public init(_ conv: Conv2d, weights: QuantizerSettings) {
        self.init(conv, quantizer: Quantizer(weights))
    }

    public init(_ conv: Conv2d, quantizer: Quantizer, bias: BiasQuantizer? = nil) {
        self.conv = conv
        weightQuantizer = quantizer
        biasQuantizer = bias
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (w, b) = quantizedWeightAndBias()
        return Tensor.conv2d(x, weight: w, bias: b, stride: (conv.stride, conv.stride), padding: (conv.padding, conv.padding))
    }

    public var floatLayer: any Layer { conv }
    public var weight: Parameter { conv.weight }
    public var bias: Parameter? { conv.bias }
    public func replacingWeightQuantizer(_ quantizer: Quantizer) -> QuantConv2d { QuantConv2d(conv, quantizer: quantizer, bias: biasQuantizer) }
}

/// Quantizes its input (the network's input quantizer, or an activation without ReLU).
public struct QuantIdentity: QuantizedLayer {
    public let quantizer: Quantizer

    public init(_ settings: QuantizerSettings) { quantizer = Quantizer(settings) }
    public init(quantizer: Quantizer) { self.quantizer = quantizer }

    public func callAsFunction(_ x: Tensor) -> Tensor { quantizer(x) }
    public var quantizers: [(String, Quantizer)] { [("act_quant", quantizer)] }
    public var namedParameters: [(String, Parameter)] { quantizerParameters() }
    public func outputShape(for input: [Int]) throws -> [Int] { input }
}

/// ReLU followed by an (unsigned) activation quantizer.
public struct QuantReLU: QuantizedLayer {
    public let quantizer: Quantizer

    public init(_ settings: QuantizerSettings) { quantizer = Quantizer(settings) }
    public init(quantizer: Quantizer) { self.quantizer = quantizer }

    public func callAsFunction(_ x: Tensor) -> Tensor { quantizer(x.relu()) }
    public var quantizers: [(String, Quantizer)] { [("act_quant", quantizer)] }
    public var namedParameters: [(String, Parameter)] { quantizerParameters() }
    public func outputShape(for input: [Int]) throws -> [Int] { input }
}

/// A sigmoid or tanh between two quantizers, as the integer model runs it with a lookup table
/// (seed 003): `inputQuantizer` (signed, learned scale) quantizes the pre-activation, the
/// function applies in Float32, and `quantizer` puts the result on a fixed grid that spans
/// the function's range: sigmoid unsigned with scale 1/(2^b − 1) (2^−b when power-of-two),
/// tanh signed narrow with scale 1/(2^(b−1) − 1) (2^−(b−1)).
public struct QuantTableActivation: QuantizedLayer {
    public enum Function: String, Sendable { case sigmoid, tanh }
    public let function: Function
    public let inputQuantizer: Quantizer
    public let quantizer: Quantizer

    public init(_ function: Function, inputQuantizer: Quantizer, quantizer: Quantizer) {
        self.function = function; self.inputQuantizer = inputQuantizer; self.quantizer = quantizer
    }

    /// The function with a `bits`-bit learned input quantizer and a `bits`-bit output grid.
    public init(_ function: Function, bits: Int, powerOfTwo: Bool = false) {
        var input = QuantizerSettings.activations(bits: bits, powerOfTwo: powerOfTwo)
        input.signed = true
        let output = QuantizerSettings(bitWidth: bits, signed: function == .tanh, narrow: function == .tanh,
                                       powerOfTwo: powerOfTwo, source: .fixed)
        let levels = Float(function == .tanh ? (1 << (bits - 1)) - 1 : (1 << bits) - 1)
        let scale = powerOfTwo ? exp2f(-log2f(levels + 1)) : 1 / levels
        self.init(function, inputQuantizer: Quantizer(input), quantizer: Quantizer(output, fixedScale: Tensor(shape: [1], scalars: [scale])))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = inputQuantizer(x)
        return quantizer(function == .sigmoid ? h.sigmoid() : h.tanh())
    }

    public var quantizers: [(String, Quantizer)] { [("input_quant", inputQuantizer), ("act_quant", quantizer)] }
    public var namedParameters: [(String, Parameter)] { quantizerParameters() }
    public func outputShape(for input: [Int]) throws -> [Int] { input }
}
