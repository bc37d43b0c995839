import Foundation
import QForgeInteger

/// What `qforge compile` writes, described for the tools that read the build directory
/// (`qforge sim`, `qforge lint`, reports). Keys are snake_case in `manifest.json`.
public struct HardwareManifest: Codable, Equatable, Sendable {
    public struct Stream: Codable, Equatable, Sendable {
        /// Values per beat (input codes per beat; 1 for the output).
        public var lanes: Int
        public var valueBits: Int
        public var signed: Bool
        public var tdataBits: Int
        public var beatsPerInference: Int
    }

    public struct Layer: Codable, Equatable, Sendable {
        public var name: String
        public var module: String
        public var inputs: Int
        public var outputs: Int
        public var pe: Int
        public var simd: Int
        public var inLanes: Int
        public var inputBits: Int
        public var weightBits: Int
        public var sumBits: Int
        public var accumulatorBits: Int
        public var integerModelAccumulatorBits: Int
        public var accumulatorCap: Int?
        public var overflow: String?
        public var droppedBits: Int
        public var valueBits: Int
        public var requantization: String
        public var outputBits: Int
        public var cycles: Int
        /// nil in the parallel style (weights are constants in the RTL).
        public var weightMemory: String?
        public var parameterMemory: String?
        /// Bits the layer's ROMs hold (weights and parameters, words × width); nil in the parallel style.
        public var memoryBits: Int? = nil
        /// A convolution's window ("3×3 stride 1 padding 1 over 16×28×28"); nil for a dense layer.
        public var convolution: String? = nil
        /// Max-pools in front of the layer ("2×2 stride 2 padding 0 over 32×28×28").
        public var maxPools: [String]? = nil
        /// The parallel style: weights that are not zero (each a constant multiplier in the RTL).
        public var nonzeroWeights: Int? = nil
        /// A convolution's line buffer: input rows held, and its codes (rows × W × C).
        public var lineBufferRows: Int? = nil
        public var lineBufferCodes: Int? = nil
    }

    public struct Vectors: Codable, Equatable, Sendable {
        public var count: Int
        public var source: String
        public var input: String
        public var expected: String
        /// Layer-tap files (`compile --taps`): the stream after each unit but the last.
        public var taps: [String]? = nil
    }

    public var format = "qforge-hardware/1"
    public var generator = "QForge \(qforgeHardwareVersion)"
    public var style = "folded"
    public var model: String
    public var top: String
    public var testbench: String
    /// RTL files, leaves first (the top last).
    public var rtl: [String]
    public var testbenchFile: String
    public var memories: [String]
    public var coe: [String]
    public var input: Stream
    public var output: Stream
    public var layers: [Layer]
    public var vectors: Vectors
    public var expectedCyclesPerInference: Int
    public var expectedLatency: Int
    public var timingSamples: Int

    public static func load(_ directory: String) throws -> HardwareManifest {
        let path = (directory as NSString).appendingPathComponent("manifest.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw HardwareError.invalid("\(directory) has no manifest.json; write a design there with qforge compile")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(HardwareManifest.self, from: data) } catch {
            throw HardwareError.invalid("\(path) is not a QForge hardware manifest (\(error))")
        }
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self) + "\n"
    }
}

/// A generated design: file names (relative to the build directory) and their contents.
public struct HardwareDesign: Sendable {
    public var graph: HardwareGraph
    public var files: [String: String]
    public var manifest: HardwareManifest

    /// RTL, memory files (`.mem` for `$readmemh`, `.coe` for Xilinx tools), the testbench,
    /// the vectors and the manifest of `graph`, checked against `vectors`.
    public init(_ graph: HardwareGraph, vectors: TestVectors, integerModel: IntegerModel) {
        precondition(vectors.inputs.shape[1] == graph.inputFeatures && vectors.outputs.shape[1] == graph.units.last!.outputs,
                     "vectors do not fit the design")
        if graph.style == .parallel {
            self = HardwareDesign(parallel: graph, vectors: vectors, integerModel: integerModel)
            return
        }
        self.graph = graph
        var files: [String: String] = [:]
        var rtl: [String] = ["\(graph.prefix)_rom.v"]
        files["\(graph.prefix)_rom.v"] = emitRom(prefix: graph.prefix)
        if graph.units.contains(where: { $0.lineBuffer != nil }) {
            files["\(graph.prefix)_ram.v"] = emitRam(prefix: graph.prefix)
            rtl.append("\(graph.prefix)_ram.v")
        }
        var memories: [String] = [], coe: [String] = []
        var layers: [HardwareManifest.Layer] = []
        for (u, layer) in zip(graph.units, integerModel.layers) {
            files["\(u.module).v"] = emitUnit(u, prefix: graph.prefix)
            rtl.append("\(u.module).v")
            let weights = u.weightWords()
            files["\(u.weightRomFile).mem"] = weights.joined(separator: "\n") + "\n"
            files["\(u.weightRomFile).coe"] = coeFile(weights, bits: u.folding.pe * u.folding.simd * u.weightBits)
            memories.append("\(u.weightRomFile).mem")
            coe.append("\(u.weightRomFile).coe")
            let layout = u.parameterLayout
            if !layout.fields.isEmpty {
                let words = layout.words(unit: u)
                files["\(u.paramRomFile).mem"] = words.joined(separator: "\n") + "\n"
                files["\(u.paramRomFile).coe"] = coeFile(words, bits: u.folding.pe * layout.laneBits)
                memories.append("\(u.paramRomFile).mem")
                coe.append("\(u.paramRomFile).coe")
            }
            layers.append(HardwareManifest.Layer(
                name: u.layerName, module: u.module, inputs: u.inputs, outputs: u.outputs, pe: u.folding.pe, simd: u.folding.simd,
                inLanes: u.inLanes, inputBits: u.inputBits, weightBits: u.weightBits, sumBits: u.sumBits, accumulatorBits: u.accBits,
                integerModelAccumulatorBits: layer.accumulatorBits, accumulatorCap: u.cap?.bits, overflow: u.cap?.overflow.rawValue,
                droppedBits: u.droppedBits, valueBits: u.valueBits, requantization: u.requantization.name + (u.lookupCodes == nil ? "" : "+lookup"), outputBits: u.outputBits,
                cycles: u.cycles, weightMemory: "\(u.weightRomFile).mem", parameterMemory: layout.fields.isEmpty ? nil : "\(u.paramRomFile).mem"))
            layers[layers.count - 1].memoryBits = u.synapseFold * u.neuronFold * u.folding.pe * u.folding.simd * u.weightBits
                + (layout.fields.isEmpty ? 0 : u.neuronFold * u.folding.pe * layout.laneBits)
            if let w = u.window { layers[layers.count - 1].convolution = w.description }
            if let lb = u.lineBuffer {
                layers[layers.count - 1].lineBufferRows = lb.rows
                layers[layers.count - 1].lineBufferCodes = lb.codes
            }
            let pools = graph.pools.filter { $0.before == u.index }
            if !pools.isEmpty {
                layers[layers.count - 1].maxPools = pools.map { "\($0.kernel)×\($0.kernel) stride \($0.stride) padding \($0.padding) over \($0.channels)×\($0.height)×\($0.width)" }
                for p in pools {
                    files["\(p.module).v"] = emitPool(p)
                    rtl.append("\(p.module).v")
                }
            }
        }
        files["\(graph.prefix)_serializer.v"] = emitSerializer(graph)
        rtl.append("\(graph.prefix)_serializer.v")
        if graph.argmax {
            files["\(graph.prefix)_argmax.v"] = emitArgmax(graph)
            rtl.append("\(graph.prefix)_argmax.v")
        }
        files["\(graph.top).v"] = emitTop(graph)
        rtl.append("\(graph.top).v")
        let timingSamples = graph.units.count + graph.pools.count + 4
        let tb = "\(graph.prefix)_tb"
        let taps = vectors.layerCodes != nil
        files["\(tb).v"] = emitTestbench(graph, vectors: vectors.count, timingSamples: timingSamples, taps: taps)
        files["vectors/input.hex"] = vectors.inputHex(graph)
        files["vectors/expected.hex"] = vectors.expectedHex(graph)
        var tapFiles: [String]? = nil
        if taps {
            tapFiles = graph.units.dropLast().map { "vectors/tap\($0.index).hex" }
            for u in graph.units.dropLast() { files["vectors/tap\(u.index).hex"] = vectors.tapHex(u) }
        }
        manifest = HardwareManifest(
            model: graph.modelName, top: graph.top, testbench: tb, rtl: rtl, testbenchFile: "\(tb).v", memories: memories, coe: coe,
            input: .init(lanes: graph.inputLanes, valueBits: graph.inputGrid.bitWidth, signed: graph.inputGrid.signed,
                         tdataBits: graph.inputDataBits, beatsPerInference: graph.inputBeats),
            output: .init(lanes: 1, valueBits: graph.outputValueBits, signed: !graph.argmax, tdataBits: graph.outputDataBits,
                          beatsPerInference: graph.outputWords),
            layers: layers,
            vectors: .init(count: vectors.count, source: vectors.source, input: "vectors/input.hex", expected: "vectors/expected.hex", taps: tapFiles),
            expectedCyclesPerInference: graph.expectedCyclesPerInference, expectedLatency: graph.expectedLatency,
            timingSamples: timingSamples)
        files["manifest.json"] = manifest.json()
        self.files = files
    }

    /// Writes every file under `directory`. Refuses a non-empty directory unless `force`
    /// (then files of the same names are replaced; others stay).
    public func write(to directory: String, force: Bool = false) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw HardwareError.invalid("\(directory) exists and is not a directory") }
            let contents = try fm.contentsOfDirectory(atPath: directory)
            if !contents.isEmpty && !force {
                throw HardwareError.invalid("\(directory) is not empty (\(contents.count) entries); choose another directory or pass --force to overwrite")
            }
        }
        for (name, text) in files.sorted(by: { $0.key < $1.key }) {
            let path = (directory as NSString).appendingPathComponent(name)
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }
    }
}

/// A Xilinx memory initialisation file of hex words.
func coeFile(_ words: [String], bits: Int) -> String {
    "; Generated by QForge \(qforgeHardwareVersion): \(words.count) words of \(bits) bits.\nmemory_initialization_radix=16;\nmemory_initialization_vector=\n"
        + words.joined(separator: ",\n") + ";\n"
}
