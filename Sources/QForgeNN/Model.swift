import Foundation
import QForgeData
import QForgeTensor

/// A trainable network with what it needs to be used on raw data: its input shape, its task,
/// and (for regression) the standardisation of inputs and targets fitted on training data.
public struct Model {
    public var name: String
    public var network: Sequential
    /// Shape of one sample without the batch dimension ([784], [1, 28, 28], [27]).
    public var inputShape: [Int]
    public var task: ModelDescription.Task
    /// Applied to raw inputs before the network (fitted on the training set).
    public var inputScaler: Standardizer?
    /// Regression targets are learned standardised; predictions are mapped back with it.
    public var targetScaler: Standardizer?

    public init(name: String, network: Sequential, inputShape: [Int], task: ModelDescription.Task,
                inputScaler: Standardizer? = nil, targetScaler: Standardizer? = nil) {
        self.name = name; self.network = network; self.inputShape = inputShape; self.task = task
        self.inputScaler = inputScaler; self.targetScaler = targetScaler
    }

    /// A freshly initialised model from a description (PyTorch-style init from `seed`).
    public init(_ description: ModelDescription, seed: UInt64) throws {
        let specs = try description.layerSpecs()
        var rng = SeededRandom(seed: seed)
        self.init(name: description.name ?? "model", network: Sequential(specs.map { $0.build(rng: &rng) }),
                  inputShape: description.input, task: description.task ?? .classification)
    }

    /// The network's output shape for one sample.
    public var outputShape: [Int] { (try? network.outputShape(for: inputShape)) ?? [] }

    /// Every parameter and state buffer under its dotted path.
    public var namedTensors: [(String, Tensor)] {
        network.namedParameters.map { ($0.0, $0.1.value.detached) } + network.namedBuffers.map { ($0.0, $0.1.value) }
    }

    /// Fits the scalers on a training set (regression only: classification inputs are used as given).
    public mutating func fitScalers(on data: Dataset) {
        guard task == .regression else { return }
        inputScaler = Standardizer.fit(data.inputs)
        if let values = data.targets.values { targetScaler = Standardizer.fit(values) }
    }

    /// Checks that the data fits the model: sample shape and number of outputs or classes.
    public func checkCompatible(with data: Dataset) throws {
        guard data.featureShape.reduce(1, *) == inputShape.reduce(1, *) else {
            throw TrainingError.shapeMismatch("model \(name) takes samples of shape \(inputShape), data set \(data.name) has \(data.featureShape)")
        }
        let outs = outputShape.reduce(1, *)
        switch data.targets {
        case .classes(_, let k):
            guard task == .classification else { throw TrainingError.shapeMismatch("model \(name) is a regression model, data set \(data.name) has class labels") }
            guard outs == k else { throw TrainingError.shapeMismatch("model \(name) has \(outs) outputs, data set \(data.name) has \(k) classes") }
        case .regression(let v):
            guard task == .regression else { throw TrainingError.shapeMismatch("model \(name) is a classifier, data set \(data.name) has regression targets") }
            let k = v.shape.dropFirst().reduce(1, *)
            guard outs == k else { throw TrainingError.shapeMismatch("model \(name) has \(outs) outputs, data set \(data.name) has \(k) targets") }
        }
    }

    /// Raw inputs [N, ...] → what the network takes: standardised and shaped [N] + inputShape.
    public func prepareInputs(_ x: Tensor) -> Tensor {
        let scaled = inputScaler?.apply(x) ?? x
        return Tensor(shape: [x.shape[0]] + inputShape, storage: scaled.storage)
    }

    /// The data set as the network sees it: prepared inputs, standardised regression targets.
    func prepared(_ data: Dataset) -> Dataset {
        var d = data
        d.inputs = prepareInputs(data.inputs)
        if case .regression(let v) = data.targets, let ts = targetScaler { d.targets = .regression(ts.apply(v)) }
        return d
    }

    /// The training loss of network outputs against a batch's targets.
    func loss(_ output: Tensor, _ targets: Target) -> Tensor {
        switch targets {
        case .classes(let labels, _): return Tensor.softmaxCrossEntropy(logits: output, labels: labels)
        case .regression(let v): return Tensor.meanSquaredError(output, Tensor(shape: output.shape, storage: v.storage))
        }
    }

    /// Network outputs for raw inputs, in batches, in inference mode: logits (classification)
    /// or predictions in target units (regression).
    public func predict(_ x: Tensor, batchSize: Int = 1000) -> Tensor {
        let n = x.shape[0]
        let prepared = prepareInputs(x)
        var parts: [Tensor] = []
        withoutGradients {
            LayerContext.with(.inference) {
                var start = 0
                while start < n {
                    let end = Swift.min(n, start + batchSize)
                    parts.append(network(prepared.slice(axis: 0, start..<end)))
                    start = end
                }
            }
        }
        let out = parts.isEmpty ? Tensor(zeros: [0] + outputShape) : Tensor.concat(parts, axis: 0)
        return targetScaler?.invert(out) ?? out
    }

    /// Loss, accuracy (classification) or R² per output (regression) on a data set.
    public func evaluate(_ data: Dataset, batchSize: Int = 1000) throws -> Evaluation {
        try checkCompatible(with: data)
        return Model.score(predict(data.inputs, batchSize: batchSize), against: data)
    }

    /// Loss and accuracy (classification) or R² per output (regression) of outputs `out`
    /// (logits, or predictions in target units) for the samples of `data`.
    public static func score(_ out: Tensor, against data: Dataset) -> Evaluation {
        switch data.targets {
        case .classes(let labels, _):
            let loss = withoutGradients { Tensor.softmaxCrossEntropy(logits: out, labels: labels).item }
            let correct = zip(out.argmax(), labels.scalars).filter { $0 == $1 }.count
            return Evaluation(samples: data.count, loss: Double(loss), accuracy: Double(correct) / Double(Swift.max(data.count, 1)), r2: nil)
        case .regression(let v):
            let target = Tensor(shape: out.shape, storage: v.storage)
            let loss = withoutGradients { Tensor.meanSquaredError(out, target).item }
            return Evaluation(samples: data.count, loss: Double(loss), accuracy: nil, r2: rSquared(prediction: out, target: target))
        }
    }
}

/// Coefficient of determination per output column: 1 − SS_res / SS_tot.
public func rSquared(prediction: Tensor, target: Tensor) -> [Double] {
    let n = target.shape[0], k = target.count / Swift.max(n, 1)
    let p = prediction.storage.pointer, t = target.storage.pointer
    return (0..<k).map { j in
        var mean = 0.0
        for i in 0..<n { mean += Double(t[i * k + j]) }
        mean /= Double(Swift.max(n, 1))
        var res = 0.0, tot = 0.0
        for i in 0..<n {
            let d = Double(t[i * k + j]) - Double(p[i * k + j]), e = Double(t[i * k + j]) - mean
            res += d * d; tot += e * e
        }
        return tot > 0 ? 1 - res / tot : 0
    }
}

public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(String)
    case invalidOption(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let s), .invalidOption(let s): return s
        }
    }
}
