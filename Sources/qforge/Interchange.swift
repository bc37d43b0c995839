import ArgumentParser
import Foundation
import QForgeGraph
import QForgeNN
import QForgeQuant

extension ONNXExport.Format: ExpressibleByArgument {}

/// Refuses to replace an existing file unless `force`.
func checkOverwrite(_ path: String, force: Bool) throws {
    try checkWritable(path)
    if !force && FileManager.default.fileExists(atPath: path) {
        throw CommandError("\(path) exists; give --force to replace it")
    }
}

/// One line per layer: its index, kind and quantization.
func layerSummary(_ m: Model) -> [[String]] {
    m.network.layers.enumerated().map { i, layer in
        var quant = (layer as? QuantizedLayer)?.quantizers.map { name, q in
            let s = q.settings
            return "\(name) \(s.bipolar ? "bipolar" : "\(s.bitWidth)-bit \(s.signed ? "signed" : "unsigned")\(s.narrow ? " narrow" : "")")"
        }.joined(separator: ", ") ?? ""
        if let t = layer as? ThresholdActivation {
            quant = "MultiThreshold \(t.thresholds.shape[0])×\(t.thresholds.shape[1]), out_scale \(t.outScale), out_bias \(t.outBias)"
        } else if let t = layer as? TruncActivation {
            quant = "Trunc v\(t.outputScale == nil ? 1 : 2) \(t.inputBits)→\(t.outputBits)-bit \(t.signed ? "signed" : "unsigned"), \(t.rounding.rawValue)"
        }
        return ["layers.\(i)", "\(type(of: layer))", quant]
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import an ONNX or QONNX model (as Brevitas exports it) into a QForge model file.",
        discussion: "External tensor data (.onnx.data) is read from beside the model. The result works with eval, predict, compare, compile-int and export; those also read .onnx files directly.")

    @Argument(help: "The ONNX or QONNX model (.onnx).")
    var model: String

    @Option(name: [.short, .long], help: "Where to write the QForge model file. Default: NAME.safetensors in the current directory.")
    var out: String?

    @Flag(help: "Replace the output file if it exists.")
    var force = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        let base = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let path = out ?? base.replacingOccurrences(of: ".qonnx", with: "") + ".safetensors"
        try checkOverwrite(path, force: force)
        let (graph, tensors) = try ONNXImport.load(model)
        let m = try Model(imported: graph, tensors: tensors, path: model)
        try ModelFile.save(graph: graph, tensors: tensors, to: path)
        print("\(model): \(graph.metadata[ONNXImport.metaSource] ?? "onnx") model \(m.name), input \(m.inputShape), \(m.network.layers.count) layers")
        printMarkdownTable([["layer", "type", "quantizers"]] + layerSummary(m))
        print("saved: \(path)")
        if output.json {
            printJSON(["output": path, "model": m.name, "input_shape": m.inputShape, "layers": m.network.layers.map { "\(type(of: $0))" }])
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a QForge model to ONNX: QONNX (Quant nodes, for the qonnx package and FINN) or QDQ (QuantizeLinear/DequantizeLinear, for any ONNX runtime).")

    @Argument(help: "The model file (.safetensors, or .onnx).")
    var model: String

    @Option(help: "qonnx (Quant nodes) or qdq (QuantizeLinear/DequantizeLinear; activations of 8 bits or fewer).")
    var format: ONNXExport.Format = .qonnx

    @Option(name: [.short, .long], help: "Where to write the ONNX file.")
    var out: String

    @Option(help: "Batch size written into the file: a number, or N for a symbolic batch. Default: 1 for qonnx (as Brevitas exports and qonnx/FINN expect), N for qdq.")
    var batch: String?

    @Flag(help: "Replace the output file if it exists.")
    var force = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if let batch, batch != "N", (Int(batch) ?? 0) < 1 { throw ValidationError("--batch must be a positive number or N, not '\(batch)'") }
    }

    func run() throws {
        try checkOverwrite(out, force: force)
        let m = try Model.loadAny(from: model)
        let (graph, tensors) = try m.lowered()
        let size = batch.map { $0 == "N" ? nil : Int($0) } ?? (format == .qonnx ? 1 : nil)
        try ONNXExport.write(graph: graph, tensors: tensors, format: format, batch: size, to: out)
        print("exported \(model) (\(m.name), \(m.network.layers.count) layers) as \(format.rawValue.uppercased()) ONNX: \(out)")
        if output.json { printJSON(["output": out, "format": format.rawValue, "model": m.name]) }
    }
}
