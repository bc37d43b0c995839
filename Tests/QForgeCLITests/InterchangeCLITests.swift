import Foundation
import QForgeData
import QForgeTensor
import TestSupport
import XCTest

/// `qforge import` and `qforge export` on the Brevitas fixtures, with the other commands on
/// the result, and the exported files run by the qonnx package and by onnxruntime.
final class InterchangeCLITests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/qonnx").path

    /// The first `n` reference images of a fixture as `x.npy` ([n, 784]).
    func writeInputs(_ name: String, _ n: Int, in tmp: TemporaryDirectory) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/\(name).inputs.f32.bin"))
        let floats = data.withUnsafeBytes { p in (0..<(n * 784)).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
        let path = tmp.file("x.npy")
        try writeNpy(Tensor(shape: [n, 784], scalars: floats), to: path)
        return path
    }

    func run(_ arguments: [String], in tmp: TemporaryDirectory, file: StaticString = #filePath, line: UInt = #line) throws -> CLIResult {
        let r = try runQForge(arguments, in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)", file: file, line: line)
        return r
    }

    func testImportPredictExportRoundTrip() throws {
        for (name, images) in [("mlp_w4a4", 20), ("cnn_w4a4", 8)] {
            let tmp = try TemporaryDirectory()
            let onnx = "\(Self.fixtures)/\(name).qonnx.onnx"
            let x = try writeInputs(name, images, in: tmp)
            let imported = try run(["import", onnx, "-o", "m.safetensors", "--json"], in: tmp)
            XCTAssertEqual(try imported.jsonObject()["output"] as? String, "m.safetensors")

            // An existing output stays untouched without --force.
            let before = try tmp.bytes("m.safetensors")
            let refused = try runQForge(["import", onnx, "-o", "m.safetensors"], in: tmp)
            XCTAssertEqual(refused.status, 1)
            XCTAssertEqual(refused.stderrLines, ["Error: m.safetensors exists; give --force to replace it"])
            XCTAssertEqual(try tmp.bytes("m.safetensors"), before)
            _ = try run(["import", onnx, "-o", "m.safetensors", "--force"], in: tmp)

            // predict on the imported file and on the .onnx itself.
            _ = try run(["predict", "m.safetensors", "--input", x, "-o", "y.npy"], in: tmp)
            _ = try run(["predict", onnx, "--input", x, "-o", "y-onnx.npy"], in: tmp)
            let y = try readNpy(tmp.file("y.npy")).asTensor()
            XCTAssertEqual(y.shape, [images, 10])
            XCTAssertEqual(try readNpy(tmp.file("y-onnx.npy")).asTensor().scalars, y.scalars)

            // Export both forms; the QONNX file imports back to the same outputs.
            _ = try run(["export", "m.safetensors", "--format", "qonnx", "-o", "m.qonnx.onnx"], in: tmp)
            _ = try run(["export", "m.safetensors", "--format", "qdq", "-o", "m.qdq.onnx"], in: tmp)
            let exists = try runQForge(["export", "m.safetensors", "--format", "qdq", "-o", "m.qdq.onnx"], in: tmp)
            XCTAssertEqual(exists.stderrLines, ["Error: m.qdq.onnx exists; give --force to replace it"])
            _ = try run(["predict", "m.qonnx.onnx", "--input", x, "-o", "y-back.npy"], in: tmp)
            XCTAssertEqual(try readNpy(tmp.file("y-back.npy")).asTensor().scalars, y.scalars)

            try checkWithPython(qonnx: tmp.file("m.qonnx.onnx"), qdq: tmp.file("m.qdq.onnx"), inputs: x, outputs: tmp.file("y.npy"))
        }
    }

    /// `eval` and `compare` on an imported model with Fashion-MNIST (a few hundred images).
    func testEvalAndCompareOnImportedModel() throws {
        let dataDir = ProcessInfo.processInfo.environment["QFORGE_FASHION_MNIST"] ?? "/usr/share/datasets/fashion-mnist"
        try requireResource(FileManager.default.fileExists(atPath: dataDir + "/t10k-images-idx3-ubyte.gz"),
                            "Fashion-MNIST is not installed in \(dataDir); run 'make deps'")
        let tmp = try TemporaryDirectory()
        _ = try run(["import", "\(Self.fixtures)/mlp_w4a4.qonnx.onnx", "-o", "m.safetensors"], in: tmp)
        let eval = try run(["eval", "m.safetensors", "--test-limit", "200", "--json"], in: tmp)
        XCTAssertGreaterThan(try XCTUnwrap(try eval.jsonObject()["test_accuracy"] as? Double), 0.8)
        let compare = try run(["compare", "m.safetensors", "--test-limit", "200", "--json"], in: tmp)
        XCTAssertEqual(try compare.jsonObject()["output_mismatches"] as? Int, 0)
    }

    /// A Trunc, a MultiThreshold and BipolarQuant activations (hand-built QONNX graphs, see
    /// `qonnxActivationGraphScript`) import, compile to folded Verilog and simulate bit-exact in Icarus.
    func testTruncMultiThresholdAndBipolarCompileAndSimulate() throws {
        try requireResource(pythonCanRun("import qonnx.core.onnx_exec, onnxruntime, numpy"),
                            "python3 with the qonnx and onnxruntime modules is not available; run 'make deps'")
        for (variant, layer) in [("mt_signed", "ThresholdActivation"), ("trunc2", "TruncActivation"),
                                 ("bipolar", "QuantIdentity"), ("bipolar_in", "QuantIdentity")] {
            let tmp = try TemporaryDirectory()
            _ = try runPython(qonnxActivationGraphScript, arguments: [variant, tmp.path])
            let imported = try run(["import", "m.onnx", "-o", "m.safetensors"], in: tmp)
            XCTAssertTrue(imported.stdout.contains("| layers.2 | \(layer)"), "\(imported)")
            let compile = try run(["compile", "m.safetensors", "-o", "build", "--input", "x.npy", "--json"], in: tmp)
            XCTAssertEqual(try compile.jsonObject()["vectors"] as? Int, 40)
            XCTAssertTrue(compile.stdout.contains("| layers.2 "), "the Trunc / MultiThreshold / BipolarQuant names the first layer's requantization: \(compile)")
            try requireResource(FileManager.default.isExecutableFile(atPath: "/usr/bin/iverilog")
                                || (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/iverilog") },
                                "iverilog not found (Debian package iverilog)")
            let sim = try run(["sim", "build", "--simulator", "icarus"], in: tmp)
            XCTAssertTrue(sim.stdout.contains("icarus: 40 passed, 0 failed"), "\(sim)")
        }
    }

    func testImportErrorsAreOneLine() throws {
        let tmp = try TemporaryDirectory()
        _ = try tmp.write("bad.onnx", Array("not a model".utf8))
        let r = try runQForge(["import", "bad.onnx", "-o", "m.safetensors"], in: tmp)
        XCTAssertEqual(r.status, 1)
        XCTAssertEqual(r.stderrLines.count, 1, "\(r)")
        XCTAssertTrue(r.stderr.hasPrefix("Error: bad.onnx: not an ONNX model: "), "\(r)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("m.safetensors")))
    }

    /// The qonnx package's executor runs the QONNX file, onnxruntime the QDQ file (graph
    /// optimizations off, so it computes what the nodes say); both match QForge within 1e-5.
    func checkWithPython(qonnx: String, qdq: String, inputs: String, outputs: String) throws {
        try requireResource(pythonCanRun("import qonnx.core.onnx_exec, onnxruntime, numpy"),
                            "python3 with the qonnx and onnxruntime modules is not available; run 'make deps'")
        let script = """
            import sys
            import numpy as np, onnx, onnxruntime as ort
            import qonnx.core.onnx_exec as ox
            from qonnx.core.modelwrapper import ModelWrapper
            # qonnx builds one-node models at onnx's newest IR version, which an older
            # onnxruntime may refuse; IR 10 holds everything these models use.
            make = ox.qonnx_make_model
            def make10(*a, **k):
                m = make(*a, **k)
                m.ir_version = min(m.ir_version, 10)
                return m
            ox.qonnx_make_model = make10
            x, want = np.load(sys.argv[3]), np.load(sys.argv[4])
            for path in sys.argv[1:3]:
                onnx.checker.check_model(onnx.load(path))
            m = ModelWrapper(sys.argv[1])  # value_info written by QForge: no shape inference needed
            shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
            got = np.concatenate([ox.execute_onnx(m, {m.graph.input[0].name: x[i:i + 1].reshape(shape)})[m.graph.output[0].name]
                                  for i in range(len(x))])
            d1 = float(np.abs(got - want).max())
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            s = ort.InferenceSession(sys.argv[2], so)
            got = s.run(None, {s.get_inputs()[0].name: x.reshape([len(x)] + shape[1:])})[0]
            d2 = float(np.abs(got - want).max())
            print(d1, d2)
            """
        let out = try runPython(script, arguments: [qonnx, qdq, inputs, outputs])
        let d = out.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        XCTAssertEqual(d.count, 2, out)
        XCTAssertLessThanOrEqual(d.first ?? 1, 1e-5, "qonnx execute_onnx vs QForge")
        XCTAssertLessThanOrEqual(d.last ?? 1, 1e-5, "onnxruntime (QDQ) vs QForge")
    }
}
