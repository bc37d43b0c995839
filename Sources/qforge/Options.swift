import ArgumentParser
import Foundation
import QForgeData
import QForgeNN
import QForgeQuant

/// Where the data comes from.
struct DataOptions: ParsableArguments {
    @Option(help: "Data set: fashion-mnist, magnetometer or csv.")
    var dataset: String = "fashion-mnist"

    @Option(name: [.customLong("data-path"), .customLong("data-dir")],
            help: "Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist or $QFORGE_FASHION_MNIST), or the CSV file.")
    var dataPath: String?

    @Option(help: "Use only the first N training samples.")
    var trainLimit: Int?

    @Option(help: "Use only the first N test samples.")
    var testLimit: Int?

    @Option(help: "Magnetometer: training samples to generate (test: a fifth as many, from another seed).")
    var samples: Int = 50_000

    @Option(help: "Seed of generated data (magnetometer) and of CSV train/test splits.")
    var dataSeed: UInt64 = 0

    @Option(help: "CSV: target column (index, negative from the end, or header name); repeat for several.")
    var targetColumn: [String] = ["-1"]

    @Flag(help: "CSV: targets are real values (default: class labels).")
    var regression = false

    func validate() throws {
        if let n = trainLimit, n <= 0 { throw ValidationError("--train-limit must be positive") }
        if let n = testLimit, n <= 0 { throw ValidationError("--test-limit must be positive") }
        if samples <= 0 { throw ValidationError("--samples must be positive") }
    }

    var request: DataCatalog.Request {
        DataCatalog.Request(name: dataset, path: dataPath, trainLimit: trainLimit, testLimit: testLimit, samples: samples,
                            seed: dataSeed, targetColumns: targetColumn.map { Int($0).map(CSVColumn.index) ?? .name($0) },
                            classification: !regression)
    }

    func load() throws -> (train: Dataset, test: Dataset) { try DataCatalog.load(request) }
}

/// Which network to build.
struct ModelOptions: ParsableArguments {
    @Option(help: "A preset network: \(Presets.names.joined(separator: ", ")).")
    var preset: String?

    @Option(name: .customLong("model"), help: "A model description file (JSON or YAML) listing the layers.")
    var modelFile: String?

    @Option(help: "Start from the weights of a saved model (.safetensors) and continue training.")
    var initFrom: String?

    @Option(help: "Seed for weight initialisation, shuffling and dropout.")
    var seed: UInt64 = 0

    @Option(help: "Quantization-aware training: weight bit width (1–16; signed, narrow range).")
    var wbits: Int?

    @Option(help: "Quantization-aware training: activation bit width (1–16, or 32 for int32 fixed-point activations; learned scale).")
    var abits: Int?

    @Flag(help: "QAT: one weight scale per output channel instead of per tensor.")
    var perChannel = false

    @Flag(help: "QAT: power-of-two scales (requantization becomes a shift).")
    var po2 = false

    @Option(help: "QAT: quantize biases to this many bits (e.g. 32) at input scale × weight scale (default: float biases).")
    var biasBits: Int?

    @Option(help: "QAT: bias scale: accumulator (input scale × weight scale, Brevitas's Int32Bias) or own (max|b|, a power of two with --po2; for narrow biases such as seed 000's 4-bit ones).")
    var biasScale: String = "accumulator"

    @Option(help: "QAT: input quantizer width (default 8; 32 gives seed 000's int32 fixed-point inputs).")
    var inputBits: Int = 8

    @Option(help: "QAT: activation and input zero points: zero (symmetric) or learned (asymmetric, calibrated then trained).")
    var zeroPoint: String = "zero"

    @Option(help: "QAT: weight scale from max (max|w|, Brevitas's default), mean (mean|w|), or auto: max above 2 bits, mean at 2 bits and below (max|w| rounds most ternary weights to zero).")
    var weightScale: String = "auto"

    @Option(help: "Nested sign-magnitude weights OUTER/INNER (e.g. 8/4): each OUTER-bit weight also holds an INNER-bit weight in a window of its magnitude bits; both networks train together (activations at --abits, default 8).")
    var nested: String?

    @Option(help: "Nested weights: put every layer's window at this lowest magnitude bit (default: chosen per layer by least squared error).")
    var nestedShift: Int?

    @Option(help: "Nested weights: round at the window's lowest bit (round, one saturating increment in hardware) or keep the selected bits (truncate).")
    var nestedRounding: String = "round"

    /// --nested as (outer, inner) widths.
    var nestedWidths: (outer: Int, inner: Int)? {
        guard let nested else { return nil }
        let parts = nested.split(separator: "/").compactMap { Int($0) }
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }

    func validate() throws {
        if let nested {
            guard let (o, _) = nestedWidths else { throw ValidationError("--nested takes OUTER/INNER bit widths, e.g. 8/4, not '\(nested)'") }
            if let wbits, wbits != o { throw ValidationError("--nested \(nested) sets the weight width to \(o); drop --wbits \(wbits)") }
        } else if nestedShift != nil {
            throw ValidationError("--nested-shift needs --nested")
        }
        if !["round", "truncate"].contains(nestedRounding) { throw ValidationError("--nested-rounding must be round or truncate") }
        let given = [preset, modelFile, initFrom].compactMap { $0 }.count
        if given != 1 { throw ValidationError("give exactly one of --preset, --model or --init-from") }
        if nested == nil, (wbits == nil) != (abits == nil) { throw ValidationError("give --wbits and --abits together") }
        if !["auto", "max", "mean"].contains(weightScale) { throw ValidationError("--weight-scale must be auto, max or mean") }
        if !["zero", "learned"].contains(zeroPoint) { throw ValidationError("--zero-point must be zero or learned") }
        if BiasQuantizer.Scaling(rawValue: biasScale) == nil { throw ValidationError("--bias-scale must be accumulator or own") }
        if biasScale == "own" && biasBits == nil { throw ValidationError("--bias-scale own needs --bias-bits") }
    }

    /// The quantization policy the options and the model file ask for, if any: widths from
    /// --wbits/--abits, else the file's top-level `wbits`/`abits`, with the file's per-layer
    /// widths on top.
    func policy(_ description: ModelDescription?) throws -> QuantPolicy? {
        guard wbits != nil || nested != nil || description?.isQuantized == true else { return nil }
        guard let w = nestedWidths?.outer ?? wbits ?? description?.wbits, let a = abits ?? description?.abits ?? (nested != nil ? 8 : nil) else {
            throw CommandError("\(modelFile ?? "the model"): per-layer widths need default widths for the other layers: give --wbits and --abits, or top-level wbits and abits in the file")
        }
        var p = QuantPolicy.uniform(weightBits: w, activationBits: a, perChannel: perChannel, powerOfTwo: po2,
                                    zeroPoint: zeroPoint == "learned" ? .learned : .zero)
        switch weightScale {
        case "mean": p.weights.source = .meanAbs
        case "max": p.meanScaleUpTo = 0
        default: break
        }
        if let d = description { (p.weightBits, p.activationBits) = d.layerWidths }
        if let (_, inner) = nestedWidths { p.weights.nested = .init(innerBits: inner, shift: nestedShift, rounds: nestedRounding == "round") }
        p.biasBits = biasBits
        p.biasScaling = BiasQuantizer.Scaling(rawValue: biasScale) ?? .accumulator
        p.input?.bitWidth = inputBits
        return p
    }

    func build() throws -> Model {
        let description = try modelFile.map { try ModelDescription.load(path: $0) } ?? preset.map { try Presets.description($0) }
        let m = try description.map { try Model($0, seed: seed) } ?? Model.loadAny(from: initFrom!)
        guard let policy = try policy(description) else { return m }
        return try quantize(m, policy: policy)
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object with the results as the last line of standard output.")
    var json = false
}

/// Prints a JSON object (sorted keys) as one line.
func printJSON(_ object: [String: Any]) {
    let cleaned = object.mapValues(jsonSafe)
    if let data = try? JSONSerialization.data(withJSONObject: cleaned, options: [.sortedKeys]),
       let s = String(data: data, encoding: .utf8) {
        print(s)
    }
}

/// JSON has no NaN or infinity: those become null.
func jsonSafe(_ v: Any) -> Any {
    switch v {
    case let d as Double: return d.isFinite ? d : NSNull()
    case let f as Float: return f.isFinite ? Double(f) : NSNull()
    case let a as [Any]: return a.map(jsonSafe)
    case let m as [String: Any]: return m.mapValues(jsonSafe)
    default: return v
    }
}

/// Writes to standard error.
func note(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}

/// An error found while a command runs (not an argument error): printed as one line, exit 1.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
