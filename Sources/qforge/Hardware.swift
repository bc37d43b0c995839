import ArgumentParser
import Foundation
import QForgeData
import QForgeEDA
import QForgeGraph
import QForgeHardware
import QForgeInteger
import QForgeNN
import QForgeTensor

extension Simulator: ExpressibleByArgument {}

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a quantized or integer model into a folded dataflow or fully parallel design: Verilog, memory files, a self-checking testbench, test vectors and manifest.json.",
        discussion: """
            Dense (Gemm) and convolution layers, max-pool (stride = kernel) and flatten. Each layer becomes a \
            matrix-vector unit with PE output channels and SIMD inputs in parallel, taking K/SIMD × M/PE cycles \
            per input vector; a convolution reads K = kh·kw·C codes per output pixel through a sliding window \
            over a line buffer of a few input rows (SIMD must divide C), and feature maps stream pixel by pixel, \
            channels fastest. Default folding: per layer the largest divisor of M up to 8 as PE and of K (C for a \
            convolution) up to 8 as SIMD. --fold takes a JSON file \
            {"layers": [{"pe": 8, "simd": 16}, ...]} (or a bare list), or inline PExSIMD per layer: 8x16,4x8,1x4.
            The input stream carries the first layer's SIMD codes per beat; the output stream one accumulator \
            of the last layer per beat.
            Automatic folding: --target-fps F (at --clock-mhz C) gives every layer the fewest multipliers \
            (PE·SIMD) that keep it within C·10⁶/F cycles per inference; --max-multipliers N the fastest \
            folding with Σ PE·SIMD ≤ N. The chosen folding and its expected cycles are printed.
            --style parallel: every layer one pipeline stage with its weights as constants, one inference per \
            clock; the whole input vector per input beat and all last accumulators per output beat (or the \
            argmax). Dense layers only, and at most \(HardwareGraph.parallelMultiplierLimit) multipliers \
            (Σ M·K) unless --max-multipliers raises the limit.
            """)

    @Argument(help: "A quantized model file (.safetensors, streamlined as compile-int does) or an integer model file (written by compile-int).")
    var model: String

    @Option(name: [.short, .customLong("out")], help: "The build directory to write.")
    var out: String = "build"

    @Option(help: "Hardware style: folded or parallel.")
    var style: String = "folded"

    @Option(help: "Folding: a JSON file, or inline PExSIMD per layer (8x16,4x8,1x4).")
    var fold: String?

    @Option(help: "Choose the folding for this many inferences per second at --clock-mhz (the fewest multipliers that reach it).")
    var targetFps: Double?

    @Option(help: "Clock frequency for --target-fps, in MHz.")
    var clockMhz: Double = 100

    @Option(help: "Choose the fastest folding with at most this many multipliers (Σ PE·SIMD); with --style parallel, the size limit (Σ M·K).")
    var maxMultipliers: Int?

    @Option(help: "Test vectors to write (default 100, or every sample of --input).")
    var samples: Int?

    @Option(help: "Vector inputs: fashion-mnist (the test set), random (the input grid, extremes included), or auto (Fashion-MNIST when the model takes 784 features and the data is installed).")
    var inputs: String = "auto"

    @Option(name: [.customLong("data-path")], help: "Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist or $QFORGE_FASHION_MNIST).")
    var dataPath: String?

    @Option(help: "Vector inputs from the first --samples of this data set's test split (fashion-mnist, magnetometer, or csv with --data-path), prepared as the model's own inputs; overrides --inputs.")
    var dataset: String?

    @Option(help: "Seed of the generated data set (magnetometer) or of the CSV split, as in train and eval.")
    var dataSeed: UInt64 = 0

    @Option(help: "Vector inputs from a .npy array [N, ...] (float32, uint8 or int64, values as for predict), e.g. the reference images that came with an imported model; the first --samples of them (all when --samples is not given). Overrides --dataset and --inputs.")
    var input: String?

    @Option(help: "Seed of random input vectors.")
    var seed: UInt64 = 0

    @Option(help: "Prefix of every module and file name.")
    var prefix: String = "qf"

    @Flag(help: "Output the index of the largest last accumulator (the class) instead of the accumulators: one beat per inference.")
    var argmax = false

    @Flag(help: "Layer taps (folded style): the testbench also checks the stream after every layer against the integer model and names each failed sample's first differing layer.")
    var taps = false

    @Flag(help: "Write into a non-empty build directory (files of the same names are replaced).")
    var force = false

    @OptionGroup var streamlining: StreamlineArguments
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard let style = HardwareStyle(rawValue: self.style) else { throw ValidationError("--style must be folded or parallel") }
        if targetFps != nil && maxMultipliers != nil && style == .folded {
            throw ValidationError("--target-fps and --max-multipliers each choose the folding: give one of them")
        }
        if fold != nil && (targetFps != nil || (maxMultipliers != nil && style == .folded)) {
            throw ValidationError("--fold sets the folding, --target-fps and --max-multipliers choose one: give one of them")
        }
        if style == .parallel && (fold != nil || targetFps != nil) {
            throw ValidationError("--style parallel has no folding (one inference per clock): drop --fold and --target-fps, or use --style folded")
        }
        if style == .parallel && taps {
            throw ValidationError("--taps checks the streams between the units of the folded style; the parallel style has none: drop --taps or use --style folded")
        }
        if let n = maxMultipliers, n < 1 { throw ValidationError("--max-multipliers must be positive") }
        if let samples, samples < 1 { throw ValidationError("--samples must be positive") }
        guard ["auto", "fashion-mnist", "random"].contains(inputs) else { throw ValidationError("--inputs must be auto, fashion-mnist or random") }
    }

    func run() throws {
        let (integer, quantized) = try loadIntegerModel(model, streamlining)
        let graph: HardwareGraph
        var chosen: String?
        do {
            if style == HardwareStyle.parallel.rawValue {
                graph = try HardwareGraph.parallel(integer, prefix: prefix, argmax: argmax,
                                                   multiplierLimit: maxMultipliers ?? HardwareGraph.parallelMultiplierLimit)
            } else {
                var foldings = try fold.map { try parseFolding($0, layers: integer.layers.count) }
                if targetFps != nil || maxMultipliers != nil {
                    let search = FoldingSearch(integer)
                    if let fps = targetFps {
                        foldings = try search.forTarget(fps: fps, clockMHz: clockMhz)
                        chosen = "for \(fps) inferences/s at \(clockMhz) MHz (at most \(Int((clockMhz * 1e6 / fps).rounded(.down))) cycles per inference)"
                    } else if let n = maxMultipliers {
                        foldings = try search.forMultipliers(n)
                        chosen = "for at most \(n) multipliers"
                    }
                }
                graph = try HardwareGraph(integer, foldings: foldings, prefix: prefix, argmax: argmax)
            }
        } catch let e as HardwareError {
            throw CommandError("\(model): \(e)")
        } catch let e as FoldingSearchError {
            throw CommandError("\(model): \(e)")
        }
        let vectors = try makeVectors(integer, quantized)
        let design = HardwareDesign(graph, vectors: vectors, integerModel: integer)
        do { try design.write(to: out, force: force) } catch let e as HardwareError { throw CommandError("\(e)") }
        let rows = graph.units.map { u -> [String] in
            let pools = graph.pools.filter { $0.before == u.index }.map { "pool \($0.kernel)×\($0.kernel), " }.joined()
            let product = u.window.map { "conv \($0.kernelHeight)×\($0.kernelWidth) \($0.channels)→\(u.outputs) @\($0.outHeight)×\($0.outWidth)" } ?? "\(u.inputs)→\(u.outputs)"
            return [u.layerName, pools + product, "\(u.folding.pe)", "\(u.folding.simd)", "\(u.inputBits)", "\(u.weightBits)",
             "\(u.accBits)", u.requantization.name, "\(u.outputBits)", "\(u.cycles)"]
        }
        printMarkdownTable([["layer", "product", "PE", "SIMD", "in bits", "w bits", "acc bits", "requant", "out bits", "cycles"]] + rows)
        print("input: \(graph.inputLanes) codes per beat, \(graph.inputBeats) beats per inference; output: "
              + (graph.argmax ? "the argmax of \(graph.units.last!.outputs) accumulators, \(graph.outputValueBits) bits"
                 : "\(graph.units.last!.outputs) accumulators of \(graph.outputValueBits) bits, \(graph.outputLanes) per beat"))
        if let chosen {
            let folds = graph.units.map { "\($0.folding.pe)x\($0.folding.simd)" }.joined(separator: ",")
            print("folding chosen \(chosen): \(folds) (PExSIMD per layer), \(FoldingSearch.multipliers(graph.units.map(\.folding))) multipliers")
            print(String(format: "throughput: %.0f inferences/s at %g MHz", clockMhz * 1e6 / Double(graph.expectedCyclesPerInference), clockMhz))
        }
        if graph.style == .parallel {
            print("style: fully parallel, \(HardwareGraph.parallelMultipliers(integer)) constant multipliers (Σ M·K)")
        }
        print("expected: \(graph.expectedCyclesPerInference) cycles per inference, latency \(graph.expectedLatency) cycles")
        print("vectors: \(vectors.count) from \(vectors.source)" + (taps ? ", with taps after \(graph.units.count - 1) layers" : ""))
        print("wrote \(design.files.count) files to \(out)")
        if output.json {
            printJSON(["out": out, "top": graph.top, "style": graph.style.rawValue, "files": design.files.count, "vectors": vectors.count,
                       "folding": graph.units.map { "\($0.folding.pe)x\($0.folding.simd)" },
                       "expected_cycles_per_inference": graph.expectedCyclesPerInference, "expected_latency": graph.expectedLatency])
        }
    }

    func makeVectors(_ integer: IntegerModel, _ quantized: Model?) throws -> TestVectors {
        let features = integer.inputShape.reduce(1, *)
        if let input {
            let all = try readNpy(input).asTensor()
            guard all.rank >= 1, all.shape[0] >= 1, all.count == all.shape[0] * features else {
                throw CommandError("\(input): shape \(all.shape) does not hold samples of \(integer.inputShape) (\(features) values each) for \(model)")
            }
            let n = samples ?? all.shape[0]
            guard n <= all.shape[0] else { throw CommandError("\(input): --samples \(n) asks for more than its \(all.shape[0]) samples") }
            let x = Tensor(shape: [n, features], scalars: Array(all.scalars.prefix(n * features)))
            let prepared = quantized?.prepareInputs(x) ?? Tensor(shape: [n] + integer.inputShape, storage: x.storage)
            return TestVectors(model: integer, inputs: integer.quantizeInput(prepared), source: input, taps: taps)
        }
        let samples = self.samples ?? 100
        if let dataset {
            // The test split only: trainLimit 1 keeps a generated set from making its training half.
            let request = DataCatalog.Request(name: dataset, path: dataPath, trainLimit: 1, testLimit: samples, seed: dataSeed,
                                              classification: quantized?.task != .regression)
            let test: Dataset
            do { test = try DataCatalog.load(request).test } catch { throw CommandError("--dataset \(dataset): \(error)") }
            guard test.inputs.count / max(test.inputs.shape[0], 1) == features else {
                throw CommandError("\(model): the model takes \(features) features, \(dataset) samples have \(test.inputs.count / max(test.inputs.shape[0], 1))")
            }
            let x = quantized?.prepareInputs(test.inputs) ?? Tensor(shape: [test.inputs.shape[0]] + integer.inputShape, storage: test.inputs.storage)
            return TestVectors(model: integer, inputs: integer.quantizeInput(x), source: "\(dataset) test set", taps: taps)
        }
        var useData = inputs == "fashion-mnist"
        if inputs == "auto" && features == FashionMNIST.imageSize * FashionMNIST.imageSize {
            useData = (try? FashionMNIST.resolveDirectory(dataPath)) != nil
        }
        guard useData else {
            return TestVectors(model: integer, inputs: TestVectors.randomInputs(integer, count: samples, seed: seed), source: "random (seed \(seed))", taps: taps)
        }
        let test = try FashionMNIST.load(.test, directory: dataPath, limit: samples)
        guard test.inputs.count / test.inputs.shape[0] == features else {
            throw CommandError("the model takes \(features) features, Fashion-MNIST images have \(FashionMNIST.imageSize * FashionMNIST.imageSize); use --inputs random")
        }
        let x = quantized?.prepareInputs(test.inputs) ?? Tensor(shape: [test.inputs.shape[0]] + integer.inputShape, storage: test.inputs.storage)
        return TestVectors(model: integer, inputs: integer.quantizeInput(x), source: "fashion-mnist test set", taps: taps)
    }
}

/// An integer model from an integer model file, or streamlined from a quantized model file
/// (then also the quantized model, whose input preparation the vectors use).
func loadIntegerModel(_ path: String, _ arguments: StreamlineArguments) throws -> (IntegerModel, Model?) {
    if let file = try? Safetensors.read(path), file.metadata["qforge_integer_model"] != nil {
        do { return (try IntegerModelFile.load(path), nil) } catch let e as IntegerModelFileError { throw CommandError("\(e)") }
    }
    let (m, integer) = try loadInteger(path, arguments)
    return (integer, m)
}

/// Foldings from a JSON file ({"layers": [{"pe": P, "simd": S}, ...]} or a bare list) or inline "PxS,PxS".
func parseFolding(_ text: String, layers: Int) throws -> [Folding] {
    var foldings: [Folding]
    if FileManager.default.fileExists(atPath: text) {
        guard let data = FileManager.default.contents(atPath: text) else { throw CommandError("cannot read \(text)") }
        struct File: Decodable { var layers: [Folding] }
        if let f = try? JSONDecoder().decode(File.self, from: data) {
            foldings = f.layers
        } else if let list = try? JSONDecoder().decode([Folding].self, from: data) {
            foldings = list
        } else {
            throw CommandError("\(text): expected {\"layers\": [{\"pe\": P, \"simd\": S}, ...]} or a list of such objects")
        }
    } else {
        foldings = try text.split(separator: ",").map { item in
            let parts = item.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2 else { throw CommandError("--fold: '\(item)' is not PExSIMD (e.g. 8x16), and \(text) is not a file") }
            return Folding(pe: parts[0], simd: parts[1])
        }
    }
    guard foldings.count == layers else { throw CommandError("--fold lists \(foldings.count) layers, the model has \(layers)") }
    return foldings
}

struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build and run a compiled design's self-checking testbench in Verilator or Icarus: every output word is compared with the integer model.")

    @Argument(help: "The build directory written by qforge compile.")
    var directory: String

    @Option(help: "verilator or icarus.")
    var simulator: Simulator = .verilator

    @Option(help: "Samples to check (default: all vectors in the build directory).")
    var samples: Int?

    @Option(help: "Seed of the random stalls.")
    var seed: Int = 1

    @Option(help: "Chance in percent that input valid or output ready drops in a cycle.")
    var stall: Int = 30

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if let n = samples, n < 1 { throw ValidationError("--samples must be positive") }
        guard (0...95).contains(stall) else { throw ValidationError("--stall must be 0...95") }
    }

    func run() throws {
        let result: SimulationResult
        do {
            result = try simulate(directory: directory, simulator: simulator,
                                  options: SimulationOptions(samples: samples, seed: seed, stallPercent: stall))
        } catch let e as EDAError {
            throw CommandError("\(e)")
        } catch let e as HardwareError {
            throw CommandError("\(e)")
        }
        let r = result.report
        // Kept beside the design for qforge report.
        try? SimulationRecord(simulator: simulator, report: r).write(directory: directory)
        for f in r.failures { print(f) }
        print("\(simulator.rawValue): \(r.passed) passed, \(r.failed) failed")
        print("cycles per inference: \(r.cyclesPerInference) (expected \(r.expectedCyclesPerInference)); latency: \(r.latency) cycles (expected \(r.expectedLatency))")
        print(String(format: "simulated %d cycles in %.2f s (%.0f cycles/s); build %.1f s", r.cycles, result.runSeconds, result.cyclesPerSecond, result.buildSeconds))
        if r.cyclesPerInference != r.expectedCyclesPerInference || r.latency != r.expectedLatency {
            note("warning: measured cycles differ from the manifest's expectation")
        }
        if output.json {
            printJSON(["passed": r.passed, "failed": r.failed, "cycles_per_inference": r.cyclesPerInference,
                       "expected_cycles_per_inference": r.expectedCyclesPerInference, "latency": r.latency, "expected_latency": r.expectedLatency,
                       "simulator": simulator.rawValue, "cycles": r.cycles, "cycles_per_second": result.cyclesPerSecond])
        }
        if r.failed > 0 || r.passed == 0 { throw ExitCode(1) }
    }
}

struct Lint: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run verilator --lint-only -Wall on a compiled design's RTL.")

    @Argument(help: "The build directory written by qforge compile.")
    var directory: String

    @OptionGroup var output: OutputOptions

    func run() throws {
        let diagnostics: [Diagnostic]
        do { diagnostics = try lint(directory: directory) } catch let e as EDAError {
            throw CommandError("\(e)")
        } catch let e as HardwareError {
            throw CommandError("\(e)")
        }
        for d in diagnostics { print(d) }
        print(diagnostics.isEmpty ? "lint clean: verilator --lint-only -Wall reported nothing" : "\(diagnostics.count) lint diagnostics")
        if output.json { printJSON(["diagnostics": diagnostics.map(\.description)]) }
        if !diagnostics.isEmpty { throw ExitCode(1) }
    }
}
