import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import QForgeReport
import TestSupport
import XCTest

/// `qforge dse` end to end through the real binary: a few minutes of Yosys and Icarus, so
/// release mode only. The fast checks of sharding, merging and bad input are in QForgeCLITests.
final class DSEReleaseTests: XCTestCase {
    /// A tiny float model (27 → 12 → 6 on magnetometer data) swept at 2 widths × 2 rates with
    /// PTQ, Icarus and Yosys for Xilinx; in two shards merged, and in one run; then the HTML
    /// report of one point's design.
    func testSweepShardsMergeAndReport() throws {
        #if DEBUG
        throw XCTSkip(ReleaseTrainingTests.debugSkipMessage)
        #else
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
        let common = ["tiny.safetensors", "--bits", "2,4", "--fold", "auto:1M,50k", "--target", "xilinx", "--simulator", "icarus",
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
        XCTAssertEqual(one.points.map(\.name), ["p00-w2-fps1000000", "p01-w2-fps50000", "p02-w4-fps1000000", "p03-w4-fps50000"])
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
        XCTAssertEqual(one.points[0].model, "models/tiny-ptq-w2a2.safetensors")
        XCTAssertTrue(full.stdout.contains("Pareto front, accuracy against LUTs: "), "\(full)")

        let design = "full/" + one.points[2].design!
        let report = try runQForge(["report", design, "--model", "full/models/tiny-ptq-w4a4.safetensors", "--dataset", "magnetometer", "--samples", "512"], in: tmp)
        XCTAssertEqual(report.status, 0, "\(report)")
        let html = try String(contentsOfFile: tmp.file("\(design)/report.html"), encoding: .utf8)
        let parser = XMLParser(data: Data(html.utf8))
        XCTAssertTrue(parser.parse(), "report.html is not well-formed: \(String(describing: parser.parserError))")
        for figure in ["Per-layer error", "synth-xilinx", "icarus", "R² mean", String(format: "%.4f", one.points[2].accuracy!)] {
            XCTAssertTrue(html.contains(figure), "report.html lacks \(figure)")
        }
        #endif
    }
}
