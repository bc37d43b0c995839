import QForgeTensor

// Building integer models directly (tests, generators, importers), without streamlining a graph.

extension IntegerLayer {
    /// A dense layer y = x·Wᵀ over codes of `input`: the zero-point bias, the accumulator
    /// ranges and width follow from the weights [M, K], the input grid and `roundedBias`, as
    /// streamlining computes them. No epilogue: the layer is defined by its integer parts.
    public static func dense(name: String, input: CodeGrid, weights: QTensor, accumulatorCap: AccumulatorCap? = nil,
                             droppedBits: Int = 0, roundedBias: [Int64]? = nil, requantization: Requantization,
                             output: CodeGrid?) -> IntegerLayer {
        precondition(weights.rank == 2, "IntegerLayer.dense: weights \(weights.shape) must be [M, K]")
        var layer = IntegerLayer(name: name, codeOps: [], product: IntegerProduct(kind: .gemm, weights: weights, bias: nil),
                                 accumulatorRange: [], accumulatorBits: 0, accumulatorCap: accumulatorCap,
                                 flipped: [Bool](repeating: false, count: weights.shape[0]), roundedBias: roundedBias, epilogue: [],
                                 requantization: requantization, output: output, input: input)
        layer.droppedBits = droppedBits
        return layer.withRanges()
    }

    /// A convolution over codes of `input` (weights [M, C, kh, kw], zero padding with code 0),
    /// with its code ops (max-pool, flatten) applied to its input first; otherwise as `dense`.
    public static func conv(name: String, input: CodeGrid, weights: QTensor, stride: Int = 1, padding: Int = 0, codeOps: [CodeOp] = [],
                            accumulatorCap: AccumulatorCap? = nil, droppedBits: Int = 0, roundedBias: [Int64]? = nil,
                            requantization: Requantization, output: CodeGrid?) -> IntegerLayer {
        precondition(weights.rank == 4, "IntegerLayer.conv: weights \(weights.shape) must be [M, C, kh, kw]")
        var layer = IntegerLayer(name: name, codeOps: codeOps, product: IntegerProduct(kind: .conv(stride: stride, padding: padding), weights: weights, bias: nil),
                                 accumulatorRange: [], accumulatorBits: 0, accumulatorCap: accumulatorCap,
                                 flipped: [Bool](repeating: false, count: weights.shape[0]), roundedBias: roundedBias, epilogue: [],
                                 requantization: requantization, output: output, input: input)
        layer.droppedBits = droppedBits
        return layer.withRanges()
    }
}

extension IntegerModel {
    /// A model of `layers` reading codes of `input` (its scale as the Float32 input scale).
    public init(name: String, input: CodeGrid, shape: [Int], layers: [IntegerLayer]) {
        self.init(name: name, inputShape: shape, inputQuantizer: input, inputScale: Float(input.scale), layers: layers)
    }
}
