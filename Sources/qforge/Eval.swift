import ArgumentParser
import Foundation
import QForgeData
import QForgeNN
import QForgeQuant
import QForgeReport
import QForgeTensor

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Evaluate a saved model on a data set's test split.")

    @Argument(help: "The model file (.safetensors).")
    var model: String

    @OptionGroup var data: DataOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Nested weights: evaluate the inner (narrower) weights instead of the outer ones.")
    var nestedInner = false

    @Flag(help: "Evaluate the integer model (streamlined from the quantized model) instead.")
    var integer = false

    @OptionGroup var streamlining: StreamlineArguments

    func run() throws {
        let m = try Model.loadAny(from: model)
        if nestedInner && nestedWindows(m).isEmpty { throw CommandError("\(model) has no nested weights; --nested-inner needs a model trained with --nested") }
        let (_, test) = try data.load()
        let start = Date()
        let e: Evaluation
        if integer {
            let (loaded, im) = try loadInteger(model, streamlining)
            e = try evaluateInteger(loaded, integer: im, on: test)
        } else {
            e = try LayerContext.withNestedView(nestedInner) { try m.evaluate(test) }
        }
        let seconds = Date().timeIntervalSince(start)
        printEvaluation(e, names: test.targetNames)
        print(String(format: "inference samples/s: %.0f", Double(test.count) / seconds))
        if output.json {
            var obj = evaluationJSON(e, names: test.targetNames)
            obj["inference_samples_per_second"] = Double(test.count) / seconds
            obj["output"] = NSNull()
            obj["train_samples_per_second"] = NSNull()
            printJSON(obj)
        }
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a saved model on a batch of inputs from a .npy file and write its outputs as .npy.")

    @Argument(help: "The model file (.safetensors).")
    var model: String

    @Option(help: "Inputs: a .npy array [N, ...] (float32, uint8 or int64, values as the model was trained on).")
    var input: String

    @Option(name: [.short, .long], help: "Where to write the outputs (.npy, float32 [N, outputs]).")
    var out: String

    @OptionGroup var output: OutputOptions

    func run() throws {
        let m = try Model.loadAny(from: model)
        let x = try readNpy(input).asTensor()
        let per = m.inputShape.reduce(1, *)
        guard x.rank >= 1, x.count == x.shape[0] * per else {
            throw CommandError("\(input): shape \(x.shape) does not hold samples of \(m.inputShape) (\(per) values each) for model \(m.name)")
        }
        let y = m.predict(Tensor(shape: [x.shape[0], per], storage: x.storage))
        try writeNpy(y, to: out)
        print("wrote \(out): \(y.shape)")
        if output.json { printJSON(["output": out, "samples": x.shape[0], "output_shape": y.shape]) }
    }
}
