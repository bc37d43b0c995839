import Foundation
import QForgeGraph
import TestSupport
import XCTest

/// `quantize`, `sweep-bits`, `train --nested` and per-layer widths through the real binary
/// (magnetometer data: no download needed).
final class QuantizationCLITests: XCTestCase {
    let data = ["--dataset", "magnetometer", "--samples", "256"]

    func testPostTrainingQuantizationSavesAModelThatEvaluatesAsReported() throws {
        let tmp = try TemporaryDirectory()
        let float = try trainTinyMagnetModel(in: tmp)
        let out = tmp.file("ptq.safetensors")
        let r = try runQForge(["quantize", float, "--wbits", "8", "--abits", "8", "--calibrate", "mse", "--bias-correction",
                               "--calibration-batches", "2", "--json", "-o", out] + data, in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)")
        let json = try r.jsonObject()
        XCTAssertEqual(json["method"] as? String, "mse")
        XCTAssertEqual(json["calibration_samples"] as? Int, 256)
        XCTAssertEqual(json["bias_corrected"] as? [String], ["layers.1", "layers.3", "layers.5"])
        let r2 = try XCTUnwrap(json["r2"] as? Double), floatR2 = try XCTUnwrap(json["float_r2"] as? Double)
        XCTAssertEqual(r2, floatR2, accuracy: 0.05, "8-bit PTQ should stay close to float")
        let eval = try runQForge(["eval", out, "--json"] + data, in: tmp)
        XCTAssertEqual(eval.status, 0, "\(eval)")
        XCTAssertEqual(try XCTUnwrap(eval.jsonObject()["r2"] as? Double), r2, accuracy: 1e-9)
        // The input quantizer of a standardised (signed) input is signed.
        let graph = try ModelFile.load(out).graph
        XCTAssertEqual(graph.quantizers["layers.0.q"]?.signed, true)
    }

    func testSweepBitsPrintsOneRowPerWidth() throws {
        let tmp = try TemporaryDirectory()
        let float = try trainTinyMagnetModel(in: tmp)
        let r = try runQForge(["sweep-bits", float, "--method", "ptq", "--bits", "8,4/8,2", "--json"] + data, in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdoutLines.contains { $0.hasPrefix("| W/A") && $0.contains("R² mean") }, "\(r)")
        XCTAssertTrue(r.stdoutLines.contains { $0.hasPrefix("| 4/8 ") }, "\(r)")
        let rows = try XCTUnwrap(r.jsonObject()["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["wbits"] as? Int }, [8, 4, 2])
        XCTAssertEqual(rows.map { $0["abits"] as? Int }, [8, 8, 2])
        // magnet-small: 27·128 + 128·128 + 128·6 weights.
        XCTAssertEqual(rows.map { $0["weight_bits"] as? Int }, [8, 4, 2].map { 20_608 * $0 })
    }

    func testNestedTrainingReportsBothWidthsAndEvalReadsTheInnerOne() throws {
        let tmp = try TemporaryDirectory()
        let float = try trainTinyMagnetModel(in: tmp)
        let out = tmp.file("nested.safetensors")
        let r = try runQForge(["train", "--init-from", float, "--nested", "8/4", "--epochs", "1", "--json", "-o", out] + data, in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdoutLines.contains { $0.hasPrefix("nested windows (lowest magnitude bit per layer): layers.1 ") }, "\(r)")
        let inner = try XCTUnwrap(r.jsonObject()["nested_inner"] as? [String: Any])
        let innerR2 = try XCTUnwrap(inner["r2"] as? Double)
        let eval = try runQForge(["eval", out, "--nested-inner", "--json"] + data, in: tmp)
        XCTAssertEqual(eval.status, 0, "\(eval)")
        XCTAssertEqual(try XCTUnwrap(eval.jsonObject()["r2"] as? Double), innerR2, accuracy: 1e-9)
        let graph = try ModelFile.load(out).graph
        XCTAssertEqual(graph.quantizers["layers.1.weight_quant.q"]?.bitWidth, 8)
        XCTAssertTrue(graph.metadata["qforge.quant.layers.1/weight_quant"]?.contains("\"innerBits\":4") == true)
    }

    func testPerLayerWidthsInAModelFile() throws {
        let tmp = try TemporaryDirectory()
        let file = tmp.file("m.yaml")
        try """
        name: mixed
        input: [27]
        task: regression
        wbits: 4
        abits: 4
        layers:
          - {type: Dense, out: 16, wbits: 8}
          - {type: ReLU, abits: 6}
          - {type: Dense, out: 6}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let out = tmp.file("mixed.safetensors")
        let r = try runQForge(["train", "--model", file, "--epochs", "1", "-o", out] + data, in: tmp)
        XCTAssertEqual(r.status, 0, "\(r)")
        let graph = try ModelFile.load(out).graph
        XCTAssertEqual(graph.quantizers["layers.1.weight_quant.q"]?.bitWidth, 8)
        XCTAssertEqual(graph.quantizers["layers.2.act_quant.q"]?.bitWidth, 6)
        XCTAssertEqual(graph.quantizers["layers.3.weight_quant.q"]?.bitWidth, 4)
    }
}

extension BadInputTests {
    func testQuantizationArgumentErrorsAreOneLineAndWriteNothing() throws {
        let tmp = try TemporaryDirectory()
        let float = try trainTinyMagnetModel(in: tmp)
        let out = tmp.file("out.safetensors")
        try Data("keep".utf8).write(to: URL(fileURLWithPath: out))
        let data = ["--dataset", "magnetometer", "--samples", "64"]
        let cases: [([String], String)] = [
            (["train", "--init-from", float, "--nested", "8/4", "--nested-shift", "5", "--epochs", "1", "-o", out] + data,
             "Error: a nested 4-bit window at magnitude bits 5…7 lies outside the 7 magnitude bits (0…6) of a 8-bit sign-magnitude weight; the shift must be 0…4"),
            (["quantize", float, "--calibrate", "median", "-o", out] + data, "Error: --calibrate must be one of max, percentile, mse"),
            (["quantize", float, "--wbits", "0", "-o", out] + data, "Error: layers.0 weights: bit width 0 is outside 1...16"),
            (["sweep-bits", float, "--bits", "8,x"] + data, "Error: --bits takes comma-separated widths B or W/A, e.g. 8,4,2 or 8/8,4/8; got '8,x'"),
            (["train", "--init-from", float, "--nested", "8"] + data, "Error: --nested takes OUTER/INNER bit widths, e.g. 8/4, not '8'"),
        ]
        for (args, message) in cases {
            let r = try runQForge(args, in: tmp)
            XCTAssertNotEqual(r.status, 0, "\(r)")
            XCTAssertEqual(r.stderrLines.first, message, "\(r)")
            XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "keep", "\(args) touched the output")
        }
        // A quantized model cannot be quantized again.
        let q = tmp.file("q.safetensors")
        XCTAssertEqual(try runQForge(["quantize", float, "-o", q] + data, in: tmp).status, 0)
        let again = try runQForge(["quantize", q, "-o", out] + data, in: tmp)
        XCTAssertEqual(again.stderrLines, ["Error: \(q) is already quantized; post-training quantization starts from a float model"])
        // Widths in a model file go where they make sense.
        let file = tmp.file("bad.yaml")
        try "input: [27]\nlayers:\n  - {type: Dense, out: 4}\n  - {type: ReLU, wbits: 4}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try runQForge(["train", "--model", file, "-o", out] + data, in: tmp)
        XCTAssertEqual(bad.stderrLines, ["Error: \(file): layers[1] (ReLU): invalid wbits 4 (only Dense and Conv2d have weights to quantize)"])
    }
}
