import Foundation
import QForgeEDA
import QForgeHardware
import TestSupport
import XCTest

/// `qforge estimate`: calibration from synthesized build directories, estimates with errors, bad input.
final class EstimateCLITests: XCTestCase {
    func testCalibrateThenEstimate() throws {
        let tmp = try TemporaryDirectory()
        let model = try writeModel(tmp)
        // Three foldings of the small model, each with a hand-written Xilinx report whose LUTs
        // are 30 per unit plus 2 per multiplier bit-product (a model the fit can hold exactly).
        for (i, fold) in ["1x1,1x1", "3x2,2x6", "6x4,2x6"].enumerated() {
            let compile = try runQForge(["compile", model, "-o", "d\(i)", "--fold", fold, "--samples", "2"], in: tmp)
            XCTAssertEqual(compile.status, 0, "\(compile)")
            let features = DesignFeatures(try HardwareManifest.load(tmp.file("d\(i)")))
            let luts = 30 * features.values[0] + 2 * features.values[1]
            var r = SynthesisReport(target: .xilinx, device: "xc7", top: "qf_top", clockMHz: 100)
            r.luts = Int(luts)
            try tmp.write("d\(i)/synth-xilinx/report.json", text: r.json())
        }
        try tmp.write("e.json", text: "old")
        let none = try runQForge(["estimate", "--calibrate", "d0", "--model", "e.json"], in: tmp)
        assertCleanFailure(none, path: "(d0)", problem: ["3 or more", "qforge synth"])
        XCTAssertEqual(try String(contentsOfFile: tmp.file("e.json"), encoding: .utf8), "old", "a failed calibration leaves the file")

        let calibrate = try runQForge(["estimate", "--calibrate", "d0", "d1", "d2", "--model", "e.json"], in: tmp)
        XCTAssertEqual(calibrate.status, 0, "\(calibrate)")
        XCTAssertTrue(calibrate.stdout.contains("xilinx_luts: fitted to 3 designs"), "\(calibrate)")
        XCTAssertTrue(calibrate.stdout.contains("+0.0 %"), "\(calibrate)")
        let estimate = try runQForge(["estimate", "d1", "--model", "e.json", "--json"], in: tmp)
        XCTAssertEqual(estimate.status, 0, "\(estimate)")
        let designs = try XCTUnwrap(try estimate.jsonObject()["designs"] as? [[String: Any]])
        let d1 = try XCTUnwrap(designs.first)
        XCTAssertEqual(d1["xilinx_luts"] as? Double, d1["synthesized_xilinx_luts"] as? Double)

        let missing = try runQForge(["estimate", "nowhere", "--model", "e.json"], in: tmp)
        assertCleanFailure(missing, path: "nowhere", problem: ["no manifest.json"])
        let noModel = try runQForge(["estimate", "--calibrate", "d0"], in: tmp)
        XCTAssertNotEqual(noModel.status, 0)
        XCTAssertTrue(noModel.stderr.contains("give --model"), "\(noModel)")
        try tmp.write("bad.json", text: "{}")
        let bad = try runQForge(["estimate", "d0", "--model", "bad.json"], in: tmp)
        assertCleanFailure(bad, path: "bad.json", problem: ["not a QForge estimator file"])
    }
}
