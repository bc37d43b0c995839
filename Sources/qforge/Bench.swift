import ArgumentParser
import Foundation
import QForgeData
import QForgeNN
import QForgeQuant
import QForgeReport
import QForgeTensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure speed.", subcommands: [BenchTrain.self, BenchInfer.self])
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training throughput (samples/s) of presets on Fashion-MNIST, and the GEMM GFLOP/s reached.")

    @Option(help: "Comma-separated presets.")
    var preset: String = "mlp,cnn"

    @Option(help: "Batches per timed window (default: 50 for cnn, 200 otherwise).")
    var batches: Int = 0

    @Option(help: "Timed windows (the median is reported), after one warm-up window.")
    var repeats: Int = 5

    @Option(name: [.customLong("batch"), .customLong("batch-size")], help: "Mini-batch size.")
    var batch: Int = 128

    @Option(name: [.customLong("data-path"), .customLong("data-dir")], help: "Fashion-MNIST directory.")
    var dataPath: String?

    @Option(help: "Quantization-aware training: weight bit width (with --abits).")
    var wbits: Int?

    @Option(help: "Quantization-aware training: activation bit width (with --wbits).")
    var abits: Int?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if (wbits == nil) != (abits == nil) { throw ValidationError("give --wbits and --abits together") }
        if batches < 0 || repeats <= 0 || batch <= 0 { throw ValidationError("--batches, --repeats and --batch must be positive") }
    }

    func run() throws {
        var results: [String: Any] = [:]
        let gflops = GEMMBenchmark.medianGFLOPS(size: 1024, repeats: 5)
        print(String(format: "GEMM: %@ (core type %@), 1024³ sgemm: %.1f GFLOP/s (median of 5)",
                     GEMM.backend.rawValue, GEMM.openBLASCoreType ?? "auto", gflops))
        results["gemm_backend"] = GEMM.backend.rawValue
        results["gemm_1024_gflops"] = gflops
        let train = try FashionMNIST.load(.train, directory: dataPath)
        for name in preset.split(separator: ",").map(String.init) {
            var model = try Model(Presets.description(name), seed: 0)
            if let wbits, let abits { model = try quantize(model, policy: .uniform(weightBits: wbits, activationBits: abits)) }
            let perWindow = batches > 0 ? batches : (name == "cnn" ? 50 : 200)
            var rates: [Double] = []
            let window = TrainingOptions(epochs: 1, batchSize: batch, seed: 0, maxBatchesPerEpoch: perWindow, evaluateEachEpoch: false)
            for r in 0...repeats {
                let res = try Trainer.train(&model, on: train, test: nil, options: window)
                if r > 0 { rates.append(res.samplesPerSecond) }
            }
            rates.sort()
            let median = rates[rates.count / 2]
            let flops = trainingFLOPsPerSample(model)
            let kind = wbits.map { "QAT w\($0)a\(abits!)" } ?? "float"
            print(String(format: "%@: %.0f samples/s %@ training (median of %d windows of %d batches of %d; min %.0f, max %.0f); ≈ %.1f GFLOP/s in the network",
                         name, median, kind, rates.count, perWindow, batch, rates.first!, rates.last!, median * flops / 1e9))
            results["\(name)_train_samples_per_second"] = median
        }
        if output.json {
            results["train_samples_per_second"] = results["\(preset.split(separator: ",").first!)_train_samples_per_second"]
            printJSON(results)
        }
    }
}

/// Multiply-adds × 2 × 3 (forward, input gradient, weight gradient) for one sample.
func trainingFLOPsPerSample(_ m: Model) -> Double {
    var shape = m.inputShape
    var macs = 0.0
    for layer in m.network.layers {
        let out = (try? layer.outputShape(for: shape)) ?? shape
        if let d = (layer as? Dense) ?? (layer as? QuantDense)?.dense { macs += Double(d.inputs * d.outputs) }
        if let c = (layer as? Conv2d) ?? (layer as? QuantConv2d)?.conv {
            macs += Double(c.inChannels * c.kernel * c.kernel) * Double(out.reduce(1, *))
        }
        shape = out
    }
    return macs * 2 * 3
}

enum GEMMBenchmark {
    static func medianGFLOPS(size n: Int, repeats: Int) -> Double {
        let a = Tensor(repeating: 0.5, shape: [n, n]), b = Tensor(repeating: 0.25, shape: [n, n])
        let c = TensorStorage(count: n * n)
        var rates: [Double] = []
        for r in 0...repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            GEMM.sgemm(transA: false, transB: false, m: n, n: n, k: n, a: a.storage.pointer, lda: n,
                       b: b.storage.pointer, ldb: n, c: c.pointer, ldc: n)
            let s = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if r > 0 { rates.append(2 * Double(n * n * n) / s / 1e9) }
        }
        return rates.sorted()[rates.count / 2]
    }
}

struct BenchInfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Inference throughput (samples/s) of quantized models on a test set: float, fake-quantized and integer.")

    @Argument(help: "Quantized model files (.safetensors).")
    var models: [String]

    @Option(help: "Timed runs over the test set (the median is reported), after one warm-up run.")
    var repeats: Int = 5

    @Option(name: [.customLong("batch"), .customLong("batch-size")], help: "Inference batch size.")
    var batch: Int = 1000

    @OptionGroup var streamlining: StreamlineArguments
    @OptionGroup var data: DataOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if repeats <= 0 || batch <= 0 { throw ValidationError("--repeats and --batch must be positive") }
    }

    func run() throws {
        let (_, test) = try data.load()
        var rows: [[String: Any]] = []
        for path in models {
            let (m, integer) = try loadInteger(path, streamlining)
            try m.checkCompatible(with: test)
            func median(_ body: () -> Void) -> Double {
                body()
                let times = (0..<repeats).map { _ -> Double in let t = Date(); body(); return Date().timeIntervalSince(t) }
                return Double(test.count) / times.sorted()[times.count / 2]
            }
            let quantizers = m.network.layers.flatMap { ($0 as? QuantizedLayer)?.quantizers.map(\.1) ?? [] }
            for q in quantizers { q.observer = { _ in } }
            let float = median { _ = m.predict(test.inputs, batchSize: batch) }
            for q in quantizers { q.observer = nil }
            let fake = median { _ = m.predict(test.inputs, batchSize: batch) }
            let int = median { _ = integerPredictions(m, integer: integer, inputs: test.inputs, batchSize: batch) }
            print(String(format: "%@ (%@, %d samples, batch %d): float %.0f, fake-quantized %.0f, integer %.0f samples/s (integer/float %.2f×)",
                         path, m.name, test.count, batch, float, fake, int, int / float))
            rows.append(["model": path, "float_samples_per_second": float, "fake_quant_samples_per_second": fake,
                         "integer_samples_per_second": int, "samples": test.count, "batch": batch])
        }
        if output.json { printJSON(rows.count == 1 ? rows[0] : ["models": rows]) }
    }
}
