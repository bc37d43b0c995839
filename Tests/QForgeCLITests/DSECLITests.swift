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
        // Each point costs more and is more accurate and faster than the one before: all on both fronts.
        XCTAssertEqual(result.paretoCost, ["p00-w2-fps1000", "p01-w2-fps5000", "p02-w4-fps1000", "p03-w4-fps5000"])
        XCTAssertEqual(result.paretoThroughput, ["p03-w4-fps5000", "p02-w4-fps1000", "p01-w2-fps5000", "p00-w2-fps1000"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("all/pareto-area.svg")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.file("all/pareto-throughput.svg")))
        XCTAssertTrue(merged.stdout.contains("| p03-w4-fps5000"), "\(merged)")
    }

    /// A tiny float model (27 → 12 → 6 on magnetometer data) swept at 2 widths × 2 rates with
    /// PTQ, Icarus and Yosys for Xilinx; in two shards merged, and in one run; then the HTML
    /// report of one point's design.
    func testSweepShardsMergeAndReport() throws {
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
        // 27·12 + 12·6 = 396 MACs: 1M/s at 100 MHz leaves 100 cycles, 50k/s 2000.
        let common = ["tiny.safetensors", "--bits", "4,8", "--fold", "auto:1M,50k", "--target", "xilinx", "--simulator", "icarus",
                      "--dataset", "magnetometer", "--data-samples", "512", "--samples", "5"]
        for shard in ["0/2", "1/2"] {
            let r = try runQForge(["dse"] + common + ["--shard", shard, "-o", "sharded"], in: tmp, timeout: 600)
            XCTAssertEqual(r.status, 0, "\(r)")
            XCTAssertTrue(r.stdout.contains("shard \(shard): 2 points written"), "\(r)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("sharded/dse.json")), "a shard does not merge")
        let merge = try runQForge(["dse", "merge", "sharded"], in: tmp)
        XCTAssertEqual(merge.status, 0, "\(merge)")
        let full = try runQForge(["dse"] + common + ["-o", "full"], in: tmp, timeout: 600)
        XCTAssertEqual(full.status, 0, "\(full)")

        func load(_ dir: String) throws -> DSEResult {
            try JSONDecoder().decode(DSEResult.self, from: Data(contentsOf: URL(fileURLWithPath: tmp.file("\(dir)/dse.json"))))
        }
        let sharded = try load("sharded"), one = try load("full")
        XCTAssertEqual(one.points.map(\.name), ["p00-w4-fps1000000", "p01-w4-fps50000", "p02-w8-fps1000000", "p03-w8-fps50000"])
        XCTAssertEqual(sharded.sweep, one.sweep)
        XCTAssertEqual(sharded.paretoCost, one.paretoCost)
        XCTAssertEqual(sharded.paretoThroughput, one.paretoThroughput)
        for (s, o) in zip(sharded.points, one.points) {
            XCTAssertEqual(s.accuracy, o.accuracy, s.name)
            XCTAssertEqual(s.folding, o.folding, s.name)
            XCTAssertEqual(s.synthesis?.luts, o.synthesis?.luts, s.name)
            XCTAssertEqual(s.errors, [], s.name)
            XCTAssertEqual(o.metric, "r2")
            XCTAssertEqual(o.simulation?.passed, 5, "bit-exact on 5 test samples")
            XCTAssertEqual(o.simulation?.failed, 0)
            XCTAssertGreaterThan(o.synthesis?.luts ?? 0, 0)
            XCTAssertLessThanOrEqual(o.cyclesPerInference ?? .max, Int(100e6 / o.targetFps), "the folding meets its rate")
        }
        // The faster target needs more multipliers, at both widths.
        XCTAssertGreaterThan(one.points[0].multipliers!, one.points[1].multipliers!)
        XCTAssertGreaterThan(one.points[2].multipliers!, one.points[3].multipliers!)
        XCTAssertEqual(one.points[0].model, "models/tiny-ptq-w4a4.safetensors")
        XCTAssertTrue(full.stdout.contains("Pareto front, accuracy against LUTs: "), "\(full)")

        let design = "full/" + one.points[2].design!
        let report = try runQForge(["report", design, "--model", "full/models/tiny-ptq-w8a8.safetensors", "--dataset", "magnetometer", "--samples", "512"], in: tmp)
        XCTAssertEqual(report.status, 0, "\(report)")
        let html = try String(contentsOfFile: tmp.file("\(design)/report.html"), encoding: .utf8)
        let parser = XMLParser(data: Data(html.utf8))
        XCTAssertTrue(parser.parse(), "report.html is not well-formed: \(String(describing: parser.parserError))")
        for figure in ["Per-layer error", "synth-xilinx", "icarus", "R² mean", String(format: "%.4f", one.points[2].accuracy!)] {
            XCTAssertTrue(html.contains(figure), "report.html lacks \(figure)")
        }
    }
}
