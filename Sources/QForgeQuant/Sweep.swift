import Foundation
import QForgeData
import QForgeNN
import QForgeTensor

/// One point of a bit-width sweep: weight and activation widths.
public struct WidthPair: Equatable, Sendable, CustomStringConvertible {
    public var weights: Int
    public var activations: Int
    public init(weights: Int, activations: Int) { self.weights = weights; self.activations = activations }

    /// Parses `B` (weights and activations) or `W/A`.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
        switch parts.count {
        case 1: guard let b = parts[0] else { return nil }; self.init(weights: b, activations: b)
        case 2: guard let w = parts[0], let a = parts[1] else { return nil }; self.init(weights: w, activations: a)
        default: return nil
        }
    }

    public var description: String { "w\(weights)a\(activations)" }
}

/// How each sweep point is quantized.
public enum SweepMethod: Sendable {
    /// Quantization-aware training from the float weights with these options.
    case qat(TrainingOptions)
    /// Post-training calibration on these batches of prepared inputs.
    case ptq(CalibrationOptions, batches: [Tensor])
}

/// A row of the sweep table.
public struct SweepRow: Sendable {
    public var widths: WidthPair
    public var evaluation: Evaluation
    /// Bits of all quantized weights.
    public var weightBits: Int
    /// Training samples/s (QAT) or nil.
    public var samplesPerSecond: Double?
}

/// Quantizes a float model at each width pair (policy `.uniform` plus `perChannel`/`powerOfTwo`)
/// and evaluates it: seed 004's accuracy-versus-width table. Every point starts from the same
/// float weights.
public func sweepBits(_ float: Model, widths: [WidthPair], method: SweepMethod, perChannel: Bool = false, powerOfTwo: Bool = false,
                      train: Dataset, test: Dataset, progress: ((WidthPair, TrainingProgress) -> Void)? = nil) throws -> [SweepRow] {
    try widths.map { pair in
        // Fresh parameters per point: QAT must not continue from the previous point's weights.
        let start = try float.copy()
        var policy = QuantPolicy.uniform(weightBits: pair.weights, activationBits: pair.activations,
                                         perChannel: perChannel, powerOfTwo: powerOfTwo)
        if case .ptq = method { policy.meanScaleUpTo = 0 }  // PTQ takes its weight scales from the calibration method
        var q = try quantize(start, policy: policy)
        var speed: Double?
        switch method {
        case .qat(let options):
            let result = try Trainer.train(&q, on: train, test: nil, options: options,
                                           progress: progress.map { p in { p(pair, $0) } })
            speed = result.samplesPerSecond
        case let .ptq(options, batches):
            _ = try calibrate(&q, batches: batches, options: options)
        }
        let weightBits = q.network.layers.compactMap { $0 as? any WeightQuantizedLayer }
            .reduce(0) { $0 + $1.weight.value.count * $1.weightQuantizer.settings.bitWidth }
        return SweepRow(widths: pair, evaluation: try q.evaluate(test), weightBits: weightBits, samplesPerSecond: speed)
    }
}

extension Model {
    /// A deep copy: new parameters and buffers with the same values (through the graph).
    public func copy() throws -> Model {
        let (graph, tensors) = try lowered()
        return try Model(graph: graph, tensors: tensors, readers: [QuantLayerReader()])
    }
}
