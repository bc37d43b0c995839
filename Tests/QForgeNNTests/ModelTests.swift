import Foundation
import QForgeData
import QForgeNN
import QForgeTensor
import TestSupport
import XCTest

final class ModelTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = NSTemporaryDirectory() + "qforge-nn-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ text: String) -> String {
        let path = dir + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    func testPresetsHaveTheDocumentedShapes() throws {
        let cnn = try Model(Presets.description("cnn"), seed: 0)
        XCTAssertEqual(cnn.outputShape, [10])
        XCTAssertEqual(cnn.network.parameterCount, 16 * 9 + 32 * 16 * 9 + 64 * 32 * 9 + 3136 * 128 + 128 * 10 + 10 + 2 * (16 + 32 + 64 + 128))
        let magnet = try Model(Presets.description("magnet"), seed: 0)
        XCTAssertEqual(magnet.network.layers.compactMap { ($0 as? Dense)?.outputs }, [512, 1024, 1024, 1024, 1024, 512, 512, 256, 6])
        XCTAssertEqual(try Model(Presets.description("tfc"), seed: 0).network.layers.compactMap { ($0 as? Dense)?.outputs }, [64, 64, 64, 10])
        XCTAssertThrowsError(try Presets.description("resnet")) { XCTAssertTrue("\($0)".contains("unknown preset 'resnet'")) }
    }

    func testYAMLAndJSONModelFiles() throws {
        let yaml = write("m.yaml", """
        name: tiny
        input: [1, 6, 6]
        layers:
          - {type: Conv2d, out: 4, kernel: 3, padding: 1}
          - {type: ReLU}
          - {type: MaxPool2d, kernel: 2}
          - {type: Flatten}
          - {type: Dense, in: 36, out: 3}
        """)
        let m = try Model(ModelDescription.load(path: yaml), seed: 1)
        XCTAssertEqual(m.outputShape, [3])
        let json = write("m.json", #"{"input": [4], "task": "regression", "layers": [{"type": "Dense", "out": 2}]}"#)
        XCTAssertEqual(try Model(ModelDescription.load(path: json), seed: 1).task, .regression)
    }

    func testModelFileErrorsNameFileAndProblem() {
        let unknown = write("u.yaml", "input: [4]\nlayers:\n  - {type: Convolution3D, out: 2}\n")
        XCTAssertThrowsError(try ModelDescription.load(path: unknown)) {
            XCTAssertEqual("\($0)", "\(unknown): layers[0]: unknown layer type 'Convolution3D' (known: Dense, Conv2d, BatchNorm, ReLU, Sigmoid, Tanh, MaxPool2d, Dropout, Flatten)")
        }
        let mismatch = write("m.yaml", "input: [784]\nlayers:\n  - {type: Dense, out: 256}\n  - {type: Dense, in: 128, out: 10}\n")
        XCTAssertThrowsError(try ModelDescription.load(path: mismatch)) {
            XCTAssertTrue("\($0)".hasPrefix("\(mismatch): layers[1]:"), "\($0)")
            XCTAssertTrue("\($0)".contains("[256]"), "\($0)")
        }
        let missing = write("x.json", #"{"input": [4], "layers": [{"type": "Dense"}]}"#)
        XCTAssertThrowsError(try ModelDescription.load(path: missing)) {
            XCTAssertEqual("\($0)", "\(missing): layers[0] (Dense): missing field 'out'")
        }
        let garbage = write("g.json", "{not json")
        XCTAssertThrowsError(try ModelDescription.load(path: garbage)) { XCTAssertTrue("\($0)".hasPrefix("\(garbage): not a model description")) }
        let tooBig = write("k.yaml", "input: [1, 2, 2]\nlayers:\n  - {type: Conv2d, out: 2, kernel: 5}\n")
        XCTAssertThrowsError(try ModelDescription.load(path: tooBig)) { XCTAssertTrue("\($0)".contains("kernel 5 does not fit"), "\($0)") }
    }

    func testSaveLoadRoundTripKeepsOutputsAndContinuesTraining() throws {
        var m = try Model(Presets.description("cnn"), seed: 4)
        // Move the BatchNorm statistics away from their initial values.
        let x = randomTensor([8, 1, 28, 28], seed: 5, low: 0, high: 1)
        _ = LayerContext.with(.training) { m.network(x) }
        m.inputScaler = Standardizer(mean: [Float](repeating: 0.1, count: 784), std: [Float](repeating: 2, count: 784))
        let path = dir + "/cnn.safetensors"
        try m.save(to: path)
        let back = try Model.load(from: path)
        XCTAssertEqual(back.namedTensors.map(\.0), m.namedTensors.map(\.0))
        XCTAssertEqual(back.predict(x).scalars, m.predict(x).scalars)
        XCTAssertEqual(back.inputScaler, m.inputScaler)
        // Training continues from the loaded weights: a step changes them and lowers the loss.
        let labels = IntTensor(shape: [8], scalars: [0, 1, 2, 3, 4, 5, 6, 7])
        let data = Dataset(name: "toy", inputs: x, targets: .classes(labels, classCount: 10))
        var loaded = back
        let before = try loaded.evaluate(data).loss
        _ = try Trainer.train(&loaded, on: data, test: nil, options: TrainingOptions(epochs: 5, batchSize: 8, learningRate: 1e-2))
        XCTAssertLessThan(try loaded.evaluate(data).loss, before)
    }

    func testCorruptModelFileIsAOneLineError() throws {
        let path = write("bad.safetensors", "this is not a safetensors file at all")
        XCTAssertThrowsError(try Model.load(from: path)) { e in
            XCTAssertTrue("\(e)".contains(path), "\(e)")
            XCTAssertFalse("\(e)".contains("\n"))
        }
    }

    func testTrainingLearnsASmallProblem() throws {
        // Two Gaussian blobs: a tiny MLP must separate them.
        var rng = SeededRandom(seed: 1)
        let n = 400
        var xs: [Float] = [], ys: [Int] = []
        for i in 0..<n {
            let c = i % 2
            xs += [rng.nextNormal() * 0.5 + (c == 0 ? -1 : 1), rng.nextNormal() * 0.5]
            ys.append(c)
        }
        let data = Dataset(name: "blobs", inputs: Tensor(shape: [n, 2], scalars: xs), targets: .classes(IntTensor(shape: [n], scalars: ys), classCount: 2))
        var m = try Model(ModelDescription(name: "t", input: [2], layers: [.init(type: "Dense", out: 8), .init(type: "ReLU"), .init(type: "Dense", out: 2)]), seed: 0)
        let r = try Trainer.train(&m, on: data, test: data, options: TrainingOptions(epochs: 20, batchSize: 32, learningRate: 1e-2))
        XCTAssertGreaterThan(r.final?.accuracy ?? 0, 0.95)
    }

    func testRSquared() {
        let t = Tensor(shape: [4, 1], scalars: [1, 2, 3, 4])
        XCTAssertEqual(rSquared(prediction: t, target: t)[0], 1)
        XCTAssertEqual(rSquared(prediction: Tensor(repeating: 2.5, shape: [4, 1]), target: t)[0], 0)
        // residuals 0.5 each: 1 − 1/5
        XCTAssertEqual(rSquared(prediction: Tensor(shape: [4, 1], scalars: [1.5, 2.5, 2.5, 3.5]), target: t)[0], 0.8, accuracy: 1e-9)
    }
}

extension ModelTests {
    /// Training flushes subnormals to zero while it runs, and leaves the caller's
    /// floating-point environment as it found it.
    func testTrainingLeavesTheFloatingPointEnvironmentUnchanged() throws {
        let before = currentMXCSR()
        let x = randomTensor([64, 4], seed: 9)
        let data = Dataset(name: "toy", inputs: x, targets: .classes(IntTensor(shape: [64], scalars: (0..<64).map { $0 % 2 }), classCount: 2))
        var m = try Model(ModelDescription(name: "t", input: [4], layers: [.init(type: "Dense", out: 2)]), seed: 0)
        _ = try Trainer.train(&m, on: data, test: data, options: TrainingOptions(epochs: 1, batchSize: 16))
        _ = (Tensor(repeating: 1, shape: [1 << 18]) * 2).relu()  // a parallel op on this thread too
        XCTAssertEqual(currentMXCSR(), before)
        // Subnormals still behave as IEEE numbers here.
        let tiny = Float.leastNonzeroMagnitude
        XCTAssertGreaterThan(tiny * 2, 0)
    }
}

extension ModelTests {
    func testNestedSequentialCannotBeSavedAndSaysWhy() throws {
        var rng = SeededRandom(seed: 0)
        let m = Model(name: "nested", network: Sequential([Sequential([Dense(2, 2, rng: &rng)]), ReLU()]), inputShape: [2], task: .classification)
        let path = dir + "/nested.safetensors"
        XCTAssertThrowsError(try m.save(to: path)) {
            XCTAssertEqual("\($0)", "graph is not a layer chain QForge can train: layers[0] is a nested Sequential; list its layers in the outer one")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
    }
}
