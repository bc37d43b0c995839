import Foundation
import QForgeData
import TestSupport
import XCTest

/// Bad input to the real `qforge` binary: each case must exit non-zero with exactly one line on
/// standard error naming the file and the problem (swift-argument-parser's `Error: …`), must
/// not crash, and must leave an existing output file alone.
final class BadInputTests: XCTestCase {
    /// What a pre-existing output file holds; it must survive a failed run byte for byte.
    let keep = Array("not a model: a failed run must leave this file alone\n".utf8)

    func fashionTrainArguments(dataDir: String, out: String) -> [String] {
        ["train", "--preset", "mlp", "--dataset", "fashion-mnist", "--data-dir", dataDir,
         "--epochs", "1", "--train-limit", "64", "--test-limit", "64", "-o", out]
    }

    // MARK: a. Fashion-MNIST IDX files

    func testTruncatedIDXFileFailsCleanly() throws {
        let tmp = try TemporaryDirectory()
        let dir = try writeFashionMNIST(in: tmp, name: "fmnist")
        // The header promises 64 images of 28×28 (50 176 bytes); the file holds 1000.
        let bad = try tmp.write("fmnist/train-images-idx3-ubyte", idxBytes(shape: [64, 28, 28], payload: [UInt8](repeating: 7, count: 1000)))
        let out = try tmp.write("out.safetensors", keep)
        let r = try runQForge(fashionTrainArguments(dataDir: dir, out: out), in: tmp)
        assertCleanFailure(r, path: bad, problem: ["truncated IDX file", "50176"])
        assertUnchanged(out, keep)
    }

    func testWrongMagicIDXFileFailsCleanly() throws {
        let tmp = try TemporaryDirectory()
        let dir = try writeFashionMNIST(in: tmp, name: "fmnist")
        // The training split is fine; the test labels do not start with the two zero bytes.
        var bytes = idxBytes(shape: [64], payload: (0..<64).map { UInt8($0 % 10) })
        bytes[0] = 0x12; bytes[1] = 0x34
        let bad = try tmp.write("fmnist/t10k-labels-idx1-ubyte", bytes)
        let out = try tmp.write("out.safetensors", keep)
        let r = try runQForge(fashionTrainArguments(dataDir: dir, out: out), in: tmp)
        assertCleanFailure(r, path: bad, problem: ["not a valid IDX file", "0x12 0x34"])
        assertUnchanged(out, keep)
    }

    // MARK: e. Missing Fashion-MNIST

    func testMissingFashionMNISTDirectoryNamesTheInstallCommand() throws {
        let tmp = try TemporaryDirectory()
        let missing = tmp.file("no-such-fashion-mnist")
        let out = try tmp.write("out.safetensors", keep)
        let r = try runQForge(fashionTrainArguments(dataDir: missing, out: out), in: tmp)
        assertCleanFailure(r, path: missing, problem: ["not found", "apt-get install -y dataset-fashion-mnist"])
        assertUnchanged(out, keep)
    }

    // MARK: b. predict with an unsupported .npy

    func testPredictRejectsUnsupportedNpyDtype() throws {
        let tmp = try TemporaryDirectory()
        let model = try trainTinyMagnetModel(in: tmp)
        // float64 [5, 27], written by hand: QForge reads float32, uint8 and int64 only.
        let input = try tmp.write("x.npy", npyBytes(descr: "<f8", shape: [5, 27], payload: [UInt8](repeating: 0, count: 5 * 27 * 8)))
        let out = try tmp.write("y.npy", keep)
        let r = try runQForge(["predict", model, "--input", input, "-o", out], in: tmp)
        assertCleanFailure(r, path: input, problem: ["unsupported dtype '<f8'"])
        assertUnchanged(out, keep)
    }

    // MARK: c. corrupt model files

    func testEvalAndPredictRejectRandomBytesAsModel() throws {
        let tmp = try TemporaryDirectory()
        // 4 KiB of reproducible noise (xorshift64), under the name of a model file.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let noise = (0..<4096).map { _ -> UInt8 in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 32)
        }
        let model = try tmp.write("random.safetensors", noise)
        try checkCorruptModel(model, in: tmp)
    }

    func testEvalAndPredictRejectTruncatedModel() throws {
        let tmp = try TemporaryDirectory()
        let good = try trainTinyMagnetModel(in: tmp)
        let bytes = try tmp.bytes((good as NSString).lastPathComponent)
        let model = try tmp.write("truncated.safetensors", Array(bytes.dropLast(10)))
        try checkCorruptModel(model, in: tmp)
    }

    /// `qforge eval` and `qforge predict` on `model` both fail cleanly, naming it.
    func checkCorruptModel(_ model: String, in tmp: TemporaryDirectory, file: StaticString = #filePath, line: UInt = #line) throws {
        let eval = try runQForge(["eval", model, "--dataset", "magnetometer", "--samples", "64"], in: tmp)
        assertCleanFailure(eval, path: model, problem: ["corrupt safetensors"], file: file, line: line)

        let input = tmp.file("x.npy")
        try writeNpy(Magnetometer.generate(count: 5, seed: 1).inputs, to: input)
        let out = try tmp.write("y.npy", keep)
        let predict = try runQForge(["predict", model, "--input", input, "-o", out], in: tmp)
        assertCleanFailure(predict, path: model, problem: ["corrupt safetensors"], file: file, line: line)
        assertUnchanged(out, keep, file: file, line: line)
    }

    // MARK: d. bad model description files

    func testModelFileWithUnknownLayerFailsCleanly() throws {
        let tmp = try TemporaryDirectory()
        let yaml = try tmp.write("bad.yaml", text: """
            name: bad
            input: [27]
            task: regression
            layers:
              - {type: Dense, out: 16}
              - {type: Frobnicate, out: 16}
              - {type: Dense, out: 6}
            """)
        let out = try tmp.write("out.safetensors", keep)
        let r = try runQForge(["train", "--model", yaml, "--dataset", "magnetometer", "--samples", "256", "--epochs", "1", "-o", out], in: tmp)
        assertCleanFailure(r, path: yaml, problem: ["layers[1]", "unknown layer type 'Frobnicate'"])
        assertUnchanged(out, keep)
    }

    func testModelFileWithMismatchedLayerSizesFailsCleanly() throws {
        let tmp = try TemporaryDirectory()
        // The second Dense says it takes 32 inputs, but the first one gives 16.
        let yaml = try tmp.write("bad.yaml", text: """
            name: bad
            input: [27]
            task: regression
            layers:
              - {type: Dense, out: 16}
              - {type: ReLU}
              - {type: Dense, in: 32, out: 6}
            """)
        let out = try tmp.write("out.safetensors", keep)
        let r = try runQForge(["train", "--model", yaml, "--dataset", "magnetometer", "--samples", "256", "--epochs", "1", "-o", out], in: tmp)
        assertCleanFailure(r, path: yaml, problem: ["layers[2]", "32", "[16]"])
        assertUnchanged(out, keep)
    }

    // MARK: errors thrown as ValidationError from run()

    // swift-argument-parser prints a ValidationError thrown from `run()` with the root command's
    // usage (three lines, exit status 64). These two cases hit that; until the CLI throws a plain
    // error there, they are skipped with the reason instead of failing `make test`.

    func testPredictWithWrongInputWidthFailsCleanly() throws {
        let tmp = try TemporaryDirectory()
        let model = try trainTinyMagnetModel(in: tmp)
        let input = tmp.file("x.npy")
        try writeNpy(Magnetometer.generate(count: 5, seed: 1).inputs.slice(axis: 1, 0..<26), to: input)  // 26 of 27 readings
        let out = try tmp.write("y.npy", keep)
        let r = try runQForge(["predict", model, "--input", input, "-o", out], in: tmp)
        assertUnchanged(out, keep)
        assertCleanFailure(r, path: input, problem: ["does not hold samples of [27]"])
    }

    func testTrainIntoMissingDirectoryFailsCleanly() throws {
        let tmp = try TemporaryDirectory()
        let out = tmp.file("no-such-dir/m.safetensors")
        let r = try runQForge(["train", "--preset", "magnet-small", "--dataset", "magnetometer", "--samples", "64", "--epochs", "1", "-o", out], in: tmp)
        assertCleanFailure(r, path: out, problem: ["cannot write"])
    }

}

/// Trains `magnet-small` for one epoch on 256 magnetometer samples into `m.safetensors`.
func trainTinyMagnetModel(in tmp: TemporaryDirectory, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let path = tmp.file("m.safetensors")
    let r = try runQForge(["train", "--preset", "magnet-small", "--dataset", "magnetometer", "--samples", "256", "--epochs", "1", "-o", path], in: tmp)
    XCTAssertEqual(r.status, 0, "\(r)", file: file, line: line)
    XCTAssertTrue(FileManager.default.fileExists(atPath: path), "no model written: \(r)", file: file, line: line)
    return path
}

extension BadInputTests {
    func testImpossibleBitWidthIsAOneLineError() throws {
        let tmp = try TemporaryDirectory()
        let r = try runQForge(["train", "--preset", "magnet-small", "--dataset", "magnetometer", "--samples", "64",
                               "--wbits", "17", "--abits", "4", "--epochs", "1", "-o", tmp.file("m.safetensors")], in: tmp)
        XCTAssertEqual(r.status, 1, "\(r)")
        XCTAssertEqual(r.stderrLines, ["Error: layers.0 weights: bit width 17 is outside 1...16"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("m.safetensors")))
    }
}

extension BadInputTests {
    func testWideAndTableActivationOptionsAreChecked() throws {
        let tmp = try TemporaryDirectory()
        let base = ["train", "--preset", "magnet-small", "--dataset", "magnetometer", "--samples", "64", "--epochs", "1", "-o", tmp.file("m.safetensors")]
        let cases: [([String], String)] = [
            (["--wbits", "4", "--abits", "4", "--bias-scale", "own"], "Error: --bias-scale own needs --bias-bits"),
            (["--wbits", "4", "--abits", "4", "--bias-bits", "4", "--bias-scale", "input"], "Error: --bias-scale must be accumulator or own"),
            (["--wbits", "4", "--abits", "33"], "Error: layers.1 activations: bit width 33 is outside 1...32"),
            (["--wbits", "4", "--abits", "4", "--input-bits", "40"], "Error: input quantizer: bit width 40 is outside 1...32"),
        ]
        for (extra, message) in cases {
            let r = try runQForge(base + extra, in: tmp)
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertEqual(r.stderrLines.first, message, "\(extra): \(r)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("m.safetensors")))
        }
    }
}
