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
    func quantizerParameters() -> [(String, Parameter)] {
        quantizers.flatMap { name, q -> [(String, Parameter)] in
            (q.parameter.map { [("\(name).\(q.settings.powerOfTwo ? "log2_scale" : "scale")", $0)] } ?? [])
                + (q.zeroPointParameter.map { [("\(name).zero_point", $0)] } ?? [])
        }
    }
}

/// A bias quantized to `bits`-bit signed integers at the accumulator's scale: input scale ×
/// weight scale (per output channel), as Brevitas's `Int32Bias`. The integer model adds such a
/// bias to the accumulator exactly.
public final class BiasQuantizer {
    public let bits: Int
    /// The quantizer of the layer's input (set when the model is quantized or loaded).
    public var input: Quantizer?

    public init(bits: Int, input: Quantizer? = nil) { self.bits = bits; self.input = input }

    /// The bias scale per output channel: input scale × weight scale, in Float32.
    public func scale(weightScale: [Float], channels: Int) -> [Float] {
        let s: Float = input.map { q in q.scaleValues(for: Tensor(zeros: [1]))[0] } ?? 1
        return (0..<channels).map { s * weightScale[weightScale.count == 1 ? 0 : $0] }
    }

    /// The fake-quantized bias (straight-through gradient inside the range).
    func callAsFunction(_ bias: Tensor, weightScale: [Float]) -> Tensor {
        let s = scale(weightScale: weightScale, channels: bias.count)
        return bias.fakeQuantized(scale: Tensor(shape: [bias.count], scalars: s), zeroPoint: Tensor(shape: [1], scalars: [0]),
                                  grid: IntQuantGrid(bitWidth: bits, signed: true))
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
