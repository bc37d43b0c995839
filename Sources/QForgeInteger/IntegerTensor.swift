/// A contiguous row-major tensor of integers: the values the integer model and the hardware
/// hold. Two instances are used: `QTensor` (codes of activations and weights, at most 32
/// bits) and `AccTensor` (accumulators, 64 bits).
public struct IntegerTensor<Scalar: FixedWidthInteger & SignedInteger & Sendable>: Equatable, Sendable {
    public let shape: [Int]
    public let values: [Scalar]

    public init(shape: [Int], values: [Scalar]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == values.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.shape = shape
        self.values = values
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, values: [Scalar](repeating: 0, count: shape.reduce(1, *)))
    }

    public var count: Int { values.count }
    public var rank: Int { shape.count }

    /// The same values under another shape with the same number of elements.
    public func reshaped(to newShape: [Int]) -> IntegerTensor {
        precondition(newShape.reduce(1, *) == count, "reshape: \(shape) has \(count) values, \(newShape) needs \(newShape.reduce(1, *))")
        return IntegerTensor(shape: newShape, values: values)
    }

    /// [N, d1, d2, …] → [N, d1·d2·…] (ONNX Flatten with axis 1).
    public func flattened() -> IntegerTensor {
        precondition(rank >= 1, "flatten: needs at least one axis, shape is \(shape)")
        return reshaped(to: [shape[0], shape.dropFirst().reduce(1, *)])
    }
}

/// Integer codes of activations and weights (at most 32 bits each).
public typealias QTensor = IntegerTensor<Int32>
/// Exact accumulators: sums of products, biases, residual sums.
public typealias AccTensor = IntegerTensor<Int64>

extension IntegerTensor where Scalar == Int64 {
    /// Codes widened to accumulators (exact).
    public init(_ codes: QTensor) {
        self.init(shape: codes.shape, values: codes.values.map { Int64($0) })
    }
}

extension IntegerTensor: CustomStringConvertible {
    public var description: String {
        let shown = values.prefix(16).map { String($0) }.joined(separator: ", ")
        return "IntegerTensor<\(Scalar.self)>(shape: \(shape), [\(shown)\(count > 16 ? ", …" : "")])"
    }
}
