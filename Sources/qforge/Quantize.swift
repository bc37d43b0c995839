import ArgumentParser
import Foundation
import QForgeData
import QForgeNN
import QForgeQuant
import QForgeTensor

/// Widths and scale kinds of a quantized model (shared by `quantize` and `sweep-bits`).
struct QuantWidthOptions: ParsableArguments {
    @Option(help: "Weight bit width (1–16; signed, narrow range).")
    var wbits: Int = 8

    @Option(help: "Activation bit width (1–16; unsigned after ReLU).")
    var abits: Int = 8

    @Flag(help: "One weight scale per output channel instead of per tensor.")
    var perChannel = false

    @Flag(help: "Power-of-two scales (requantization becomes a shift).")
    var po2 = false

    @Option(help: "Activation and input zero points: zero (symmetric) or learned (asymmetric).")
    var zeroPoint: String = "zero"

    @Option(help: "Quantize biases to this many bits (e.g. 32) at input scale × weight scale (default: float biases).")
    var biasBits: Int?

    func validate() throws {
        if !["zero", "learned"].contains(zeroPoint) { throw ValidationError("--zero-point must be zero or learned") }
    }
}

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Post-training quantization: calibrate a float model's scales on training data, evaluate and save it.")

    @Argument(help: "The float model file (.safetensors).")
    var model: String

    @OptionGroup var widths: QuantWidthOptions

    @Option(help: "How scales are chosen: max (max|x|), percentile (99.99th percentile of |x| for activations, max|w| for weights) or mse (least squared quantization error, weights and activations).")
    var calibrate: String = "max"

    @Option(help: "Calibration batches, drawn from the training set (seeded shuffle).")
    var calibrationBatches: Int = 16

    @Option(name: [.customLong("batch"), .customLong("batch-size")], help: "Calibration batch size.")
    var batch: Int = 128

    @Flag(help: "Correct each layer's bias for the mean error its weight quantization causes.")
    var biasCorrection = false

    @Option(help: "Seed of the calibration batch order.")
    var seed: UInt64 = 0

    @OptionGroup var data: DataOptions
    @OptionGroup var output: OutputOptions

    @Option(name: [.short, .long], help: "Where to save the quantized model. Default: NAME-ptq-wWaA.safetensors.")
    var out: String?

    func validate() throws {
        guard CalibrationMethod(rawValue: calibrate) != nil else {
            throw ValidationError("--calibrate must be one of \(CalibrationMethod.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if calibrationBatches <= 0 { throw ValidationError("--calibration-batches must be positive") }
        if batch <= 0 { throw ValidationError("--batch must be positive") }
    }

    func run() throws {
        let float = try Model.loadAny(from: model)
        if float.network.layers.contains(where: { $0 is QuantizedLayer }) {
            throw CommandError("\(model) is already quantized; post-training quantization starts from a float model")
        }
        let (train, test) = try data.load()
        try float.checkCompatible(with: train)
        let path = out ?? "\(float.name)-ptq-w\(widths.wbits)a\(widths.abits).safetensors"
        try checkWritable(path)
        let floatEval = try float.evaluate(test)

        var policy = QuantPolicy.uniform(weightBits: widths.wbits, activationBits: widths.abits,
                                         perChannel: widths.perChannel, powerOfTwo: widths.po2,
                                         zeroPoint: widths.zeroPoint == "learned" ? .learned : .zero)
        policy.meanScaleUpTo = 0
        policy.biasBits = widths.biasBits
        var q = try quantize(float, policy: policy)
        let sequence = train.batches(size: batch, shuffle: true, seed: seed, epoch: 0)
        let batches = (0..<Swift.min(calibrationBatches, sequence.count)).map { float.prepareInputs(sequence[$0].inputs) }
        let options = CalibrationOptions(method: CalibrationMethod(rawValue: calibrate)!, biasCorrection: biasCorrection)
        let start = Date()
        let report = try QForgeQuant.calibrate(&q, batches: batches, options: options)
        let seconds = Date().timeIntervalSince(start)
        let samples = batches.reduce(0) { $0 + $1.shape[0] }
        note("calibrated w\(widths.wbits)a\(widths.abits) with \(calibrate) on \(samples) samples in \(String(format: "%.1f", seconds)) s")
        for (name, scales) in report.scales {
            note("  \(name): scale \(scales.count == 1 ? "\(scales[0])" : "\(scales.count) per channel, \(scales.min()!)…\(scales.max()!)")")
        }
        if biasCorrection {
            note("  bias corrected: \(report.biasCorrected.joined(separator: ", "))"
                 + (report.biasSkipped.isEmpty ? "" : "; no bias to correct: \(report.biasSkipped.joined(separator: ", "))"))
        }
        let e = try q.evaluate(test)
        try q.save(to: path)
        if let a = floatEval.accuracy { print(String(format: "float accuracy: %.4f", a)) }
        if let r = floatEval.r2Mean { print(String(format: "float R² mean: %.4f", r)) }
        printEvaluation(e, names: test.targetNames)
        print("saved: \(path)")
        guard output.json else { return }
        var obj = evaluationJSON(e, names: test.targetNames)
        obj["float_test_accuracy"] = floatEval.accuracy ?? NSNull()
        obj["float_r2"] = floatEval.r2Mean ?? NSNull()
        obj["method"] = calibrate
        obj["calibration_samples"] = samples
        obj["bias_corrected"] = report.biasCorrected
        obj["output"] = path
        printJSON(obj)
    }
}
