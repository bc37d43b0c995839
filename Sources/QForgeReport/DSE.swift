import Foundation
import QForgeData
import QForgeEDA
import QForgeHardware
import QForgeInteger
import QForgeNN
import QForgeQuant
import QForgeTensor

/// A design-space exploration problem, in one line naming the argument and the fix.
public enum DSEError: Error, CustomStringConvertible, Equatable {
    case invalid(String)

    public var description: String {
        switch self {
        case let .invalid(message): return message
        }
    }
}

/// One slice of a sweep: the points whose index ≡ `index` (mod `count`), so a batch scheduler
/// can spread the points over machines.
public struct Shard: Equatable, Sendable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public static let all = Shard(index: 0, count: 1)

    public init(index: Int, count: Int) {
        precondition(count >= 1 && (0..<count).contains(index), "shard \(index)/\(count)")
        self.index = index; self.count = count
    }

    /// "i/n", shards numbered from 0.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw DSEError.invalid("--shard '\(text)' is not i/n: give the shard's index and the number of shards, e.g. 0/4 for the first of four")
        }
        guard n >= 1 else { throw DSEError.invalid("--shard \(text): the number of shards must be at least 1") }
        guard (0..<n).contains(i) else {
            throw DSEError.invalid("--shard \(text): the index must be 0...\(n - 1) (shards are numbered from 0 to n − 1)")
        }
        self.init(index: i, count: n)
    }

    public func includes(_ point: Int) -> Bool { point % count == index }

    public var description: String { "\(index)/\(count)" }
}

/// Bit widths "2,4,8": each 1...16, no repeats.
public func parseBitWidths(_ text: String) throws -> [Int] {
    let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    var out: [Int] = []
    for item in items {
        guard let b = Int(item), (1...16).contains(b) else {
            throw DSEError.invalid("--bits \(text): '\(item)' is not a bit width 1...16; give widths separated by commas, e.g. 2,4,8")
        }
        guard !out.contains(b) else { throw DSEError.invalid("--bits \(text): \(b) is given twice") }
        out.append(b)
    }
    return out
}

/// Foldings "auto:F1,F2,...": target inferences per second (k and M suffixes allowed), each
/// chosen by the folding search at the sweep's clock.
public func parseFoldTargets(_ text: String) throws -> [Double] {
    let usage = "give --fold auto:F1,F2,... with target inferences per second, e.g. auto:1000,10k,100k"
    guard text.hasPrefix("auto:") else { throw DSEError.invalid("--fold \(text): \(usage)") }
    let items = text.dropFirst(5).split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    var out: [Double] = []
    for item in items {
        var number = Substring(item), scale = 1.0
        if number.hasSuffix("k") { scale = 1e3; number = number.dropLast() } else if number.hasSuffix("M") { scale = 1e6; number = number.dropLast() }
        guard let v = Double(number), v.isFinite, v > 0 else {
            throw DSEError.invalid("--fold \(text): '\(item)' is not a positive rate; \(usage)")
        }
        guard !out.contains(v * scale) else { throw DSEError.invalid("--fold \(text): \(item) is given twice") }
        out.append(v * scale)
    }
    return out
}

/// What a sweep covers: every bit width with every folding target. Point `i` is bit width
/// `bits[i / fps.count]` at rate `fps[i % fps.count]`. Every point file carries it, so a merge
/// can tell points of one sweep from another's.
public struct DSESweep: Codable, Equatable, Sendable {
    public enum Source: String, Codable, Sendable {
        /// A preset network, trained with QAT at every width.
        case preset
        /// A float model file, quantized with PTQ at every width.
        case model
    }

    public var source: String
    public var kind: Source
    public var bits: [Int]
    public var fps: [Double]
    public var target: SynthesisTarget
    public var device: String?
    public var clockMHz: Double
    public var epochs: Int
    public var seed: UInt64
    /// Test images simulated per point.
    public var samples: Int
    public var dataset: String
    public var trainLimit: Int?
    public var testLimit: Int?

    enum CodingKeys: String, CodingKey {
        case source, kind, bits, fps, target, device, epochs, seed, samples, dataset
        case clockMHz = "clock_mhz", trainLimit = "train_limit", testLimit = "test_limit"
    }

    public init(source: String, kind: Source, bits: [Int], fps: [Double], target: SynthesisTarget, device: String? = nil,
                clockMHz: Double = 100, epochs: Int, seed: UInt64, samples: Int, dataset: String,
                trainLimit: Int? = nil, testLimit: Int? = nil) {
        self.source = source; self.kind = kind; self.bits = bits; self.fps = fps; self.target = target; self.device = device
        self.clockMHz = clockMHz; self.epochs = epochs; self.seed = seed; self.samples = samples; self.dataset = dataset
        self.trainLimit = trainLimit; self.testLimit = testLimit
    }

    public var count: Int { bits.count * fps.count }

    public func bits(of point: Int) -> Int { bits[point / fps.count] }
    public func fps(of point: Int) -> Double { fps[point % fps.count] }

    /// "p03-w4-fps100000": sorts in point order, names the width and the target rate.
    public func name(of point: Int) -> String {
        let f = fps(of: point)
        let rate = f == f.rounded() && f < 1e15 ? String(Int64(f)) : String(format: "%g", f)
        return String(format: "p%02d-w%d-fps", point, bits(of: point)) + rate
    }

    /// The quantized model of width `b` in the sweep's cache: preset, widths, epochs, seed (and
    /// the training limit when there is one) name it.
    public func modelFile(bits b: Int) -> String {
        let base = (source as NSString).lastPathComponent
        switch kind {
        case .preset:
            return "models/\(base)-w\(b)a\(b)-e\(epochs)-s\(seed)" + (trainLimit.map { "-n\($0)" } ?? "") + ".safetensors"
        case .model:
            return "models/" + (base as NSString).deletingPathExtension + "-ptq-w\(b)a\(b).safetensors"
        }
    }
}

/// The figures of one point of a sweep: `points/<name>.json`.
public struct DSEPoint: Codable, Equatable, Sendable {
    public var sweep: DSESweep
    public var index: Int
    public var name: String
    public var bits: Int
    public var targetFps: Double
    /// The quantized model and the build directory, relative to the sweep's directory.
    public var model: String?
    public var design: String?
    /// "accuracy" (classification) or "r2" (regression, mean R² over the outputs).
    public var metric: String?
    /// Of the integer model (the hardware's specification) on the test set.
    public var accuracy: Double?
    public var testSamples: Int?
    /// PExSIMD per layer.
    public var folding: [String]?
    public var multipliers: Int?
    public var macsPerInference: Int?
    public var cyclesPerInference: Int?
    public var latencyCycles: Int?
    public var simulation: SimulationRecord?
    public var synthesis: SynthesisReport?
    /// At Fmax (nil when the target reports none, e.g. xilinx: Yosys has no timing).
    public var inferencesPerSecond: Double?
    /// At the sweep's clock.
    public var inferencesPerSecondAtClock: Double?
    public var opsPerWatt: Double?
    /// What went wrong, one line per problem; empty when the point is complete and bit-exact.
    public var errors: [String]

    enum CodingKeys: String, CodingKey {
        case sweep, index, name, bits, model, design, metric, accuracy, folding, multipliers, simulation, synthesis, errors
        case targetFps = "target_fps", testSamples = "test_samples", macsPerInference = "macs_per_inference"
        case cyclesPerInference = "cycles_per_inference", latencyCycles = "latency_cycles"
        case inferencesPerSecond = "inferences_per_second", inferencesPerSecondAtClock = "inferences_per_second_at_clock"
        case opsPerWatt = "ops_per_watt"
    }

    public init(sweep: DSESweep, index: Int) {
        self.sweep = sweep; self.index = index; name = sweep.name(of: index)
        bits = sweep.bits(of: index); targetFps = sweep.fps(of: index); errors = []
    }

    /// Area in µm² (asic) or LUTs / logic cells (FPGA).
    public var cost: Double? {
        sweep.target == .asic ? synthesis?.areaUm2 : synthesis?.luts.map(Double.init)
    }

    /// Synthesized, simulated bit-exact, nothing failed.
    public var complete: Bool { errors.isEmpty && accuracy != nil && synthesis != nil }
}

/// Every point of a sweep, and which are on the Pareto fronts: `dse.json`.
public struct DSEResult: Codable, Equatable, Sendable {
    public var sweep: DSESweep
    public var points: [DSEPoint]
    /// Names of the points on the accuracy-versus-cost front (area or LUTs), cheapest first.
    public var paretoCost: [String]
    /// Names on the accuracy-versus-throughput front, fastest first.
    public var paretoThroughput: [String]
    /// "fmax" when every plotted point has an Fmax, else "clock" (inferences/s at the sweep's clock).
    public var throughputBasis: String

    enum CodingKeys: String, CodingKey {
        case sweep, points
        case paretoCost = "pareto_cost", paretoThroughput = "pareto_throughput", throughputBasis = "throughput_basis"
    }

    /// Fronts from the complete points.
    public init(sweep: DSESweep, points: [DSEPoint]) {
        self.sweep = sweep
        self.points = points.sorted { $0.index < $1.index }
        let plotted = self.points.filter { $0.complete }
        let basis = plotted.allSatisfy { $0.inferencesPerSecond != nil } ? "fmax" : "clock"
        throughputBasis = basis
        let costs = plotted.map { (x: $0.cost ?? .nan, y: $0.accuracy ?? .nan) }
        paretoCost = paretoFront(costs, minimizeX: true).map { plotted[$0].name }
        let speeds = plotted.map { (x: DSEResult.throughput($0, basis: basis) ?? .nan, y: $0.accuracy ?? .nan) }
        paretoThroughput = paretoFront(speeds, minimizeX: false).map { plotted[$0].name }
    }

    static func throughput(_ p: DSEPoint, basis: String) -> Double? {
        basis == "fmax" ? p.inferencesPerSecond : p.inferencesPerSecondAtClock
    }

    public var failures: [DSEPoint] { points.filter { !$0.errors.isEmpty } }

    public var costLabel: String { sweep.target == .asic ? "cell area (µm²)" : sweep.target == .ice40 ? "logic cells (LUT4)" : "LUTs" }
    public var metricLabel: String {
        (points.first { $0.metric != nil }?.metric == "r2" ? "test R² mean" : "test accuracy") + " (integer model)"
    }
    public var throughputLabel: String {
        throughputBasis == "fmax" ? "inferences/s at Fmax" : "inferences/s at \(shortNumber(sweep.clockMHz)) MHz"
    }
    public var costPlotFile: String { sweep.target == .asic ? "pareto-area.svg" : "pareto-luts.svg" }
    public static let throughputPlotFile = "pareto-throughput.svg"

    /// Accuracy against cost, the cheap end on the left.
    public func costPlot() -> ParetoPlot { plot(title: "\(sweep.source): accuracy against \(sweep.target == .asic ? "area" : "LUTs") (\(sweep.target.rawValue))",
                                                 xLabel: costLabel, x: { $0.cost }, front: paretoCost) }

    /// Accuracy against throughput, the fast end on the right.
    public func throughputPlot() -> ParetoPlot {
        plot(title: "\(sweep.source): accuracy against throughput (\(sweep.target.rawValue))", xLabel: throughputLabel,
             x: { DSEResult.throughput($0, basis: throughputBasis) }, front: paretoThroughput)
    }

    func plot(title: String, xLabel: String, x: (DSEPoint) -> Double?, front: [String]) -> ParetoPlot {
        let plotted = points.filter { $0.complete && x($0) != nil }
        let xs = plotted.map { x($0)! }
        let ys = plotted.map { $0.accuracy! }
        let spread = (xs.max() ?? 1) / max(xs.min() ?? 1, 1e-300)
        let marks = plotted.map { p in
            ParetoPlot.Point(x: x(p)!, y: p.accuracy!, label: "w\(p.bits) ×\(p.multipliers ?? 0)", group: "w\(p.bits)a\(p.bits)")
        }
        return ParetoPlot(title: title, x: PlotAxis(label: xLabel, values: xs, logarithmic: spread > 20),
                          y: PlotAxis(label: metricLabel, values: ys), points: marks,
                          front: plotted.indices.filter { front.contains(plotted[$0].name) })
    }

    public func json() -> String {
        String(decoding: try! dseEncoder().encode(self), as: UTF8.self) + "\n"
    }
}

func dseEncoder() -> JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return encoder
}

/// Writes `data` to `path` through a temporary file and a rename: a reader (another shard, a
/// merge) never sees half a file.
func writeAtomically(_ data: Data, to path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let temporary = (dir.isEmpty ? "." : dir) + "/.tmp-\(ProcessInfo.processInfo.processIdentifier)-" + (path as NSString).lastPathComponent
    try data.write(to: URL(fileURLWithPath: temporary))
    guard rename(temporary, path) == 0 else {
        try? FileManager.default.removeItem(atPath: temporary)
        throw DSEError.invalid("cannot write \(path): \(String(cString: strerror(errno)))")
    }
}

// MARK: - Running points

/// Everything a sweep needs besides its definition: data, where to write, tool settings.
public struct DSEConfiguration {
    public var sweep: DSESweep
    /// The sweep's directory: models/, designs/, points/, dse.json and the plots.
    public var directory: String
    public var train: Dataset
    public var test: Dataset
    /// QAT batch size, optimizer, learning rate (epochs and seed come from the sweep).
    public var training: TrainingOptions
    /// PTQ: calibration batches of `training.batchSize` samples.
    public var calibrationBatches = 16
    public var simulator: Simulator = .verilator
    public var synthesis: SynthesisOptions

    public init(sweep: DSESweep, directory: String, train: Dataset, test: Dataset, training: TrainingOptions, synthesis: SynthesisOptions) {
        self.sweep = sweep; self.directory = directory; self.train = train; self.test = test
        self.training = training; self.synthesis = synthesis
        self.training.epochs = sweep.epochs
        self.training.seed = sweep.seed
    }
}

/// Runs the points of a sweep: per bit width a quantized model (trained once and kept in
/// models/), per point its integer model's accuracy, the design compiled for the point's rate,
/// a Verilator run against the integer model, and synthesis; one JSON file per point.
public final class DSERunner {
    public let configuration: DSEConfiguration
    let log: (String) -> Void
    let trainingProgress: ((TrainingProgress) -> Void)?
    var models: [Int: Model] = [:]

    public init(_ configuration: DSEConfiguration, log: @escaping (String) -> Void = { _ in },
                trainingProgress: ((TrainingProgress) -> Void)? = nil) {
        self.configuration = configuration; self.log = log; self.trainingProgress = trainingProgress
    }

    var sweep: DSESweep { configuration.sweep }

    func path(_ relative: String) -> String { (configuration.directory as NSString).appendingPathComponent(relative) }

    /// The tools every point needs (the simulator, Yosys, and OpenSTA with the cell library
    /// or nextpnr for the target), checked before hours of training.
    public static func checkTools(simulator: Simulator, target: SynthesisTarget,
                                  environment env: [String: String] = ProcessInfo.processInfo.environment) throws {
        _ = try (simulator == .verilator ? Tool.verilator : Tool.iverilog).locate(environment: env)
        if simulator == .icarus { _ = try Tool.vvp.locate(environment: env) }
        _ = try Tool.yosys.locate(environment: env)
        switch target {
        case .asic:
            _ = try Tool.sta.locate(environment: env)
            _ = try CellLibrary.osu018.locate(environment: env)
        case .ice40: _ = try Tool.nextpnrICE40.locate(environment: env)
        case .xilinx: break
        }
    }

    /// Runs the points of `shard` in order and writes each one's file. A point whose file
    /// already holds a complete result of the same sweep is kept, not run again.
    public func run(shard: Shard) throws -> [DSEPoint] {
        let fm = FileManager.default
        for sub in ["models", "designs", "points"] {
            try fm.createDirectory(atPath: path(sub), withIntermediateDirectories: true)
        }
        var done: [DSEPoint] = []
        for index in 0..<sweep.count where shard.includes(index) {
            let name = sweep.name(of: index)
            let file = path("points/\(name).json")
            if let data = fm.contents(atPath: file), let earlier = try? JSONDecoder().decode(DSEPoint.self, from: data),
               earlier.sweep == sweep, earlier.complete {
                log("\(name): kept from an earlier run (\(file))")
                done.append(earlier)
                continue
            }
            let point = runPoint(index)
            try writeAtomically(try dseEncoder().encode(point), to: file)
            log("\(name): " + summary(point))
            done.append(point)
        }
        return done
    }

    func summary(_ p: DSEPoint) -> String {
        var parts: [String] = []
        if let a = p.accuracy { parts.append(String(format: "%@ %.4f", p.metric ?? "accuracy", a)) }
        if let f = p.folding { parts.append("folding \(f.joined(separator: ",")) (\(p.multipliers ?? 0) multipliers, \(p.cyclesPerInference ?? 0) cycles)") }
        if let s = p.simulation { parts.append("sim \(s.passed) passed, \(s.failed) failed") }
        if let c = p.cost { parts.append((sweep.target == .asic ? "area " : "LUTs ") + shortNumber(c)) }
        if let t = p.inferencesPerSecond ?? p.inferencesPerSecondAtClock { parts.append("\(shortNumber(t)) inferences/s") }
        return parts.joined(separator: ", ") + (p.errors.isEmpty ? "" : "; FAILED: " + p.errors.joined(separator: "; "))
    }

    /// One point; failures are recorded in the point, never thrown.
    func runPoint(_ index: Int) -> DSEPoint {
        var point = DSEPoint(sweep: sweep, index: index)
        let model: Model
        do {
            model = try quantizedModel(bits: point.bits)
            point.model = sweep.modelFile(bits: point.bits)
        } catch {
            point.errors.append("model: \(error)")
            return point
        }
        let integer: IntegerModel
        do {
            integer = try model.integerModel()
            let e = try evaluateInteger(model, integer: integer, on: configuration.test)
            point.metric = e.accuracy != nil ? "accuracy" : "r2"
            point.accuracy = e.accuracy ?? e.r2Mean
            point.testSamples = e.samples
        } catch {
            point.errors.append("integer model: \(error)")
            return point
        }
        let design = "designs/\(point.name)"
        let manifest: HardwareManifest
        do {
            manifest = try compile(integer, model: model, to: path(design), fps: point.targetFps)
            point.design = design
            point.folding = manifest.layers.map { "\($0.pe)x\($0.simd)" }
            point.multipliers = manifest.layers.reduce(0) { $0 + $1.pe * $1.simd }
            point.macsPerInference = manifest.layers.reduce(0) { $0 + $1.inputs * $1.outputs }
            point.cyclesPerInference = manifest.expectedCyclesPerInference
            point.latencyCycles = manifest.expectedLatency
            point.inferencesPerSecondAtClock = sweep.clockMHz * 1e6 / Double(max(1, manifest.expectedCyclesPerInference))
        } catch {
            point.errors.append("compile: \(error)")
            return point
        }
        do {
            let n = min(sweep.samples, configuration.test.count)
            let result = try simulate(directory: path(design), simulator: configuration.simulator, options: SimulationOptions(samples: n))
            let record = SimulationRecord(simulator: configuration.simulator, report: result.report)
            try record.write(directory: path(design))
            point.simulation = record
            if !record.bitExact {
                point.errors.append("simulation: \(record.failed) of \(record.passed + record.failed) outputs differ from the integer model (see \(design))")
            }
        } catch {
            point.errors.append("simulation: \(error)")
        }
        do {
            let report = try synthesize(directory: path(design), options: configuration.synthesis)
            let figures = DesignFigures(manifest: manifest, report: report)
            point.synthesis = report
            point.inferencesPerSecond = figures.inferencesPerSecond
            point.opsPerWatt = figures.opsPerWatt
            if report.fits == false { point.errors.append("synthesis: does not fit the \(report.device): \(report.fitProblem ?? "see the nextpnr log")") }
        } catch {
            point.errors.append("synthesis: \(error)")
        }
        return point
    }

    /// The model of width `bits`: from memory, from the sweep's cache, or made now (QAT from
    /// the preset, or PTQ of the float model file) and cached.
    func quantizedModel(bits: Int) throws -> Model {
        if let m = models[bits] { return m }
        let file = path(sweep.modelFile(bits: bits))
        let m: Model
        switch sweep.kind {
        case .preset:
            if FileManager.default.fileExists(atPath: file) {
                log("w\(bits)a\(bits): reusing \(file)")
                m = try Model.loadAny(from: file)
            } else {
                var model = try quantize(try Model(Presets.description(sweep.source), seed: sweep.seed),
                                         policy: .uniform(weightBits: bits, activationBits: bits))
                log("w\(bits)a\(bits): training \(sweep.source) with QAT, \(sweep.epochs) epochs on \(configuration.train.count) samples")
                var options = configuration.training
                options.evaluateEachEpoch = false
                _ = try Trainer.train(&model, on: configuration.train, test: nil, options: options, progress: trainingProgress)
                try saveModel(model, to: file)
                m = model
            }
        case .model:
            let float = try Model.loadAny(from: sweep.source)
            var policy = QuantPolicy.uniform(weightBits: bits, activationBits: bits)
            policy.meanScaleUpTo = 0
            var model = try quantize(float, policy: policy)
            let batches = calibrationBatches(for: float, from: configuration.train, count: configuration.calibrationBatches,
                                             size: configuration.training.batchSize, seed: sweep.seed)
            _ = try calibrate(&model, batches: batches, options: CalibrationOptions(method: .max))
            log("w\(bits)a\(bits): quantized \(sweep.source) with PTQ (max calibration)")
            try saveModel(model, to: file)
            m = model
        }
        models[bits] = m
        return m
    }

    func saveModel(_ model: Model, to file: String) throws {
        let temporary = (file as NSString).deletingLastPathComponent + "/.tmp-\(ProcessInfo.processInfo.processIdentifier)-" + (file as NSString).lastPathComponent
        try model.save(to: temporary)
        guard rename(temporary, file) == 0 else { throw DSEError.invalid("cannot write \(file): \(String(cString: strerror(errno)))") }
    }

    /// The folded design for `fps` inferences/s at the sweep's clock, with the first test
    /// samples as its vectors.
    func compile(_ integer: IntegerModel, model: Model, to directory: String, fps: Double) throws -> HardwareManifest {
        if let conv = integer.layers.first(where: { $0.product.kind != .gemm || $0.codeOps.contains { $0 != .flatten } }) {
            throw DSEError.invalid("layer \(conv.name) is a convolution or pools; automatic folding (--fold auto:) takes dense layers only")
        }
        let foldings = try FoldingSearch(integer).forTarget(fps: fps, clockMHz: sweep.clockMHz)
        let graph = try HardwareGraph(integer, foldings: foldings)
        let test = configuration.test
        let n = min(sweep.samples, test.count)
        let x = model.prepareInputs(test.inputs.slice(axis: 0, 0..<n))
        let vectors = TestVectors(model: integer, inputs: integer.quantizeInput(x), source: "\(test.name) test set")
        let design = HardwareDesign(graph, vectors: vectors, integerModel: integer)
        try design.write(to: directory, force: true)
        return design.manifest
    }
}

// MARK: - Merging

/// Reads the point files under `directories` (each a sweep directory with points/*.json, or
/// a points directory itself): all of one sweep, every point present. Nothing is written.
public func loadDSE(_ directories: [String]) throws -> DSEResult {
    let fm = FileManager.default
    var found: [Int: (point: DSEPoint, file: String)] = [:]
    var sweep: (DSESweep, String)?
    for dir in directories {
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DSEError.invalid("\(dir) is not a directory; give the directories qforge dse wrote (each holds points/)")
        }
        let pointsDir = (dir as NSString).appendingPathComponent("points")
        let folder = fm.fileExists(atPath: pointsDir) ? pointsDir : dir
        let files = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted()
        guard !files.isEmpty else { throw DSEError.invalid("\(dir) has no point files (points/*.json); run qforge dse with -o \(dir) first") }
        for name in files {
            let file = (folder as NSString).appendingPathComponent(name)
            let point: DSEPoint
            do { point = try JSONDecoder().decode(DSEPoint.self, from: try Data(contentsOf: URL(fileURLWithPath: file))) } catch {
                throw DSEError.invalid("\(file) is not a DSE point file (\(briefDecodingError(error))); delete it and run its shard again")
            }
            guard point.index >= 0, point.index < point.sweep.count, point.name == point.sweep.name(of: point.index) else {
                throw DSEError.invalid("\(file): point \(point.index) (\(point.name)) is not in its own sweep of \(point.sweep.count) points; delete it and run its shard again")
            }
            if let (s, first) = sweep, s != point.sweep {
                throw DSEError.invalid("\(file) belongs to another sweep than \(first) (different source, widths, rates, target or settings); merge the points of one sweep at a time")
            }
            if sweep == nil { sweep = (point.sweep, file) }
            if let earlier = found[point.index] {
                guard earlier.point == point else {
                    throw DSEError.invalid("\(file) and \(earlier.file) hold different results for point \(point.name); delete the one to drop")
                }
                continue
            }
            found[point.index] = (point, file)
        }
    }
    let s = sweep!.0
    let missing = (0..<s.count).filter { found[$0] == nil }
    guard missing.isEmpty else {
        let names = missing.prefix(8).map { s.name(of: $0) }.joined(separator: ", ") + (missing.count > 8 ? ", …" : "")
        throw DSEError.invalid("the sweep has \(s.count) points and \(missing.count) have no point file (\(names)); run the shards that hold them (qforge dse … --shard i/n) and merge again")
    }
    return DSEResult(sweep: s, points: found.values.map(\.point))
}

func briefDecodingError(_ error: Error) -> String {
    switch error {
    case let DecodingError.keyNotFound(key, _): return "no field '\(key.stringValue)'"
    case let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context):
        return "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
    case let DecodingError.dataCorrupted(context):
        return context.codingPath.isEmpty ? "not valid JSON" : "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' is invalid"
    default: return "\(error)"
    }
}

/// Writes dse.json and the two plots into `directory`; returns the files written.
@discardableResult
public func writeDSE(_ result: DSEResult, to directory: String) throws -> [String] {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let files = [("dse.json", result.json()), (result.costPlotFile, result.costPlot().svg()),
                 (DSEResult.throughputPlotFile, result.throughputPlot().svg())]
    var written: [String] = []
    for (name, text) in files {
        let path = (directory as NSString).appendingPathComponent(name)
        try writeAtomically(Data(text.utf8), to: path)
        written.append(path)
    }
    return written
}

/// The sweep as table rows: the header, then one row per point.
public func dseTable(_ result: DSEResult) -> [[String]] {
    let costHeader = result.sweep.target == .asic ? "area µm²" : "LUTs"
    var rows = [["point", "bits", "target inf/s", "folding", "mult", "cycles", result.metricLabel.hasPrefix("test R²") ? "R²" : "accuracy",
                 "sim", costHeader, "Fmax MHz", "inf/s", "front", "problem"]]
    for p in result.points {
        let fronts = [result.paretoCost.contains(p.name) ? "cost" : nil, result.paretoThroughput.contains(p.name) ? "speed" : nil].compactMap { $0 }
        rows.append([p.name, "\(p.bits)", shortNumber(p.targetFps), p.folding?.joined(separator: ",") ?? "—", p.multipliers.map(String.init) ?? "—",
                     p.cyclesPerInference.map(String.init) ?? "—", p.accuracy.map { String(format: "%.4f", $0) } ?? "—",
                     p.simulation.map { "\($0.passed)/\($0.passed + $0.failed)" } ?? "—", p.cost.map { String(format: "%.0f", $0) } ?? "—",
                     p.synthesis?.fmaxMHz.map { String(format: "%.1f", $0) } ?? "—",
                     (DSEResult.throughput(p, basis: result.throughputBasis)).map(shortNumber) ?? "—",
                     fronts.joined(separator: "+"), p.errors.joined(separator: "; ")])
    }
    return rows
}
