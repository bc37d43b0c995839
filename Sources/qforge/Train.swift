import ArgumentParser
import Foundation
import QForgeData
import QForgeNN
import QForgeQuant

struct TrainingArguments: ParsableArguments {
    @Option(help: "Passes over the training set.")
    var epochs: Int = 10

    @Option(name: [.customLong("batch"), .customLong("batch-size")], help: "Mini-batch size.")
    var batch: Int = 128

    @Option(help: "Optimizer: adam or sgd.")
    var optimizer: String = "adam"

    @Option(help: "Learning rate.")
    var lr: Float = 1e-3

    @Option(help: "SGD momentum.")
    var momentum: Float = 0.9

    @Option(help: "L2 weight decay.")
    var weightDecay: Float = 0

    @Option(help: "Learning-rate schedule: constant, step:EVERY:GAMMA, or cosine[:MIN].")
    var schedule: String = "constant"

    func validate() throws {
        if epochs < 0 { throw ValidationError("--epochs must be ≥ 0") }
        if batch <= 0 { throw ValidationError("--batch must be positive") }
        if !(lr > 0) || !lr.isFinite { throw ValidationError("--lr must be a positive number") }
        if !["adam", "sgd"].contains(optimizer) { throw ValidationError("--optimizer must be adam or sgd") }
        _ = try parsedSchedule()
    }

    func parsedSchedule() throws -> LearningRateSchedule {
        let parts = schedule.split(separator: ":").map(String.init)
        switch parts.first {
        case "constant": return .constant
        case "step":
            guard parts.count == 3, let every = Int(parts[1]), every > 0, let gamma = Float(parts[2]) else {
                throw ValidationError("--schedule step needs step:EVERY:GAMMA, e.g. step:5:0.1")
            }
            return .step(every: every, gamma: gamma)
        case "cosine":
            let minimum = parts.count > 1 ? Float(parts[1]) : 0
            guard let minimum else { throw ValidationError("--schedule cosine takes cosine or cosine:MIN") }
            return .cosine(epochs: epochs, minimum: minimum)
        default: throw ValidationError("--schedule must be constant, step:EVERY:GAMMA or cosine[:MIN]")
        }
    }

    func options(seed: UInt64) throws -> TrainingOptions {
        TrainingOptions(epochs: epochs, batchSize: batch, optimizer: optimizer == "sgd" ? .sgd(momentum: momentum) : .adam,
                        learningRate: lr, schedule: try parsedSchedule(), weightDecay: weightDecay, seed: seed)
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a network on a data set and save it.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingArguments
    @OptionGroup var output: OutputOptions

    @Option(name: [.short, .long], help: "Where to save the trained model (.safetensors). Default: NAME.safetensors.")
    var out: String?

    func run() throws {
        var m = try model.build()
        let (train, test) = try data.load()
        try m.checkCompatible(with: train)
        let path = out ?? "\(m.name).safetensors"
        try checkWritable(path)
        note("training \(m.name) (\(m.network.parameterCount) parameters) on \(train.name): \(train.count) samples, test \(test.count)")
        let printer = ProgressPrinter()
        var options = try training.options(seed: model.seed)
        options.bothNestedViews = model.nested != nil
        let result = try Trainer.train(&m, on: train, test: test, options: options,
                                       progress: printer.update, epochEnd: printer.epochEnd)
        try m.save(to: path)
        var extra: [String: Any] = [:]
        if let (o, i) = model.nestedWidths {
            let inner = try LayerContext.withNestedView(true) { try m.evaluate(test) }
            if let a = inner.accuracy { print(String(format: "nested as %d-bit: test accuracy %.4f (as %d-bit: above)", i, a, o)) }
            if let r = inner.r2Mean { print(String(format: "nested as %d-bit: R² mean %.4f", i, r)) }
            print("nested windows (lowest magnitude bit per layer): " + nestedWindows(m).map { "\($0) \($1)" }.joined(separator: ", "))
            extra["nested_inner"] = evaluationJSON(inner, names: test.targetNames)
        }
        try reportTraining(m, result, test: test, path: path, json: output.json, extra: extra)
    }
}

/// Prints the final evaluation, the training speed and the saved path, and the
/// JSON summary when asked. Shared by `train` and `demo`.
func reportTraining(_ m: Model, _ result: TrainingResult, test: Dataset, path: String, json: Bool, extra: [String: Any] = [:]) throws {
    let final = try result.final ?? m.evaluate(test)
    printEvaluation(final, names: test.targetNames)
    print(String(format: "train samples/s: %.0f", result.samplesPerSecond))
    print("saved: \(path)")
    guard json else { return }
    var obj = evaluationJSON(final, names: test.targetNames).merging(extra) { $1 }
    obj["train_samples_per_second"] = result.samplesPerSecond
    obj["output"] = path
    obj["epochs"] = result.epochs.map { e -> [String: Any] in
        var d: [String: Any] = ["epoch": e.epoch, "loss": e.loss, "seconds": e.seconds, "samples_per_second": e.samplesPerSecond]
        if let a = e.test?.accuracy { d["test_accuracy"] = a }
        if let r = e.test?.r2Mean { d["r2"] = r }
        return d
    }
    printJSON(obj)
}

/// Each nested-weight layer's window (path, lowest magnitude bit).
func nestedWindows(_ m: Model) -> [(String, Int)] {
    m.network.layers.enumerated().compactMap { i, l in
        guard let q = (l as? any WeightQuantizedLayer)?.weightQuantizer, q.settings.nested != nil, let k = q.nestedShift else { return nil }
        return ("layers.\(i)", k)
    }
}

/// Fails early, before hours of training, when the output cannot be written.
func checkWritable(_ path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let d = dir.isEmpty ? "." : dir
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: d, isDirectory: &isDir), isDir.boolValue,
          FileManager.default.isWritableFile(atPath: d) else {
        throw CommandError("cannot write \(path): directory \(d) does not exist or is not writable")
    }
}

func printEvaluation(_ e: Evaluation, names: [String]?) {
    print(String(format: "test loss: %.4f", e.loss))
    if let a = e.accuracy { print(String(format: "test accuracy: %.4f", a)) }
    if let r2 = e.r2 {
        for (i, v) in r2.enumerated() {
            print(String(format: "R² %@: %.4f", names?[safe: i] ?? "output \(i)", v))
        }
        print(String(format: "R² mean: %.4f", e.r2Mean ?? 0))
    }
}

func evaluationJSON(_ e: Evaluation, names: [String]?) -> [String: Any] {
    var obj: [String: Any] = ["test_loss": e.loss, "test_samples": e.samples]
    if let a = e.accuracy { obj["test_accuracy"] = a }
    if let r2 = e.r2 {
        obj["r2"] = e.r2Mean ?? 0
        var per: [String: Any] = [:]
        for (i, v) in r2.enumerated() { per[names?[safe: i] ?? "output\(i)"] = v }
        obj["r2_per_output"] = per
    }
    return obj
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
