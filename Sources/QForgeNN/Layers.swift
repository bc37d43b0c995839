import Foundation
import QForgeTensor

/// A trainable tensor with a stable dotted path (`layers.0.weight`). Layers are structs that
/// hold parameters by reference, so an optimizer updates them in place and every copy of a
/// layer sees the update.
public final class Parameter {
    public var value: Tensor

    public init(_ value: Tensor) { self.value = value.trackingGradients() }

    public var gradient: Tensor? { value.gradient }
    public func zeroGradient() { value.zeroGradient() }

    /// Replaces the values (same shape), keeping gradient tracking.
    public func assign(_ newValue: Tensor) {
        precondition(newValue.shape == value.shape, "assign: shape \(newValue.shape) != \(value.shape)")
        value = newValue.copy().trackingGradients()
    }
}

/// Non-trainable state that is saved with a model (BatchNorm running statistics).
public final class StateBuffer {
    public var value: Tensor
    public init(_ value: Tensor) { self.value = value }
}

/// Whether layers run in training mode (batch statistics, dropout) or inference mode.
public enum LearningPhase: Sendable { case training, inference }

public enum LayerContext {
    nonisolated(unsafe) public static var phase: LearningPhase = .inference
    /// Random numbers for dropout masks during training.
    nonisolated(unsafe) public static var rng = SeededRandom(seed: 0)
    /// Nested quantizers (8/4-bit weights) use their inner, narrower code while this is set.
    nonisolated(unsafe) public static var nestedView = false

    /// Runs `body` with nested quantizers on their inner code (`true`) or outer code.
    public static func withNestedView<R>(_ inner: Bool, _ body: () throws -> R) rethrows -> R {
        let saved = nestedView
        nestedView = inner
        defer { nestedView = saved }
        return try body()
    }

    /// Runs `body` in the given phase, restoring the previous one after.
    public static func with<R>(_ p: LearningPhase, _ body: () throws -> R) rethrows -> R {
        let saved = phase
        phase = p
        defer { phase = saved }
        return try body()
    }
}

/// A network layer: a function of one tensor with named parameters and state.
public protocol Layer {
    func callAsFunction(_ x: Tensor) -> Tensor
    /// Parameters with their names relative to this layer (`weight`, `bias`, `layers.0.weight`).
    var namedParameters: [(String, Parameter)] { get }
    /// Saved non-trainable state (`running_mean`, ...).
    var namedBuffers: [(String, StateBuffer)] { get }
    /// The serialisable description of this layer; nil for layers a float model file cannot
    /// describe (the quantized layers of QForgeQuant, until their graph lowering lands).
    var spec: LayerSpec? { get }
    /// The output feature shape (without batch) for a given input feature shape.
    func outputShape(for input: [Int]) throws -> [Int]
}

extension Layer {
    public var namedParameters: [(String, Parameter)] { [] }
    public var namedBuffers: [(String, StateBuffer)] { [] }
    public var parameters: [Parameter] { namedParameters.map(\.1) }
    public var parameterCount: Int { parameters.map(\.value.count).reduce(0, +) }
}

/// PyTorch's default init for Linear and Conv2d: kaiming-uniform with a = √5, which is
/// U(−1/√fan_in, 1/√fan_in) for the weight, and the same bound for the bias.
func pytorchUniform(_ shape: [Int], fanIn: Int, rng: inout SeededRandom) -> Tensor {
    let bound = 1 / Float(Swift.max(fanIn, 1)).squareRoot()
    return Tensor.uniform(shape: shape, low: -bound, high: bound, rng: &rng)
}

// MARK: - Layers

/// Fully connected: y = x·Wᵀ + b, weight [out, in] as in PyTorch.
public struct Dense: Layer {
    public let weight: Parameter
    public let bias: Parameter?

    public init(weight: Tensor, bias: Tensor?) {
        precondition(weight.rank == 2, "Dense weight must be [out, in], got \(weight.shape)")
        if let bias { precondition(bias.shape == [weight.shape[0]], "Dense bias \(bias.shape) != [\(weight.shape[0])]") }
        self.weight = Parameter(weight)
        self.bias = bias.map(Parameter.init)
    }

    public init(_ inputs: Int, _ outputs: Int, bias: Bool = true, rng: inout SeededRandom) {
        precondition(inputs > 0 && outputs > 0, "Dense sizes must be positive, got \(inputs)→\(outputs)")
        let w = pytorchUniform([outputs, inputs], fanIn: inputs, rng: &rng)
        let b = bias ? pytorchUniform([outputs], fanIn: inputs, rng: &rng) : nil
        self.init(weight: w, bias: b)
    }

    public var inputs: Int { weight.value.shape[1] }
    public var outputs: Int { weight.value.shape[0] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.linear(x.rank == 2 ? x : x.flattened(), weight: weight.value, bias: bias?.value)
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public var spec: LayerSpec? { .dense(inputs: inputs, outputs: outputs, bias: bias != nil) }

    public func outputShape(for input: [Int]) throws -> [Int] {
        let n = input.reduce(1, *)
        guard n == inputs else { throw ModelError.sizeMismatch(layer: "Dense", expected: inputs, got: input) }
        return [outputs]
    }
}

/// 2-d convolution over [N, C, H, W], weight [out, in, kh, kw] as in PyTorch.
public struct Conv2d: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let stride: Int
    public let padding: Int

    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) {
        precondition(weight.rank == 4, "Conv2d weight must be [out, in, kh, kw], got \(weight.shape)")
        precondition(stride > 0 && padding >= 0, "Conv2d stride \(stride) / padding \(padding) invalid")
        self.weight = Parameter(weight)
        self.bias = bias.map(Parameter.init)
        self.stride = stride
        self.padding = padding
    }

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, rng: inout SeededRandom) {
        precondition(inChannels > 0 && outChannels > 0 && kernel > 0, "Conv2d sizes must be positive")
        let fanIn = inChannels * kernel * kernel
        let w = pytorchUniform([outChannels, inChannels, kernel, kernel], fanIn: fanIn, rng: &rng)
        let b = bias ? pytorchUniform([outChannels], fanIn: fanIn, rng: &rng) : nil
        self.init(weight: w, bias: b, stride: stride, padding: padding)
    }

    public var inChannels: Int { weight.value.shape[1] }
    public var outChannels: Int { weight.value.shape[0] }
    public var kernel: Int { weight.value.shape[2] }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: weight.value, bias: bias?.value, stride: (stride, stride), padding: (padding, padding))
    }

    public var namedParameters: [(String, Parameter)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    public var spec: LayerSpec? {
        .conv2d(inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride, padding: padding, bias: bias != nil)
    }

    public func outputShape(for input: [Int]) throws -> [Int] {
        guard input.count == 3 else { throw ModelError.badInputRank(layer: "Conv2d", expected: "[C, H, W]", got: input) }
        guard input[0] == inChannels else { throw ModelError.sizeMismatch(layer: "Conv2d", expected: inChannels, got: input) }
        let h = (input[1] + 2 * padding - kernel) / stride + 1, w = (input[2] + 2 * padding - kernel) / stride + 1
        guard h > 0 && w > 0 else { throw ModelError.kernelTooLarge(layer: "Conv2d", kernel: kernel, input: input) }
        return [outChannels, h, w]
    }
}

/// Batch normalisation over the channel axis (1) of [N, C] or [N, C, H, W]: batch statistics
/// in training (running statistics updated with `momentum`, PyTorch's convention), running
/// statistics in inference.
public struct BatchNorm: Layer {
    public let gamma: Parameter
    public let beta: Parameter
    public let runningMean: StateBuffer
    public let runningVariance: StateBuffer
    public let momentum: Float
    public let epsilon: Float

    public init(features: Int, momentum: Float = 0.1, epsilon: Float = 1e-5) {
        precondition(features > 0, "BatchNorm features must be positive")
        gamma = Parameter(Tensor(repeating: 1, shape: [features]))
        beta = Parameter(Tensor(zeros: [features]))
        runningMean = StateBuffer(Tensor(zeros: [features]))
        runningVariance = StateBuffer(Tensor(repeating: 1, shape: [features]))
        self.momentum = momentum
        self.epsilon = epsilon
    }

    public var features: Int { gamma.value.count }

    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x, relu: false) }

    /// Batch normalisation, optionally followed by a fused ReLU in training.
    func forward(_ x: Tensor, relu: Bool) -> Tensor {
        precondition(x.rank >= 2 && x.shape[1] == features, "BatchNorm(\(features)): input \(x.shape)")
        if LayerContext.phase == .training {
            let r = Tensor.batchNorm(x, gamma: gamma.value, beta: beta.value, epsilon: epsilon, relu: relu)
            let m = momentum
            runningMean.value = Tensor(shape: [features], scalars: zip(runningMean.value.scalars, r.mean).map { (1 - m) * $0 + m * $1 })
            runningVariance.value = Tensor(shape: [features], scalars: zip(runningVariance.value.scalars, r.unbiasedVariance).map { (1 - m) * $0 + m * $1 })
            return r.output
        }
        // Inference: y = (x − μ)/√(σ² + ε)·γ + β as one per-channel affine map.
        let (scale, shift) = inferenceAffine()
        let c = features
        var shape = [Int](repeating: 1, count: x.rank)
        shape[1] = c
        let y = x * Tensor(shape: shape, scalars: scale) + Tensor(shape: shape, scalars: shift)
        return relu ? y.relu() : y
    }

    /// The per-channel scale and shift that BatchNorm applies in inference.
    public func inferenceAffine() -> (scale: [Float], shift: [Float]) {
        let g = gamma.value.scalars, b = beta.value.scalars
        let mu = runningMean.value.scalars, v = runningVariance.value.scalars
        let scale = (0..<features).map { g[$0] / (v[$0] + epsilon).squareRoot() }
        let shift = (0..<features).map { b[$0] - mu[$0] * scale[$0] }
        return (scale, shift)
    }

    public var namedParameters: [(String, Parameter)] { [("weight", gamma), ("bias", beta)] }
    public var namedBuffers: [(String, StateBuffer)] { [("running_mean", runningMean), ("running_var", runningVariance)] }
    public var spec: LayerSpec? { .batchNorm(features: features, momentum: momentum, epsilon: epsilon) }

    public func outputShape(for input: [Int]) throws -> [Int] {
        guard !input.isEmpty, input[0] == features else { throw ModelError.sizeMismatch(layer: "BatchNorm", expected: features, got: input) }
        return input
    }
}

public struct ReLU: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor) -> Tensor { x.relu() }
    public var spec: LayerSpec? { .relu }
    public func outputShape(for input: [Int]) throws -> [Int] { input }
}

public struct Sigmoid: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor) -> Tensor { x.sigmoid() }
    public var spec: LayerSpec? { .sigmoid }
    public func outputShape(for input: [Int]) throws -> [Int] { input }
}

public struct Tanh: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor) -> Tensor { x.tanh() }
    public var spec: LayerSpec? { .tanh }
    public func outputShape(for input: [Int]) throws -> [Int] { input }
}

public struct MaxPool2d: Layer {
    public let kernel: Int
    public let stride: Int

    public init(kernel: Int, stride: Int? = nil) {
        precondition(kernel > 0 && (stride ?? 1) > 0, "MaxPool2d kernel/stride must be positive")
        self.kernel = kernel
        self.stride = stride ?? kernel
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.maxPool2d(kernel: (kernel, kernel), stride: (stride, stride)) }
    public var spec: LayerSpec? { .maxPool2d(kernel: kernel, stride: stride) }

    public func outputShape(for input: [Int]) throws -> [Int] {
        guard input.count == 3 else { throw ModelError.badInputRank(layer: "MaxPool2d", expected: "[C, H, W]", got: input) }
        guard input[1] >= kernel && input[2] >= kernel else { throw ModelError.kernelTooLarge(layer: "MaxPool2d", kernel: kernel, input: input) }
        return [input[0], (input[1] - kernel) / stride + 1, (input[2] - kernel) / stride + 1]
    }
}

/// Inverted dropout in training, identity in inference.
public struct Dropout: Layer {
    public let probability: Float

    public init(_ probability: Float) {
        precondition(probability >= 0 && probability < 1, "Dropout probability \(probability) must be in [0, 1)")
        self.probability = probability
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        LayerContext.phase == .training ? x.dropout(probability: probability, rng: &LayerContext.rng) : x
    }

    public var spec: LayerSpec? { .dropout(probability: probability) }
    public func outputShape(for input: [Int]) throws -> [Int] { input }
}

/// [N, ...] → [N, product of the rest].
public struct Flatten: Layer {
    public init() {}
    public func callAsFunction(_ x: Tensor) -> Tensor { x.flattened() }
    public var spec: LayerSpec? { .flatten }
    public func outputShape(for input: [Int]) throws -> [Int] { [input.reduce(1, *)] }
}

/// Layers applied in order; parameters are named `layers.<index>.<name>`.
public struct Sequential: Layer {
    public var layers: [any Layer]

    public init(_ layers: [any Layer]) { self.layers = layers }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        var i = 0
        while i < layers.count {
            // BatchNorm followed by ReLU runs as one fused op in training (same values, fewer passes).
            if LayerContext.phase == .training, let bn = layers[i] as? BatchNorm, i + 1 < layers.count, layers[i + 1] is ReLU {
                y = bn.forward(y, relu: true)
                i += 2
                continue
            }
            y = layers[i](y)
            i += 1
        }
        return y
    }

    public var namedParameters: [(String, Parameter)] {
        layers.enumerated().flatMap { i, l in l.namedParameters.map { ("layers.\(i).\($0.0)", $0.1) } }
    }

    public var namedBuffers: [(String, StateBuffer)] {
        layers.enumerated().flatMap { i, l in l.namedBuffers.map { ("layers.\(i).\($0.0)", $0.1) } }
    }

    public var spec: LayerSpec? {
        let specs = layers.compactMap(\.spec)
        return specs.count == layers.count ? .sequential(specs) : nil
    }

    public func outputShape(for input: [Int]) throws -> [Int] {
        var s = input
        for (i, l) in layers.enumerated() {
            do { s = try l.outputShape(for: s) } catch let e as ModelError { throw e.at(layer: i) }
        }
        return s
    }
}
