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

/// Dense with fake-quantized weights; the bias stays float (Brevitas's default).
public struct QuantDense: QuantizedLayer {
    public let dense: Dense
    public let weightQuantizer: Quantizer

    public init(_ dense: Dense, weights: QuantizerSettings) {
        self.init(dense, quantizer: Quantizer(weights))
    }

    public init(_ dense: Dense, quantizer: Quantizer) {
        self.dense = dense
        weightQuantizer = quantizer
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.linear(x.rank == 2 ? x : x.flattened(), weight: weightQuantizer(dense.weight.value), bias: dense.bias?.value)
    }

    public var quantizers: [(String, Quantizer)] { [("weight_quant", weightQuantizer)] }
    public var namedParameters: [(String, Parameter)] { dense.namedParameters + quantizerParameters() }
    public func outputShape(for input: [Int]) throws -> [Int] { try dense.outputShape(for: input) }
}

/// Conv2d with fake-quantized weights (per tensor or per output channel).
public struct QuantConv2d: QuantizedLayer {
    public let conv: Conv2d
    public let weightQuantizer: Quantizer

    public init(_ conv: Conv2d, weights: QuantizerSettings) {
        self.init(conv, quantizer: Quantizer(weights))
    }

    public init(_ conv: Conv2d, quantizer: Quantizer) {
        self.conv = conv
        weightQuantizer = quantizer
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: weightQuantizer(conv.weight.value), bias: conv.bias?.value,
                      stride: (conv.stride, conv.stride), padding: (conv.padding, conv.padding))
    }

    public var quantizers: [(String, Quantizer)] { [("weight_quant", weightQuantizer)] }
    public var namedParameters: [(String, Parameter)] { conv.namedParameters + quantizerParameters() }
    public func outputShape(for input: [Int]) throws -> [Int] { try conv.outputShape(for: input) }
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
