import ArgumentParser
import Foundation
import QForgeData
import QForgeNN

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "End to end on built-in data: magnetometer data → train magnet-small → evaluate.")

    @Option(help: "Training samples to generate.")
    var samples: Int = 20_000

    @Option(help: "Training epochs.")
    var epochs: Int = 30

    @Option(name: [.short, .long], help: "Where to save the model.")
    var out: String = "magnet-small.safetensors"

    @OptionGroup var output: OutputOptions

    func run() throws {
        let (train, test) = try DataCatalog.load(DataCatalog.Request(name: "magnetometer", samples: samples))
        print("data: \(train.count) training and \(test.count) held-out magnetometer samples (27 field readings → dipole position and moment)")
        var model = try Model(Presets.description("magnet-small"), seed: 0)
        try checkWritable(out)
        let printer = ProgressPrinter()
        let result = try Trainer.train(&model, on: train, test: test,
                                       options: TrainingOptions(epochs: epochs, batchSize: 128, schedule: .cosine(epochs: epochs, minimum: 1e-5), seed: 0, evaluateEachEpoch: false),
                                       progress: printer.update, epochEnd: printer.epochEnd)
        try model.save(to: out)
        try reportTraining(model, result, test: test, path: out, json: output.json)
    }
}
