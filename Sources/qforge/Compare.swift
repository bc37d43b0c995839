import ArgumentParser
import Foundation
import QForgeData
import QForgeInteger
import QForgeNN
import QForgeQuant
import QForgeReport

/// How to streamline (shared by `compare` and `eval --integer`).
struct StreamlineArguments: ParsableArguments {
    @Option(help: "Requantization: thresholds (exact), multiplier (fixed-point multiplier and shift) or shift (power-of-two scale chains).")
    var requant: String = "thresholds"

    @Option(help: "Cap every accumulator at this many bits (default: the exact width from interval analysis).")
    var accBits: Int?

    @Option(help: "What a capped accumulator does on overflow: saturate or wrap.")
    var overflow: String = "saturate"

    @Option(help: "Keep only this many most significant accumulator bits (floor), as seed 002's MSB truncation.")
    var keepMsbs: Int?

    func validate() throws {
        guard RequantizationForm(rawValue: requant) != nil else { throw ValidationError("--requant must be thresholds, multiplier or shift") }
        guard ["saturate", "wrap"].contains(overflow) else { throw ValidationError("--overflow must be saturate or wrap") }
        if let b = accBits, !(2...64).contains(b) { throw ValidationError("--acc-bits must be 2...64") }
        if let b = keepMsbs, !(1...64).contains(b) { throw ValidationError("--keep-msbs must be 1...64") }
    }

    var options: StreamlineOptions {
        StreamlineOptions(form: RequantizationForm(rawValue: requant)!, accumulatorBits: accBits, overflow: overflow == "wrap" ? .wrap : .saturate,
                          keepMSBs: keepMsbs)
    }
}

/// Loads a quantized model file and streamlines it, with one-line errors.
func loadInteger(_ path: String, _ arguments: StreamlineArguments) throws -> (Model, IntegerModel) {
    let m = try Model.loadAny(from: path)
    guard m.network.layers.contains(where: { $0 is QuantizedLayer }) else {
        throw CommandError("\(path) is a float model; quantize it first (qforge train --wbits/--abits, or qforge quantize)")
    }
    do {
        return (m, try m.integerModel(options: arguments.options))
    } catch let e as StreamlineError {
        throw CommandError("\(path): \(e)")
    }
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-layer differences between the float, fake-quantized and integer models of quantized model files.")

    @Argument(help: "Quantized model files (.safetensors), one table each.")
    var models: [String]

    @OptionGroup var streamlining: StreamlineArguments
    @OptionGroup var data: DataOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let (_, test) = try data.load()
        var results: [[String: Any]] = []
        for path in models {
            let (m, integer) = try loadInteger(path, streamlining)
            try m.checkCompatible(with: test)
            let start = Date()
            let r = try compare(m, integer: integer, on: test)
            let seconds = Date().timeIntervalSince(start)
            print("\(path): \(m.name), \(r.samples) samples (\(String(format: "%.1f", seconds)) s)")
            let header = ["layer", "requant", "acc bits", "float–fq max", "mean", "fq–int max", "mean", "float–int max", "mean", "mismatches", "f32 tie flips"]
            // Grids wider than Float32's significand: the Float32 model's own rounding shows.
            let bounded = r.layers.reduce(0) { $0 + $1.float32BoundedDifferences }, wide = bounded > 0
            let rows = r.layers.map { l in
                [l.name, l.requantization, "\(l.accumulatorBits)",
                 fmt(l.floatVsFakeQuant.max), fmt(l.floatVsFakeQuant.mean), fmt(l.fakeQuantVsInteger.max), fmt(l.fakeQuantVsInteger.mean),
                 fmt(l.floatVsInteger.max), fmt(l.floatVsInteger.mean),
                 l.mismatches == 0 ? "0" : "\(l.mismatches) (≤ \(l.maxStepDifference) steps)", "\(l.float32TieFlips)"]
                    + (wide ? [l.float32BoundedDifferences == 0 ? "0" : "\(l.float32BoundedDifferences) (≤ \(l.maxBoundedDifference) steps)"] : [])
            }
            printMarkdownTable([header + (wide ? ["f32 rounding"] : [])] + rows)
            print("output mismatches (integer vs fake-quantized in Double): \(r.outputMismatches)")
            print("float32 tie flips: \(r.float32TieFlips) (Double value within \(String(format: "%.1e", r.layers.map(\.maxTieDistance).max() ?? 0)) steps of x.5); other float32 mismatches: \(r.layers.reduce(0) { $0 + $1.float32OtherMismatches })")
            if wide {
                print("float32 rounding: \(bounded) codes where the Float32 model's own sums err by more than a tie, within their error bound (grids wider than Float32's 24-bit significand)")
            }
            if let a = r.top1Agreement { print(String(format: "top-1 agreement (integer vs fake-quantized): %.4f", a)) }
            if let f = r.floatAccuracy, let q = r.fakeQuantAccuracy, let i = r.integerAccuracy {
                print(String(format: "accuracy: float %.4f, fake-quantized %.4f, integer %.4f", f, q, i))
            }
            results.append([
                "model": path, "samples": r.samples, "output_mismatches": r.outputMismatches, "float32_tie_flips": r.float32TieFlips,
                "float32_rounding_differences": bounded,
                "top1_agreement": r.top1Agreement ?? NSNull(), "float_accuracy": r.floatAccuracy ?? NSNull(),
                "fake_quant_accuracy": r.fakeQuantAccuracy ?? NSNull(), "integer_accuracy": r.integerAccuracy ?? NSNull(),
                "layers": r.layers.map { l -> [String: Any] in
                    ["name": l.name, "requantization": l.requantization, "accumulator_bits": l.accumulatorBits,
                     "float_vs_fake_quant": ["max": l.floatVsFakeQuant.max, "mean": l.floatVsFakeQuant.mean],
                     "fake_quant_vs_integer": ["max": l.fakeQuantVsInteger.max, "mean": l.fakeQuantVsInteger.mean],
                     "float_vs_integer": ["max": l.floatVsInteger.max, "mean": l.floatVsInteger.mean],
                     "mismatches": l.mismatches, "max_step_difference": l.maxStepDifference,
                     "float32_tie_flips": l.float32TieFlips, "float32_other_mismatches": l.float32OtherMismatches,
                     "float32_rounding_differences": l.float32BoundedDifferences,
                     "max_tie_distance": l.maxTieDistance, "values": l.values]
                },
            ])
        }
        guard output.json else { return }
        var obj = results.count == 1 ? results[0] : [:]
        if results.count != 1 { obj["models"] = results }
        printJSON(obj)
    }

    func fmt(_ v: Double) -> String { v == 0 ? "0" : String(format: v < 1e-3 ? "%.2e" : "%.4f", v) }
}

struct CompileInt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile-int",
        abstract: "Streamline a quantized model into its integer model and write it (weights, thresholds or multipliers and shifts, widths).")

    @Argument(help: "The quantized model file (.safetensors).")
    var model: String

    @OptionGroup var streamlining: StreamlineArguments
    @OptionGroup var output: OutputOptions

    @Option(name: [.short, .long], help: "Where to write the integer model. Default: NAME.int.")
    var out: String?

    func run() throws {
        let (m, integer) = try loadInteger(model, streamlining)
        let path = out ?? "\(m.name).int"
        try checkWritable(path)
        try IntegerModelFile.save(integer, to: path)
        let g = integer.inputQuantizer
        print("input \(integer.inputShape): \(g.grid.bitWidth)-bit \(g.grid.signed ? "signed" : "unsigned") codes, scale \(g.scale)\(g.zeroPoint != 0 ? ", zero point \(g.zeroPoint)" : "")")
        let rows = integer.layers.map { l -> [String] in
            var product = "gemm \(l.product.weights.shape[0])×\(l.product.weights.shape[1])"
            if case let .conv(s, p) = l.product.kind { product = "conv \(l.product.weights.shape.map(String.init).joined(separator: "×")) s\(s) p\(p)" }
            let ops = l.codeOps.map { op -> String in
                switch op {
                case let .maxPool(k, s, _): return "maxpool \(k)/\(s)"
                case .flatten: return "flatten"
                }
            }
            let out = l.output.map { "\($0.grid.bitWidth)-bit \($0.grid.signed ? "signed" : "unsigned")" } ?? "accumulators"
            return [l.name, (ops + [product]).joined(separator: ", "), "\(l.accumulatorBits)" + (l.accumulatorCap.map { " → \($0.bits)" } ?? ""),
                    l.requantization.formName, out]
        }
        printMarkdownTable([["layer", "ops", "acc bits", "requant", "output"]] + rows)
        print("saved: \(path)")
        if output.json {
            printJSON(["output": path, "layers": integer.layers.map { ["name": $0.name, "accumulator_bits": $0.accumulatorBits, "requantization": $0.requantization.formName] }])
        }
    }
}
