import Foundation
import QForgeTensor

/// What a data set asks a model to predict.
public enum Target: Sendable {
    /// One class index per sample, in `0..<classCount`. The tensor has shape [N].
    case classes(IntTensor, classCount: Int)
    /// Real-valued outputs, shape [N, outputs] (or [N] for a single output).
    case regression(Tensor)

    /// Number of samples.
    public var count: Int {
        switch self {
        case .classes(let labels, _): return labels.shape.first ?? 0
        case .regression(let values): return values.shape.first ?? 0
        }
    }

    /// The class labels, when this is a classification target.
    public var labels: IntTensor? {
        if case .classes(let l, _) = self { return l }
        return nil
    }

    /// The regression values, when this is a regression target.
    public var values: Tensor? {
        if case .regression(let v) = self { return v }
        return nil
    }

    /// The rows at `indices`, in that order.
    func gathering(_ indices: [Int]) -> Target {
        switch self {
        case .classes(let labels, let classCount):
            let per = labels.shape.dropFirst().reduce(1, *)
            var out = [Int]()
            out.reserveCapacity(indices.count * per)
            labels.scalars.withUnsafeBufferPointer { src in
                for i in indices { out.append(contentsOf: src[(i * per)..<(i * per + per)]) }
            }
            return .classes(IntTensor(shape: [indices.count] + labels.shape.dropFirst(), scalars: out),
                            classCount: classCount)
        case .regression(let values):
            return .regression(gatherRows(values, indices))
        }
    }
}

/// The rows of `t` (slices along the first dimension) at `indices`, copied with one
/// `memcpy`-style block copy per row.
func gatherRows(_ t: Tensor, _ indices: [Int]) -> Tensor {
    let n = t.shape.first ?? 0
    let row = t.shape.dropFirst().reduce(1, *)
    let src = t.storage.pointer
    return Tensor(shape: [indices.count] + t.shape.dropFirst()) { out in
        guard let dst = out.baseAddress else { return }
        for (k, i) in indices.enumerated() {
            precondition(i >= 0 && i < n, "row index \(i) out of range 0..<\(n)")
            (dst + k * row).initialize(from: src + i * row, count: row)
        }
    }
}

/// One mini-batch: the input rows and their targets.
public struct Batch: Sendable {
    /// Inputs, shape [count] + feature shape.
    public var inputs: Tensor
    /// Targets of the same rows.
    public var targets: Target
    /// The rows' indices in the data set the batch was drawn from.
    public var indices: [Int]
    /// Number of samples in the batch.
    public var count: Int { indices.count }
}

/// A supervised data set held in memory: one input row and one target per sample.
///
/// `inputs` has shape [N] + feature shape (e.g. [N, 1, 28, 28] images or [N, 27] readings)
/// and the targets hold N entries.
public struct Dataset: Sendable {
    /// A short name for logs, e.g. "fashion-mnist-train" or "magnetometer".
    public var name: String
    /// Inputs; the first dimension is the sample count.
    public var inputs: Tensor
    /// Targets; one per sample.
    public var targets: Target
    /// Names of the outputs: one per regression output column (e.g. "x_cm"), or one per class
    /// for classification when known. Nil when unknown.
    public var targetNames: [String]?

    /// Creates a data set. Inputs and targets must hold the same number of samples, and
    /// `targetNames`, when given, must have one name per output (regression) or per class.
    public init(name: String, inputs: Tensor, targets: Target, targetNames: [String]? = nil) {
        precondition(inputs.rank >= 1, "Dataset inputs need a sample dimension, shape is \(inputs.shape)")
        precondition(inputs.shape[0] == targets.count,
                     "Dataset '\(name)': \(inputs.shape[0]) input rows but \(targets.count) targets")
        self.name = name
        self.inputs = inputs
        self.targets = targets
        self.targetNames = targetNames
    }

    /// Number of samples.
    public var count: Int { inputs.shape[0] }

    /// Shape of one sample's inputs (the input shape without the first dimension).
    public var featureShape: [Int] { Array(inputs.shape.dropFirst()) }

    /// Number of regression outputs per sample, or the class count for classification.
    public var outputCount: Int {
        switch targets {
        case .classes(_, let classCount): return classCount
        case .regression(let v): return v.shape.dropFirst().reduce(1, *)
        }
    }

    /// The samples at `indices`, in that order (indices may repeat).
    public func subset(indices: [Int]) -> Dataset {
        Dataset(name: name, inputs: gatherRows(inputs, indices), targets: targets.gathering(indices),
                targetNames: targetNames)
    }

    /// Splits into training and validation parts, deterministically from `seed`.
    ///
    /// The samples are shuffled with `SeededRandom(seed: seed).permutation(count)`; the first
    /// `round(validationFraction × count)` of that order form the validation set and the rest
    /// the training set. Each part keeps the samples in their original relative order, and the
    /// two parts are disjoint and together cover every sample once.
    public func split(validationFraction: Double, seed: UInt64) -> (train: Dataset, validation: Dataset) {
        precondition(validationFraction >= 0 && validationFraction <= 1,
                     "validationFraction must be in 0...1, got \(validationFraction)")
        var rng = SeededRandom(seed: seed)
        let order = rng.permutation(count)
        let nValidation = min(count, Int((validationFraction * Double(count)).rounded()))
        let validation = order[..<nValidation].sorted()
        let train = order[nValidation...].sorted()
        var t = subset(indices: train), v = subset(indices: validation)
        t.name = name + "-train"
        v.name = name + "-validation"
        return (t, v)
    }

    /// The same samples with each sample's inputs reshaped, e.g. `featureShape: [784]` turns
    /// [N, 1, 28, 28] images into [N, 784] rows. No data is copied.
    public func reshaped(featureShape: [Int]) -> Dataset {
        let need = featureShape.reduce(1, *)
        precondition(featureShape.allSatisfy { $0 >= 0 } && need == self.featureShape.reduce(1, *),
                     "cannot reshape samples of shape \(self.featureShape) to \(featureShape)")
        var d = self
        d.inputs = Tensor(shape: [count] + featureShape, storage: inputs.storage)
        return d
    }

    /// The order in which `batches(size:shuffle:seed:epoch:)` visits the samples:
    /// `SeededRandom(seed: seed &+ UInt64(epoch) &* 0x9E3779B97F4A7C15).permutation(count)`
    /// when shuffling, else `0..<count`.
    public func batchOrder(shuffle: Bool, seed: UInt64, epoch: Int) -> [Int] {
        guard shuffle else { return Array(0..<count) }
        let epochSeed = seed &+ UInt64(bitPattern: Int64(epoch)) &* 0x9E37_79B9_7F4A_7C15
        var rng = SeededRandom(seed: epochSeed)
        return rng.permutation(count)
    }

    /// The mini-batches of one epoch, in order. Batches are gathered lazily when accessed, so
    /// an epoch never holds more than the batch being used. Every sample appears exactly once
    /// per epoch; all batches have `size` samples except possibly the last, which holds the
    /// remainder (60000 samples in batches of 128: 468 full batches and one of 96).
    public func batches(size: Int, shuffle: Bool, seed: UInt64, epoch: Int) -> BatchSequence {
        precondition(size > 0, "batch size must be positive, got \(size)")
        return BatchSequence(dataset: self, order: batchOrder(shuffle: shuffle, seed: seed, epoch: epoch), size: size)
    }
}

extension Dataset: CustomStringConvertible {
    /// A one-line summary, e.g. `fashion-mnist-train: 60000 samples, inputs [1, 28, 28], 10 classes`.
    public var description: String {
        let what: String
        switch targets {
        case .classes(_, let k): what = "\(k) classes"
        case .regression(let v): what = "regression targets \(Array(v.shape.dropFirst()))"
        }
        return "\(name): \(count) samples, inputs \(featureShape), \(what)"
    }
}

/// The batches of one epoch: a random-access collection whose elements are gathered on access.
public struct BatchSequence: RandomAccessCollection, Sendable {
    /// The data set the batches come from.
    public let dataset: Dataset
    /// The sample order of this epoch.
    public let order: [Int]
    /// The batch size (the last batch may be smaller).
    public let size: Int

    public var startIndex: Int { 0 }
    public var endIndex: Int { (order.count + size - 1) / size }

    /// Batch number `i`: the samples `order[i*size ..< min((i+1)*size, count)]`.
    public subscript(i: Int) -> Batch {
        precondition(i >= 0 && i < endIndex, "batch index \(i) out of range 0..<\(endIndex)")
        let rows = Array(order[(i * size)..<Swift.min((i + 1) * size, order.count)])
        return Batch(inputs: gatherRows(dataset.inputs, rows), targets: dataset.targets.gathering(rows), indices: rows)
    }
}
