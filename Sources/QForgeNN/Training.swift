import Foundation
import QForgeData
import QForgeTensor

/// Which optimizer a training run uses.
public enum OptimizerKind: Equatable, Sendable {
    case sgd(momentum: Float)
    case adam

    func make(learningRate: Float, weightDecay: Float) -> Optimizer {
        switch self {
        case let .sgd(m): return SGD(learningRate: learningRate, momentum: m, weightDecay: weightDecay)
        case .adam: return Adam(learningRate: learningRate, weightDecay: weightDecay)
        }
    }
}

public struct TrainingOptions: Sendable {
    public var epochs: Int
    public var batchSize: Int
    public var optimizer: OptimizerKind
    public var learningRate: Float
    public var schedule: LearningRateSchedule
    public var weightDecay: Float
    public var seed: UInt64
    /// Stop after this many batches per epoch (benchmarks); nil = the whole epoch.
    public var maxBatchesPerEpoch: Int?
    /// Evaluate on the test set after every epoch (not timed).
    public var evaluateEachEpoch: Bool
    /// Nested weights: every batch runs forward twice, on the outer and on the inner code
    /// (`LayerContext.nestedView`), and the loss is the mean of the two.
    public var bothNestedViews = false

    public init(epochs: Int = 10, batchSize: Int = 128, optimizer: OptimizerKind = .adam, learningRate: Float = 1e-3,
                schedule: LearningRateSchedule = .constant, weightDecay: Float = 0, seed: UInt64 = 0,
                maxBatchesPerEpoch: Int? = nil, evaluateEachEpoch: Bool = true) {
        self.epochs = epochs; self.batchSize = batchSize; self.optimizer = optimizer
        self.learningRate = learningRate; self.schedule = schedule; self.weightDecay = weightDecay
        self.seed = seed; self.maxBatchesPerEpoch = maxBatchesPerEpoch; self.evaluateEachEpoch = evaluateEachEpoch
    }
}

/// What a training run reports as it goes.
public struct TrainingProgress: Sendable {
    public var epoch: Int, epochs: Int
    public var batch: Int, batches: Int
    public var samplesSeen: Int, samplesPerEpoch: Int
    /// Running mean loss over this epoch so far.
    public var loss: Double
    /// Running training accuracy this epoch (classification).
    public var accuracy: Double?
    public var samplesPerSecond: Double
    /// Estimated seconds left in the run (training only).
    public var eta: Double
}

public struct EpochReport: Codable, Sendable {
    public var epoch: Int
    public var loss: Double
    public var trainAccuracy: Double?
    public var seconds: Double
    public var samplesPerSecond: Double
    public var learningRate: Float
    public var test: Evaluation?
}

/// Metrics of a model on a data set.
public struct Evaluation: Codable, Sendable {
    public var samples: Int
    public var loss: Double
    public var accuracy: Double?
    /// R² per output (regression), in the data set's target order.
    public var r2: [Double]?
    public var r2Mean: Double? { r2.map { $0.reduce(0, +) / Double(Swift.max($0.count, 1)) } }
}

public struct TrainingResult: Sendable {
    public var epochs: [EpochReport]
    /// Training samples per second over the whole run (training loop only, evaluation excluded).
    public var samplesPerSecond: Double
    public var final: Evaluation?
}

/// The training loop: shuffled mini-batches, forward, loss, backward, optimizer step.
public enum Trainer {
    public static func train(_ model: inout Model, on train: Dataset, test: Dataset?, options: TrainingOptions,
                             progress: ((TrainingProgress) -> Void)? = nil,
                             epochEnd: ((EpochReport) -> Void)? = nil) throws -> TrainingResult {
        try model.checkCompatible(with: train)
        return try Denormals.withFlushToZero { try trainLoop(&model, on: train, test: test, options: options, progress: progress, epochEnd: epochEnd) }
    }

    static func trainLoop(_ model: inout Model, on train: Dataset, test: Dataset?, options: TrainingOptions,
                          progress: ((TrainingProgress) -> Void)?, epochEnd: ((EpochReport) -> Void)?) throws -> TrainingResult {
        if model.task == .regression && model.inputScaler == nil { model.fitScalers(on: train) }
        let model = model
        guard options.epochs >= 0, options.batchSize > 0, options.learningRate > 0, options.learningRate.isFinite else {
            throw TrainingError.invalidOption("epochs must be ≥ 0, batch size > 0 and learning rate > 0 (got \(options.epochs), \(options.batchSize), \(options.learningRate))")
        }
        let params = model.network.parameters
        let optimizer = options.optimizer.make(learningRate: options.learningRate, weightDecay: options.weightDecay)
        let data = model.prepared(train)
        LayerContext.rng = SeededRandom(seed: options.seed &+ 0x5EED)
        var reports: [EpochReport] = []
        var trainSeconds = 0.0, trainSamples = 0
        for epoch in 0..<options.epochs {
            optimizer.learningRate = options.schedule.rate(base: options.learningRate, epoch: epoch)
            let batches = data.batches(size: options.batchSize, shuffle: true, seed: options.seed, epoch: epoch)
            let batchesPerEpoch = Swift.min(batches.count, options.maxBatchesPerEpoch ?? batches.count)
            var lossSum = 0.0, correct = 0, seen = 0
            let start = DispatchTime.now().uptimeNanoseconds
            for b in 0..<batchesPerEpoch {
                let batch = batches[b]
                // Forward and backward in their own scope, so the autodiff graph is freed before
                // the optimizer writes the parameters (no copy-on-write of shared storage).
                let (lossValue, predicted) = LayerContext.with(.training) { () -> (Float, [Int]) in
                    let out = model.network(batch.inputs)
                    var loss = model.loss(out, batch.targets)
                    if options.bothNestedViews {
                        let inner = LayerContext.withNestedView(true) { model.network(batch.inputs) }
                        loss = (loss + model.loss(inner, batch.targets)) * 0.5
                    }
                    loss.backward()
                    return (loss.item, model.task == .classification ? out.argmax() : [])
                }
                optimizer.step(params)
                optimizer.zeroGradients(params)
                lossSum += Double(lossValue) * Double(batch.count)
                seen += batch.count
                if let labels = batch.targets.labels {
                    for (r, p) in predicted.enumerated() where p == labels.scalars[r] { correct += 1 }
                }
                if let progress {
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    let rate = Double(seen) / Swift.max(elapsed, 1e-9)
                    let remaining = Double((options.epochs - epoch) * batchesPerEpoch - b - 1) * Double(options.batchSize)
                    progress(TrainingProgress(epoch: epoch + 1, epochs: options.epochs, batch: b + 1, batches: batchesPerEpoch,
                                              samplesSeen: seen, samplesPerEpoch: train.count, loss: lossSum / Double(seen),
                                              accuracy: model.task == .classification ? Double(correct) / Double(seen) : nil,
                                              samplesPerSecond: rate, eta: remaining / rate))
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            trainSeconds += seconds
            trainSamples += seen
            var report = EpochReport(epoch: epoch + 1, loss: lossSum / Double(Swift.max(seen, 1)),
                                     trainAccuracy: model.task == .classification ? Double(correct) / Double(Swift.max(seen, 1)) : nil,
                                     seconds: seconds, samplesPerSecond: Double(seen) / seconds,
                                     learningRate: optimizer.learningRate, test: nil)
            if let test, options.evaluateEachEpoch || epoch == options.epochs - 1 {
                report.test = try model.evaluate(test)
            }
            reports.append(report)
            epochEnd?(report)
        }
        return TrainingResult(epochs: reports, samplesPerSecond: Double(trainSamples) / Swift.max(trainSeconds, 1e-9),
                              final: reports.last?.test)
    }
}
