import ArgumentParser

@main
struct QForge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qforge",
        abstract: "Train quantized neural networks and turn them into verified hardware.",
        version: "0.1.0",
        subcommands: [Train.self, Quantize.self, SweepBits.self, CompileInt.self, Compile.self, Sim.self, Lint.self, Synth.self, Estimate.self, Units.self,
                      Compare.self, Eval.self, Predict.self, Import.self, Export.self, Bench.self, Demo.self, DSE.self, Report.self])
}
