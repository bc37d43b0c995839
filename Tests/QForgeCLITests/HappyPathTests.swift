import Foundation
import QForgeData
import QForgeGraph
import QForgeNN
import TestSupport
import XCTest

/// The real `qforge` binary on small, fast runs (debug build: a few hundred samples).
final class HappyPathTests: XCTestCase {
    func testTrainThenEvalReportTheSameR2() throws {
        let tmp = try TemporaryDirectory()
        let model = tmp.file("m.safetensors")
        let train = try runQForge(["train", "--preset", "magnet-small", "--dataset", "magnetometer", "--samples", "512",
                                   "--epochs", "2", "--json", "-o", model], in: tmp)
        XCTAssertEqual(train.status, 0, "\(train)")
        XCTAssertEqual(train.reason, .exit)
        let trained = try train.jsonObject()
        for key in ["r2", "r2_per_output", "train_samples_per_second", "output"] {
            XCTAssertNotNil(trained[key], "no '\(key)' in \(trained)")
        }
        let r2 = try XCTUnwrap(trained["r2"] as? Double, "r2 is not a number: \(trained)")
        let perOutput = try XCTUnwrap(trained["r2_per_output"] as? [String: Any], "r2_per_output is not an object")
        XCTAssertEqual(Set(perOutput.keys), Set(Magnetometer.targetNames))
        XCTAssertGreaterThan(try XCTUnwrap(trained["train_samples_per_second"] as? Double), 0)
        XCTAssertEqual(trained["output"] as? String, model)
        XCTAssertTrue(FileManager.default.fileExists(atPath: model))

        // The held-out set is generated from a fixed seed: evaluating the saved model gives the
        // number training reported.
        let eval = try runQForge(["eval", model, "--dataset", "magnetometer", "--samples", "512", "--json"], in: tmp)
        XCTAssertEqual(eval.status, 0, "\(eval)")
        let evaluated = try eval.jsonObject()
        let evalR2 = try XCTUnwrap(evaluated["r2"] as? Double, "r2 is not a number: \(evaluated)")
        XCTAssertEqual(evalR2, r2, accuracy: 1e-9)
        XCTAssertEqual(evaluated["test_samples"] as? Int, trained["test_samples"] as? Int)
    }

    func testPredictWritesWhatTheLibraryComputes() throws {
        let tmp = try TemporaryDirectory()
        let model = try trainTinyMagnetModel(in: tmp)
        let x = Magnetometer.generate(count: 5, seed: 42).inputs
        XCTAssertEqual(x.shape, [5, 27])
        let input = tmp.file("x.npy"), output = tmp.file("y.npy")
        try writeNpy(x, to: input)
        let r = try runQForge(["predict", model, "--input", input, "-o", output], in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)")

        let y = try readNpy(output)
        XCTAssertEqual(y.shape, [5, 6])
        guard case .float32(let values) = y.data else { return XCTFail("\(output) is not float32: \(y.data)") }
        let expected = try Model.load(from: model).predict(x)
        XCTAssertEqual(expected.shape, [5, 6])
        let want = expected.scalars
        XCTAssertEqual(values.count, want.count)
        for (i, (got, w)) in zip(values, want).enumerated() {
            XCTAssertEqual(got, w, accuracy: 1e-5 * max(1, abs(w)), "element \(i)")
        }
    }

    func testModelFileTrainsOneEpoch() throws {
        let tmp = try TemporaryDirectory()
        let yaml = try tmp.write("tiny.yaml", text: """
            # a small regression network for the magnetometer set
            name: tiny
            input: [27]
            task: regression
            layers:
              - {type: Dense, out: 16}
              - {type: ReLU}
              - {type: Dense, in: 16, out: 6}
            """)
        let out = tmp.file("tiny.safetensors")
        let r = try runQForge(["train", "--model", yaml, "--dataset", "magnetometer", "--samples", "256", "--epochs", "1",
                               "--json", "-o", out], in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)")
        let json = try r.jsonObject()
        XCTAssertNotNil(json["r2"] as? Double, "\(json)")
        XCTAssertEqual((json["epochs"] as? [Any])?.count, 1)
        let m = try Model.load(from: out)
        XCTAssertEqual(m.name, "tiny")
        XCTAssertEqual(m.inputShape, [27])
        XCTAssertEqual(m.outputShape, [6])
        XCTAssertEqual(m.network.layers.count, 3)
    }

    func testFashionMNISTSmallTraining() throws {
        try requireInstalledFashionMNIST()
        let tmp = try TemporaryDirectory()
        let r = try runQForge(["train", "--preset", "mlp", "--dataset", "fashion-mnist", "--train-limit", "512",
                               "--test-limit", "256", "--epochs", "1", "--json"], in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)")
        let json = try r.jsonObject()
        let accuracy = try XCTUnwrap(json["test_accuracy"] as? Double, "\(json)")
        XCTAssertTrue((0...1).contains(accuracy))
        XCTAssertGreaterThan(accuracy, 0.2, "one epoch on 512 images should beat chance (0.1)")
        XCTAssertEqual(json["test_samples"] as? Int, 256)
        XCTAssertEqual(json["output"] as? String, "mlp.safetensors")
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("mlp.safetensors")))
    }
}

extension HappyPathTests {
    /// QAT from a float model file: `train --init-from float --wbits --abits` saves a quantized
    /// model (QONNX-style Quant nodes) whose `eval` matches what training reported.
    func testQuantizationAwareTrainingFromAFloatModel() throws {
        let tmp = try TemporaryDirectory()
        let float = try trainTinyMagnetModel(in: tmp)
        let quantized = tmp.file("q.safetensors")
        let train = try runQForge(["train", "--init-from", float, "--wbits", "4", "--abits", "4", "--dataset", "magnetometer",
                                   "--samples", "256", "--epochs", "1", "--json", "-o", quantized], in: tmp)
        XCTAssertEqual(train.status, 0, "\(train)")
        let trained = try train.jsonObject()
        let eval = try runQForge(["eval", quantized, "--dataset", "magnetometer", "--samples", "256", "--json"], in: tmp)
        XCTAssertEqual(eval.status, 0, "\(eval)")
        XCTAssertEqual(try XCTUnwrap(eval.jsonObject()["r2"] as? Double), try XCTUnwrap(trained["r2"] as? Double), accuracy: 1e-9)
        let graph = try ModelFile.load(quantized).graph
        XCTAssertEqual(graph.nodes.filter { $0.op == .quant }.count, 6)  // input, 3 weights, 2 activations
    }
}
