import ArgumentParser
import Foundation
import QForgeData
import QForgeEDA
import QForgeNN

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "End to end on built-in data: magnetometer data → train magnet-small → 8-bit post-training quantization → integer model → folded Verilog → simulation, every output word checked.",
        discussion: """
            Runs the same steps as `qforge train`, `quantize`, `compile` and `sim`, in that order, and prints what each prints. \
            The simulation needs Verilator or Icarus (Debian packages verilator, iverilog); without either, the demo stops after compile and says so.
            """)

    @Option(help: "Training samples to generate.")
    var samples: Int = 20_000

    @Option(help: "Training epochs.")
    var epochs: Int = 30

    @Option(name: [.short, .long], help: "Where to save the float model.")
    var out: String = "magnet-small.safetensors"

    @Option(help: "Where to save the quantized model (default: the float model's name with -w8a8).")
    var quantized: String?

    @Option(help: "The design's directory (replaced only with --force).")
    var build: String = "demo-build"

    @Option(help: "Held-out samples simulated against the integer model.")
    var simSamples: Int = 100

    @Option(help: "verilator, icarus, or auto (Verilator when installed, else Icarus).")
    var simulator: String = "auto"

    @Flag(help: "Replace an existing design directory.")
    var force = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if samples <= 0 || epochs <= 0 || simSamples <= 0 { throw ValidationError("--samples, --epochs and --sim-samples must be positive") }
        guard simulator == "auto" || Simulator(rawValue: simulator) != nil else { throw ValidationError("--simulator must be verilator, icarus or auto") }
    }

    var quantizedPath: String {
        quantized ?? ((out as NSString).deletingPathExtension + "-w8a8.safetensors")
    }

    func run() throws {
        // Refuse before training, not after: the design directory is never overwritten without --force.
        if FileManager.default.fileExists(atPath: build) && !force {
            throw CommandError("\(build) exists; pass --force to replace it, or choose another --build directory")
        }
        try checkWritable(out)
        try checkWritable(quantizedPath)

        print("== 1. train magnet-small (float)")
        let (train, test) = try DataCatalog.load(DataCatalog.Request(name: "magnetometer", samples: samples))
        print("data: \(train.count) training and \(test.count) held-out magnetometer samples (27 field readings → dipole position and moment)")
        var model = try Model(Presets.description("magnet-small"), seed: 0)
        let printer = ProgressPrinter()
        let result = try Trainer.train(&model, on: train, test: test,
                                       options: TrainingOptions(epochs: epochs, batchSize: 128, schedule: .cosine(epochs: epochs, minimum: 1e-5), seed: 0, evaluateEachEpoch: false),
                                       progress: printer.update, epochEnd: printer.epochEnd)
        try model.save(to: out)
        try reportTraining(model, result, test: test, path: out, json: output.json)

        let data = ["--dataset", "magnetometer", "--samples", "\(samples)"]
        print("\n== 2. qforge quantize \(out) --wbits 8 --abits 8 (max calibration)")
        var quantize = try Quantize.parse([out, "--wbits", "8", "--abits", "8", "-o", quantizedPath] + data)
        try quantize.run()

        print("\n== 3. qforge compile \(quantizedPath) -o \(build)")
        // Compile's --samples is the vector count; its held-out samples come from the same generator.
        var compile = try Compile.parse([quantizedPath, "-o", build, "--dataset", "magnetometer", "--samples", "\(simSamples)"] + (force ? ["--force"] : []))
        try compile.run()

        let chosen: Simulator
        if let s = Simulator(rawValue: simulator) {
            chosen = s
        } else if Tool.verilator.isAvailable() {
            chosen = .verilator
        } else if Tool.iverilog.isAvailable() {
            chosen = .icarus
        } else {
            print("\nno simulator found (install the Debian package verilator or iverilog); the design is in \(build), run `qforge sim \(build)` later")
            return
        }
        print("\n== 4. qforge sim \(build) --simulator \(chosen.rawValue)")
        var sim = try Sim.parse([build, "--simulator", chosen.rawValue])
        try sim.run()
    }
}
