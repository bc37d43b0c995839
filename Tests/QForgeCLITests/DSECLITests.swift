import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import QForgeEDA
import QForgeReport
import TestSupport
import XCTest

/// `qforge dse`, `qforge dse merge` and `qforge report`.
final class DSECLITests: XCTestCase {
    func testBadArgumentsFailCleanlyAndTouchNothing() throws {
        let tmp = try TemporaryDirectory()
        let keep = try tmp.write("sweep/keep.txt", text: "keep")
        let cases: [([String], String, [String])] = [
            (["dse", "tfc", "--fold", "auto:x", "-o", "sweep"], "auto:x", ["'x'", "auto:F1,F2"]),
            (["dse", "tfc", "--fold", "1000", "-o", "sweep"], "1000", ["auto:F1,F2"]),
            (["dse", "tfc", "--fold", "auto:1000", "--shard", "3/2", "-o", "sweep"], "3/2", ["0...1", "numbered from 0"]),
            (["dse", "tfc", "--fold", "auto:1000", "--shard", "two", "-o", "sweep"], "two", ["not i/n"]),
            (["dse", "tfc", "--bits", "2,20", "--fold", "auto:1000", "-o", "sweep"], "2,20", ["'20'", "1...16"]),
            (["dse", "nosuch", "--fold", "auto:1000", "-o", "sweep"], "nosuch", ["unknown preset", "tfc", "model file"]),
        ]
        for (arguments, path, problem) in cases {
            let r = try runQForge(arguments, in: tmp)
            assertCleanFailure(r, path: path, problem: problem)
        }
        // A missing tool is named before any training.
        let noYosys = try runQForge(["dse", "tfc", "--fold", "auto:1000", "--target", "xilinx", "-o", "sweep"], in: tmp,
                                    environment: ["QFORGE_YOSYS": "/no/such/yosys"])
        assertCleanFailure(noYosys, path: "/no/such/yosys", problem: ["QFORGE_YOSYS", "not an executable"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.file("sweep")), ["keep.txt"])
        XCTAssertEqual(try String(contentsOfFile: keep, encoding: .utf8), "keep")
    }

    /// Hand-made points of a 2 × 2 sweep in `dir/points`.
    func writePoints(_ indices: [Int], into dir: String) throws {
        let sweep = DSESweep(source: "tfc", kind: .preset, bits: [2, 4], fps: [1000, 5000], target: .asic, epochs: 1, seed: 0,
                             samples: 4, dataset: "fashion-mnist")
        try FileManager.default.createDirectory(atPath: dir + "/points", withIntermediateDirectories: true)
        for i in indices {
            var p = DSEPoint(sweep: sweep, index: i)
            p.metric = "accuracy"
            p.accuracy = 0.5 + 0.1 * Double(i)
            var r = SynthesisReport(target: .asic, device: "osu018", top: "qf_top", clockMHz: 100)
            r.areaUm2 = 1000 * Double(i + 1)
            r.fmaxMHz = 200
            p.synthesis = r
            p.cyclesPerInference = 100_000 / (i + 1)
            p.inferencesPerSecond = 200e6 / Double(p.cyclesPerInference!)
            try JSONEncoder().encode(p).write(to: URL(fileURLWithPath: "\(dir)/points/\(p.name).json"))
        }
    }

    func testMergeRefusesMissingAndMalformedPointsAndWritesNothing() throws {
        let tmp = try TemporaryDirectory()
        try writePoints([0, 1, 3], into: tmp.file("a"))
        let existing = try tmp.write("a/dse.json", text: "earlier")
        let missing = try runQForge(["dse", "merge", "a"], in: tmp)
        assertCleanFailure(missing, path: "p02-w4-fps1000", problem: ["no point file", "--shard"])
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "earlier")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("a/pareto-area.svg")))

        try writePoints([2], into: tmp.file("b"))
        try tmp.write("b/points/p09-junk.json", text: "[1, 2")
        let malformed = try runQForge(["dse", "merge", "a", "b"], in: tmp)
        assertCleanFailure(malformed, path: "b/points/p09-junk.json", problem: ["not a DSE point file", "not valid JSON"])
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "earlier")

        try FileManager.default.removeItem(atPath: tmp.file("b/points/p09-junk.json"))
        let merged = try runQForge(["dse", "merge", "a", "b", "-o", "all"], in: tmp)
        XCTAssertEqual(merged.status, 0, "\(merged)")
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "earlier", "-o elsewhere leaves a/ alone")
        let result = try JSONDecoder().decode(DSEResult.self, from: Data(contentsOf: URL(fileURLWithPath: tmp.file("all/dse.json"))))
        XCTAssertEqual(result.points.count, 4)
        // Each point costs more and is more accurate and faster than the one before: all trade off
        // cost against accuracy, and the last, fastest and most accurate, is alone on the speed front.
        XCTAssertEqual(result.paretoCost, ["p00-w2-fps1000", "p01-w2-fps5000", "p02-w4-fps1000", "p03-w4-fps5000"])
        XCTAssertEqual(result.paretoThroughput, ["p03-w4-fps5000"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("all/pareto-area.svg")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("all/pareto-throughput.svg")))
        XCTAssertTrue(merged.stdout.contains("| p03-w4-fps5000"), "\(merged)")
    }
}

extension DSECLITests {
    /// One point through the real binary (PTQ of a tiny float model, Icarus, Yosys for Xilinx),
    /// then its HTML report. The full 2 × 2 sweep with shards is DSEReleaseTests'.
    func testOnePointSweepAndItsReport() throws {
        try requireResource(toolAvailable("iverilog") && toolAvailable("vvp"), "iverilog not found (Debian package iverilog)")
        try requireResource(toolAvailable("yosys"), "yosys not found (Debian package yosys)")
        let tmp = try TemporaryDirectory()
        let yaml = try tmp.write("tiny.yaml", text: """
            name: tiny
            input: [27]
            task: regression
            layers:
              - {type: Dense, out: 12}
              - {type: ReLU}
              - {type: Dense, out: 6}
            """)
        let train = try runQForge(["train", "--model", yaml, "--dataset", "magnetometer", "--samples", "512", "--epochs", "1", "-o", "tiny.safetensors"], in: tmp)
        XCTAssertEqual(train.status, 0, "\(train)")
        // 27·12 + 12·6 MACs in at most 100 cycles (1M/s at 100 MHz): 4 multipliers for the first layer.
        let r = try runQForge(["dse", "tiny.safetensors", "--bits", "2", "--fold", "auto:1M", "--target", "xilinx", "--simulator", "icarus",
                               "--dataset", "magnetometer", "--data-samples", "512", "--samples", "3", "-o", "sweep"], in: tmp, timeout: 600)
        XCTAssertEqual(r.status, 0, "\(r)")
        let result = try JSONDecoder().decode(DSEResult.self, from: Data(contentsOf: URL(fileURLWithPath: tmp.file("sweep/dse.json"))))
        let p = try XCTUnwrap(result.points.first)
        XCTAssertEqual(result.points.count, 1)
        XCTAssertEqual(p.name, "p00-w2-fps1000000")
        XCTAssertEqual(p.errors, [])
        XCTAssertEqual(p.folding, ["4x1", "1x1"])
        XCTAssertEqual(p.cyclesPerInference, 81)
        XCTAssertEqual(p.simulation?.simulator, "icarus")
        XCTAssertEqual(p.simulation?.passed, 3)
        XCTAssertGreaterThan(p.synthesis?.luts ?? 0, 0)
        XCTAssertEqual(result.paretoCost, [p.name])
        for file in ["pareto-luts.svg", "pareto-throughput.svg", "models/tiny-ptq-w2a2.safetensors", "designs/\(p.name)/sim.json",
                     "designs/\(p.name)/synth-xilinx/report.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("sweep/\(file)")), "no \(file)")
        }

        let design = "sweep/designs/\(p.name)"
        let report = try runQForge(["report", design, "--model", "sweep/models/tiny-ptq-w2a2.safetensors", "--dataset", "magnetometer", "--samples", "512"], in: tmp)
        XCTAssertEqual(report.status, 0, "\(report)")
        let html = try String(contentsOfFile: tmp.file("\(design)/report.html"), encoding: .utf8)
        let parser = XMLParser(data: Data(html.utf8))
        XCTAssertTrue(parser.parse(), "report.html is not well-formed: \(String(describing: parser.parserError))")
        // The report's accuracy is the sweep's: the same integer model on the same test set.
        for figure in ["Per-layer error", "synth-xilinx", "icarus", "R² mean", String(format: "%.4f", p.accuracy!), "\(p.synthesis!.luts!)"] {
            XCTAssertTrue(html.contains(figure), "report.html lacks \(figure)")
        }
    }
}
