import Foundation
import HardwareTestSupport
import QForgeEDA
import QForgeHardware
import QForgeInteger
import QForgeTensor
import TestSupport
import XCTest

/// Random dense integer models, compiled at several foldings, simulated in Verilator and
/// Icarus on random inputs (range extremes included): every output word must match
/// `IntegerModel.run` and the measured cycles must be the manifest's.
///
/// `QFORGE_HW_MODELS` sets the number of models (default 3), `QFORGE_HW_SEED` the first seed,
/// `QFORGE_HW_SIMULATORS` the simulators (default "verilator,icarus"). `QFORGE_HW_SMALL_MODELS`
/// sets the number of small models of the second test (default 50, every fourth with an argmax
/// output, every third in the fully parallel style): one folding each, linted by
/// Verilator and simulated in Icarus, whose build costs a fraction of Verilator's C++ compile;
/// `QFORGE_HW_KEEP=DIR` keeps a copy of each of its designs. `QFORGE_HW_PARALLEL_MODELS` sets the
/// number of random networks (up to 64 wide) of the third test (default 4, every other with an
/// argmax), fully parallel and simulated in Verilator.
final class RandomModelSimulationTests: XCTestCase {
    var environment: [String: String] { ProcessInfo.processInfo.environment }

    func testRandomModelsAreBitExactAndOnTime() throws {
        let simulators = (environment["QFORGE_HW_SIMULATORS"] ?? "verilator,icarus").split(separator: ",").compactMap { Simulator(rawValue: String($0)) }
        try requireSimulators(simulators)
        let models = Int(environment["QFORGE_HW_MODELS"] ?? "") ?? 3
        let firstSeed = UInt64(environment["QFORGE_HW_SEED"] ?? "") ?? 100
        let dir = try TemporaryDirectory()
        for seed in firstSeed..<(firstSeed + UInt64(models)) {
            var generator = RandomIntegerModel(seed: seed)
            let model = generator.model()
            let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 12, seed: seed), source: "random")
            for (f, folding) in foldings(model, seed: seed).enumerated() {
                let label = "seed \(seed), folding \(folding.map(\.description).joined(separator: "; "))"
                let graph = try HardwareGraph(model, foldings: folding)
                try checkDesign(graph, model, vectors, in: dir, name: "s\(seed)-f\(f)", simulators: simulators,
                                lints: simulators.contains(.verilator), seed: seed, label: label)
            }
        }
    }

    func testManySmallRandomModelsAreBitExactAndOnTime() throws {
        try requireSimulators([.icarus])
        let lints = Tool.verilator.isAvailable()
        let models = Int(environment["QFORGE_HW_SMALL_MODELS"] ?? "") ?? 50
        let firstSeed = UInt64(environment["QFORGE_HW_SEED"] ?? "") ?? 100
        let dir = try TemporaryDirectory()
        for seed in (firstSeed + 1000)..<(firstSeed + 1000 + UInt64(models)) {
            var generator = RandomIntegerModel(seed: seed)
            let model = generator.model(maxLayers: 3, maxSize: 12)
            let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 8, seed: seed), source: "random")
            let all = foldings(model, seed: seed)
            let folding = all[Int(seed % UInt64(all.count))]
            let argmax = seed % 4 == 0
            let parallel = seed % 3 == 2
            let label = "seed \(seed), " + (parallel ? "parallel" : "folding \(folding.map(\.description).joined(separator: "; "))") + (argmax ? ", argmax" : "")
            let graph = parallel ? try HardwareGraph.parallel(model, argmax: argmax) : try HardwareGraph(model, foldings: folding, argmax: argmax)
            try checkDesign(graph, model, vectors, in: dir, name: "s\(seed)", simulators: [.icarus], lints: lints, seed: seed, label: label)
        }
    }

    /// Random convolutional models (convolutions with padding and stride, max-pools, flatten,
    /// dense layers) at three foldings each, linted and simulated in Verilator with random
    /// stalls: every output word bit-exact, cycles per inference and latency as the manifest
    /// says. `QFORGE_HW_CONV_MODELS` sets the number of models (default 3).
    func testRandomConvModelsAreBitExactAndOnTime() throws {
        try requireSimulators([.verilator])
        let models = Int(environment["QFORGE_HW_CONV_MODELS"] ?? "") ?? 3
        let firstSeed = UInt64(environment["QFORGE_HW_SEED"] ?? "") ?? 100
        let dir = try TemporaryDirectory()
        for seed in (firstSeed + 2000)..<(firstSeed + 2000 + UInt64(models)) {
            var generator = RandomIntegerModel(seed: seed)
            let model = generator.convModel()
            let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 10, seed: seed), source: "random")
            for (f, folding) in foldings(model, seed: seed).enumerated() {
                let label = "conv seed \(seed), folding \(folding.map(\.description).joined(separator: "; "))"
                let graph = try HardwareGraph(model, foldings: folding)
                try checkDesign(graph, model, vectors, in: dir, name: "c\(seed)-f\(f)", simulators: [.verilator], lints: true, seed: seed,
                                quickBuild: true, label: label)
            }
        }
    }

    /// Many small random convolutional models, one folding each, linted by Verilator and
    /// simulated in Icarus. `QFORGE_HW_SMALL_CONV_MODELS` sets the number (default 20).
    func testManySmallRandomConvModelsAreBitExactAndOnTime() throws {
        try requireSimulators([.icarus])
        let lints = Tool.verilator.isAvailable()
        let models = Int(environment["QFORGE_HW_SMALL_CONV_MODELS"] ?? "") ?? 20
        let firstSeed = UInt64(environment["QFORGE_HW_SEED"] ?? "") ?? 100
        let dir = try TemporaryDirectory()
        for seed in (firstSeed + 3000)..<(firstSeed + 3000 + UInt64(models)) {
            var generator = RandomIntegerModel(seed: seed)
            let model = generator.convModel(maxChannels: 4, maxSide: 6, maxDense: 8)
            let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 6, seed: seed), source: "random")
            let all = foldings(model, seed: seed)
            let folding = all[Int(seed % UInt64(all.count))]
            let argmax = seed % 4 == 0
            let label = "conv seed \(seed), folding \(folding.map(\.description).joined(separator: "; "))\(argmax ? ", argmax" : "")"
            let graph = try HardwareGraph(model, foldings: folding, argmax: argmax)
            try checkDesign(graph, model, vectors, in: dir, name: "c\(seed)", simulators: [.icarus], lints: lints, seed: seed, label: label)
        }
    }

    /// Line-buffer words that span several memories (beats narrower than the window's SIMD
    /// slice) or hold several slices (beats wider): a model with two convolutions in a row
    /// (seed 2102: 2×2 over 5×8×5, then 3×1 over 5×7×4), the first conv's PE and the second's
    /// SIMD set 1 and 5 both ways; linted by Verilator, simulated in Icarus with random stalls.
    func testLineBufferWordsAcrossBanksAndSlices() throws {
        try requireSimulators([.icarus])
        let lints = Tool.verilator.isAvailable()
        let dir = try TemporaryDirectory()
        var generator = RandomIntegerModel(seed: 2102)
        let model = generator.convModel()
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 4, seed: 2102), source: "random")
        for (pe0, simd1) in [(5, 1), (1, 5)] {
            var folding = model.layers.map { _ in Folding(pe: 1, simd: 1) }
            folding[0].pe = pe0
            folding[1].simd = simd1
            let graph = try HardwareGraph(model, foldings: folding)
            let lb = try XCTUnwrap(graph.units[1].lineBuffer)
            XCTAssertEqual([lb.lanes, lb.simd, lb.wordCodes, lb.banks, lb.slicesPerWord], [pe0, simd1, 5, 5 / pe0, 5 / simd1])
            try checkDesign(graph, model, vectors, in: dir, name: "lb\(pe0)x\(simd1)", simulators: [.icarus], lints: lints, seed: 2102,
                            label: "seed 2102, conv PE \(pe0), next SIMD \(simd1)")
        }
    }

    /// Random dense networks in the fully parallel style (every other one with argmax),
    /// linted and simulated in Verilator with random stalls: bit-exact, one inference per cycle,
    /// latency as the manifest says. `QFORGE_HW_PARALLEL_MODELS` sets the number (default 4).
    func testRandomParallelModelsAreBitExactInVerilator() throws {
        try requireSimulators([.verilator])
        let models = Int(environment["QFORGE_HW_PARALLEL_MODELS"] ?? "") ?? 4
        let firstSeed = UInt64(environment["QFORGE_HW_SEED"] ?? "") ?? 100
        let dir = try TemporaryDirectory()
        for seed in (firstSeed + 4000)..<(firstSeed + 4000 + UInt64(models)) {
            var generator = RandomIntegerModel(seed: seed)
            let model = generator.model(maxLayers: 4, maxSize: 64)
            let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 40, seed: seed), source: "random")
            let argmax = seed % 2 == 1
            let label = "seed \(seed), parallel \(model.layers.map { "\($0.product.weights.shape)" }.joined(separator: " "))\(argmax ? ", argmax" : "")"
            let graph = try HardwareGraph.parallel(model, argmax: argmax)
            XCTAssertEqual(graph.expectedCyclesPerInference, 1, "\(label): one inference per cycle")  // measured below against it
            try checkDesign(graph, model, vectors, in: dir, name: "p\(seed)", simulators: [.verilator], lints: true, seed: seed,
                            quickBuild: true, label: label)
        }
    }

    /// Writes `graph`'s design to `dir/name` (with `QFORGE_HW_KEEP=DIR`, a copy there too, to
    /// debug a failure), lints it in Verilator when `lints`, and simulates it with random stalls
    /// in each of `simulators`: every output word of `vectors` bit-exact, and cycles per
    /// inference and latency as the graph expects.
    func checkDesign(_ graph: HardwareGraph, _ model: IntegerModel, _ vectors: TestVectors, in dir: TemporaryDirectory, name: String,
                     simulators: [Simulator], lints: Bool, seed: UInt64, quickBuild: Bool = false, label: String,
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let path = dir.file(name)
        try HardwareDesign(graph, vectors: vectors, integerModel: model).write(to: path)
        if let keep = environment["QFORGE_HW_KEEP"] {
            try? FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)
            try? FileManager.default.copyItem(atPath: path, toPath: (keep as NSString).appendingPathComponent(name))
        }
        if lints { XCTAssertEqual(try lint(directory: path).map(\.description), [], "lint, \(label)", file: file, line: line) }
        for simulator in simulators {
            let r = try simulate(directory: path, simulator: simulator, options: SimulationOptions(seed: Int(seed), quickBuild: quickBuild)).report
            let context = "\(simulator), \(label)"
            XCTAssertEqual(r.failed, 0, "\(context): \(r.failures.prefix(5))", file: file, line: line)
            XCTAssertEqual(r.passed, vectors.count, context, file: file, line: line)
            XCTAssertEqual(r.cyclesPerInference, graph.expectedCyclesPerInference, "\(context): cycles per inference", file: file, line: line)
            XCTAssertEqual(r.latency, graph.expectedLatency, "\(context): latency", file: file, line: line)
        }
    }

    /// PE = SIMD = 1, everything parallel, and a random divisor pair per layer (SIMD over the
    /// input channels of a convolution).
    func foldings(_ model: IntegerModel, seed: UInt64) -> [[Folding]] {
        var rng = SeededRandom(seed: seed &* 31)
        func divisor(_ n: Int) -> Int {
            let all = (1...n).filter { n % $0 == 0 }
            return all[Int(rng.next() % UInt64(all.count))]
        }
        let shapes = model.layers.map { ($0.product.weights.shape[0], $0.product.weights.shape[1]) }
        return [
            shapes.map { _ in Folding(pe: 1, simd: 1) },
            shapes.map { Folding(pe: $0.0, simd: $0.1) },
            shapes.map { Folding(pe: divisor($0.0), simd: divisor($0.1)) },
        ]
    }

    func requireSimulators(_ simulators: [Simulator]) throws {
        for s in simulators {
            switch s {
            case .verilator: try requireResource(Tool.verilator.isAvailable(), "verilator not found (Debian package verilator)")
            case .icarus:
                try requireResource(Tool.iverilog.isAvailable() && Tool.vvp.isAvailable(), "iverilog/vvp not found (Debian package iverilog)")
            }
        }
    }
}
