import ArgumentParser
import Foundation
import QForgeData
import QForgeNN
import QForgeQuant
import QForgeTensor

struct SweepBits: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep-bits",
        abstract: "Quantize a float model at several bit widths and print accuracy per width (QAT or PTQ).")

    @Argument(help: "The float model file (.safetensors).")
    var model: String

    @Option(help: "Widths to try, comma-separated: B (weights and activations) or W/A, e.g. 8,4,3,2 or 8/8,4/8,4/4.")
    var bits: String = "8,6,4,3,2"

    @Option(help: "qat (quantization-aware training from the float weights) or ptq (calibration only).")
    var method: String = "qat"

    @Option(help: "PTQ calibration: max, percentile or mse.")
    var calibrate: String = "mse"

    @Flag(help: "One weight scale per output channel.")
    var perChannel = false

    @Flag(help: "Power-of-two scales.")
    var po2 = false

    @Option(help: "Seed for QAT shuffling and the calibration batch order.")
    var seed: UInt64 = 0

    @OptionGroup var data: DataOptions
    @OptionGroup var training: TrainingArguments
    @OptionGroup var output: OutputOptions

    var widths: [WidthPair] { bits.split(separator: ",").compactMap { WidthPair(String($0)) } }

    func validate() throws {
        let items = bits.split(separator: ",")
        guard !items.isEmpty, widths.count == items.count else {
            throw ValidationError("--bits takes comma-separated widths B or W/A, e.g. 8,4,2 or 8/8,4/8; got '\(bits)'")
        }
        for w in widths where !(1...16).contains(w.weights) || !(1...16).contains(w.activations) {
            throw ValidationError("--bits: \(w) is outside 1...16")
        }
        guard ["qat", "ptq"].contains(method) else { throw ValidationError("--method must be qat or ptq") }
        guard CalibrationMethod(rawValue: calibrate) != nil else { throw ValidationError("--calibrate must be max, percentile or mse") }
    }

    func run() throws {
        let float = try Model.loadAny(from: model)
        if float.network.layers.contains(where: { $0 is QuantizedLayer }) {
            throw CommandError("\(model) is already quantized; sweep-bits starts from a float model")
        }
        let (train, test) = try data.load()
        try float.checkCompatible(with: train)
        let floatEval = try float.evaluate(test)
        let sweepMethod: SweepMethod
        if method == "qat" {
            sweepMethod = .qat(try training.options(seed: seed))
        } else {
            sweepMethod = .ptq(CalibrationOptions(method: CalibrationMethod(rawValue: calibrate)!),
                               batches: calibrationBatches(for: float, from: train, count: 16, size: training.batch, seed: seed))
        }
        let printer = ProgressPrinter()
        let rows = try sweepBits(float, widths: widths, method: sweepMethod, perChannel: perChannel, powerOfTwo: po2,
                                 train: train, test: test, progress: { _, p in printer.update(p) })
        let metric = floatEval.accuracy != nil ? "accuracy" : "R² mean"
        func value(_ e: Evaluation) -> Double { e.accuracy ?? e.r2Mean ?? .nan }
        let floatWeights = float.network.layers.reduce(0) { n, l in
            n + ((l as? Dense)?.weight.value.count ?? (l as? Conv2d)?.weight.value.count ?? 0)
        } * 32
        print("\(float.name), \(method == "qat" ? "QAT \(training.epochs) epochs" : "PTQ (\(calibrate))"), \(test.name) (\(test.count) samples)")
        let table = [["W/A", metric, "change", "weights (KiB)"],
                     ["32/32", String(format: "%.4f", value(floatEval)), "", String(format: "%.1f", Double(floatWeights) / 8192)]]
            + rows.map { r in
                ["\(r.widths.weights)/\(r.widths.activations)", String(format: "%.4f", value(r.evaluation)),
                 String(format: "%+.4f", value(r.evaluation) - value(floatEval)), String(format: "%.1f", Double(r.weightBits) / 8192)]
            }
        printMarkdownTable(table)
        guard output.json else { return }
        printJSON(["float": value(floatEval), "metric": metric, "method": method,
                   "rows": rows.map { r -> [String: Any] in
                       ["wbits": r.widths.weights, "abits": r.widths.activations, "value": value(r.evaluation),
                        "weight_bits": r.weightBits, "train_samples_per_second": r.samplesPerSecond ?? NSNull()]
                   }])
    }
}

/// Prints rows as a Markdown table, the first row as the header, columns padded to width
/// (text left-aligned, numbers right-aligned).
func printMarkdownTable(_ rows: [[String]]) {
    guard let header = rows.first else { return }
    let widths = header.indices.map { c in rows.map { $0[c].count }.max()! }
    func line(_ cells: [String]) -> String {
        "| " + cells.enumerated().map { c, text in
            let pad = String(repeating: " ", count: widths[c] - text.count)
            return Double(text.replacingOccurrences(of: "+", with: "")) != nil ? pad + text : text + pad
        }.joined(separator: " | ") + " |"
    }
    print(line(header))
    print("| " + widths.map { String(repeating: "-", count: $0) }.joined(separator: " | ") + " |")
    for r in rows.dropFirst() { print(line(r)) }
}
