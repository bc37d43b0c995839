import ArgumentParser
import Foundation
import QForgeData
import QForgeEDA
import QForgeHardware
import QForgeNN
import QForgeQuant
import QForgeReport

struct DSE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dse",
        abstract: "Design-space exploration: bit widths × foldings, each trained or quantized, evaluated, compiled, simulated and synthesized; Pareto plots.",
        subcommands: [DSERun.self, DSEMerge.self],
        defaultSubcommand: DSERun.self)
}

struct DSERun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a sweep (or one shard of it) and, without --shard, merge it: qforge dse SOURCE --bits 2,4,8 --fold auto:F1,F2 -o DIR.",
        discussion: """
            SOURCE is a preset (trained with QAT at each width, weights and activations alike; the trained \
            models are kept in DIR/models and reused by later runs with the same preset, width, epochs and seed) \
            or a float model file (quantized with post-training quantization, max calibration, at each width). \
            Points are every width with every folding target, numbered width-major. Each point: the integer \
            model's test accuracy, the design compiled with the folding that reaches F inferences/s at \
            --clock-mhz, --samples test images simulated against the integer model, synthesis for --target; \
            its figures go to DIR/points/<point>.json. A point already complete in DIR is not run again. \
            A simulation mismatch or a failed step is recorded in the point and makes the command exit 1. \
            --shard i/n runs only the points whose index ≡ i (mod n); merge the shards' directories with \
            qforge dse merge. Without --shard all points run and DIR gets dse.json and the Pareto plots.
            """)

    @Argument(help: "A preset (\(Presets.names.joined(separator: ", "))) or a float model file (.safetensors).")
    var source: String

    @Option(help: "Bit widths of weights and activations, comma-separated.")
    var bits: String = "2,4,8"

    @Option(help: "Foldings: auto:F1,F2,... target inferences per second at --clock-mhz (k and M suffixes allowed).")
    var fold: String

    @Option(help: "Synthesis target: asic, ice40 or xilinx.")
    var target: SynthesisTarget = .asic

    @Option(help: "iCE40 part: up5k or hx8k.")
    var device: ICE40Device = .up5k

    @Option(name: .customLong("clock-mhz"), help: "The clock the folding targets and synthesis assume (MHz).")
    var clockMHz: Double = 100

    @Option(help: "Test images simulated per point.")
    var samples: Int = 100

    @Option(help: "verilator or icarus.")
    var simulator: Simulator = .verilator

    @Option(help: "Run only the points with index ≡ i (mod n): i/n, shards numbered from 0.")
    var shard: String?

    @Option(help: "Seed of weight initialisation and shuffling (QAT) or of the calibration batches (PTQ).")
    var seed: UInt64 = 0

    @OptionGroup var training: TrainingArguments

    @Option(help: "Data set: fashion-mnist, magnetometer or csv; auto: magnetometer for the magnet presets, else fashion-mnist.")
    var dataset: String = "auto"

    @Option(name: [.customLong("data-path")], help: "Fashion-MNIST directory or the CSV file.")
    var dataPath: String?

    @Option(help: "Use only the first N training samples.")
    var trainLimit: Int?

    @Option(help: "Use only the first N test samples (accuracy).")
    var testLimit: Int?

    @Option(help: "Magnetometer: training samples to generate.")
    var dataSamples: Int = 50_000

    @Option(name: [.short, .customLong("out")], help: "The sweep's directory.")
    var out: String

    func run() throws {
        let fm = FileManager.default
        let isFile = fm.fileExists(atPath: source)
        guard isFile || Presets.names.contains(source) else {
            throw CommandError("unknown preset '\(source)' (and no such model file): give one of \(Presets.names.joined(separator: ", ")), or a float model file (.safetensors)")
        }
        let shard: Shard
        let widths: [Int], rates: [Double]
        do {
            shard = try self.shard.map { try Shard(parsing: $0) } ?? .all
            widths = try parseBitWidths(bits)
            rates = try parseFoldTargets(fold)
        } catch let e as DSEError { throw CommandError("\(e)") }
        guard clockMHz > 0, clockMHz.isFinite else { throw CommandError("--clock-mhz \(clockMHz): give a positive frequency") }
        guard samples >= 1 else { throw CommandError("--samples \(samples): simulate at least 1 test image") }
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: out, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw CommandError("\(out) exists and is not a directory; give -o a new or earlier sweep directory")
        }
        do { try DSERunner.checkTools(simulator: simulator, target: target) } catch let e as EDAError { throw CommandError("qforge dse: \(e)") }
        let data = dataset != "auto" ? dataset : (source.hasPrefix("magnet") && !isFile ? "magnetometer" : "fashion-mnist")
        let sweep = DSESweep(source: source, kind: isFile ? .model : .preset, bits: widths, fps: rates, target: target,
                             device: target == .ice40 ? device.rawValue : nil, clockMHz: clockMHz, epochs: isFile ? 0 : training.epochs,
                             seed: seed, samples: samples, dataset: data, trainLimit: trainLimit, testLimit: testLimit)
        if isFile {
            let float = try Model.loadAny(from: source)
            if float.network.layers.contains(where: { $0 is QuantizedLayer }) {
                throw CommandError("\(source) is already quantized; qforge dse quantizes at each width itself: give a float model file or a preset")
            }
        }
        let request = DataCatalog.Request(name: data, path: dataPath, trainLimit: trainLimit, testLimit: testLimit, samples: dataSamples,
                                          classification: true)
        let (train, test) = try DataCatalog.load(request)
        let synthesis = SynthesisOptions(target: target, clockMHz: clockMHz, device: device)
        var configuration = DSEConfiguration(sweep: sweep, directory: out, train: train, test: test,
                                             training: try training.options(seed: seed), synthesis: synthesis)
        configuration.simulator = simulator
        let runner = DSERunner(configuration,
                               log: note, trainingProgress: ProgressPrinter().update)
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        note("\(sweep.count) points (\(widths.count) widths × \(rates.count) foldings)" + (shard == .all ? "" : ", shard \(shard): \(((0..<sweep.count).filter(shard.includes)).count) of them"))
        let points = try runner.run(shard: shard)
        var failed = points.filter { !$0.errors.isEmpty }
        if shard == .all {
            let result = try loadDSE([out])
            printDSE(result, files: try writeDSE(result, to: out))
            failed = result.failures
        } else {
            print("shard \(shard): \(points.count) points written to \((out as NSString).appendingPathComponent("points")); merge all shards with qforge dse merge")
        }
        if !failed.isEmpty {
            for p in failed { note("\(p.name): " + p.errors.joined(separator: "; ")) }
            throw ExitCode(1)
        }
    }
}

struct DSEMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge the point files of a sweep's shards into dse.json and the Pareto plots (SVG).")

    @Argument(help: "Sweep directories written by qforge dse (their points/ folders).")
    var directories: [String]

    @Option(name: [.short, .customLong("out")], help: "Where to write dse.json and the plots (default: the first directory).")
    var out: String?

    func run() throws {
        guard let first = directories.first else { throw CommandError("qforge dse merge: give the sweep directories to merge") }
        let result: DSEResult
        do { result = try loadDSE(directories) } catch let e as DSEError { throw CommandError("\(e)") }
        printDSE(result, files: try writeDSE(result, to: out ?? first))
        if !result.failures.isEmpty {
            for p in result.failures { note("\(p.name): " + p.errors.joined(separator: "; ")) }
            throw ExitCode(1)
        }
    }
}

func printDSE(_ result: DSEResult, files: [String]) {
    printMarkdownTable(dseTable(result))
    print("Pareto front, accuracy against \(result.sweep.target == .asic ? "area" : "LUTs"): " + result.paretoCost.joined(separator: ", "))
    print("Pareto front, accuracy against throughput: " + result.paretoThroughput.joined(separator: ", "))
    print("wrote " + files.joined(separator: ", "))
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write report.html into a build directory: model, accuracy, per-layer errors, folding and cycles, simulation, synthesis per target, plots.")

    @Argument(help: "The build directory written by qforge compile (sim and synth results in it are included).")
    var directory: String

    @Option(help: "The quantized model file compiled into it: adds its accuracy and the per-layer error table (on --dataset's test split).")
    var model: String?

    @OptionGroup var data: DataOptions

    @OptionGroup var streamlining: StreamlineArguments

    func run() throws {
        var report: BuildReport
        do { report = try BuildReport(directory: directory) } catch let e as HardwareError {
            throw CommandError("\(e)")
        } catch let e as DSEError {
            throw CommandError("\(e)")
        } catch let e as EDAError {
            throw CommandError("\(e)")
        }
        if let model {
            let (m, integer) = try loadInteger(model, streamlining)
            let (_, test) = try data.load()
            try report.addModel(m, integer: integer, path: model, test: test)
        }
        let path = try report.write()
        print("wrote \(path)")
    }
}
