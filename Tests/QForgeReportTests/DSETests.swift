import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import QForgeEDA
import QForgeReport
import TestSupport
import XCTest

/// Counts elements and collects text of an XML document; fails on malformed XML.
final class XMLSummary: NSObject, XMLParserDelegate {
    var counts: [String: Int] = [:]
    var attributes: [(String, [String: String])] = []
    var text = ""

    static func parse(_ document: String, file: StaticString = #filePath, line: UInt = #line) -> XMLSummary? {
        let parser = XMLParser(data: Data(document.utf8))
        let summary = XMLSummary()
        parser.delegate = summary
        guard parser.parse() else {
            XCTFail("not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?") at line \(parser.lineNumber)", file: file, line: line)
            return nil
        }
        return summary
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
        counts[name, default: 0] += 1
        self.attributes.append((name, attributes))
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
}

final class ParetoAndShardTests: XCTestCase {
    func testParetoFrontOnHandMadePoints() {
        // (cost, accuracy): b beats c (cheaper, more accurate) and e (same cost, less accurate);
        // f beats a (cheaper, same accuracy).
        let points: [(x: Double, y: Double)] = [(10, 0.5), (20, 0.7), (30, 0.6), (40, 0.9), (20, 0.65), (5, 0.5), (.nan, 0.99)]
        XCTAssertEqual(paretoFront(points, minimizeX: true), [5, 1, 3])
        // Higher x is better (throughput): d is fastest and most accurate, nothing else survives.
        XCTAssertEqual(paretoFront(points, minimizeX: false), [3])
        // Equal points are both kept (neither is strictly better).
        XCTAssertEqual(paretoFront([(1, 1), (1, 1), (2, 0.5)], minimizeX: true), [0, 1])
        XCTAssertEqual(paretoFront([(3, 0.2), (2, 0.3), (1, 0.4)], minimizeX: false), [0, 1, 2], "a trade-off: all on the front, fastest first")
        XCTAssertEqual(paretoFront([], minimizeX: true), [])
    }

    func testShardParsingAndSelection() throws {
        let s = try Shard(parsing: "1/3")
        XCTAssertEqual(s, Shard(index: 1, count: 3))
        XCTAssertEqual((0..<8).filter(s.includes), [1, 4, 7])
        XCTAssertEqual((0..<5).filter(Shard.all.includes), [0, 1, 2, 3, 4])
        // Every point in exactly one shard.
        let shards = (0..<3).map { Shard(index: $0, count: 3) }
        for p in 0..<10 { XCTAssertEqual(shards.filter { $0.includes(p) }.count, 1) }
        for (bad, says) in [("3/2", "0...1"), ("2/2", "0...1"), ("x", "not i/n"), ("1/0", "at least 1"), ("-1/2", "0...1"), ("1/2/3", "not i/n")] {
            XCTAssertThrowsError(try Shard(parsing: bad), bad) { e in
                XCTAssertTrue("\(e)".contains(bad) && "\(e)".contains(says), "\(bad): \(e)")
            }
        }
    }

    func testBitAndFoldParsing() throws {
        XCTAssertEqual(try parseBitWidths("2,4,8"), [2, 4, 8])
        XCTAssertEqual(try parseFoldTargets("auto:1000,10k,2.5M"), [1000, 10_000, 2_500_000])
        for (bad, says) in [("2,17", "'17'"), ("2,,4", "''"), ("4,4", "twice")] {
            XCTAssertThrowsError(try parseBitWidths(bad)) { XCTAssertTrue("\($0)".contains(says), "\(bad): \($0)") }
        }
        for (bad, says) in [("auto:x", "'x'"), ("1000,2000", "auto:F1"), ("auto:0", "'0'"), ("auto:-5", "'-5'"), ("auto:", "''"), ("auto:1k,1000", "twice")] {
            XCTAssertThrowsError(try parseFoldTargets(bad)) { e in
                XCTAssertTrue("\(e)".contains(bad) && "\(e)".contains(says), "\(bad): \(e)")
            }
        }
    }
}

final class DSEMergeTests: XCTestCase {
    /// 2 widths × 3 rates on xilinx; LUTs grow with width and rate, accuracy with width.
    let sweep = DSESweep(source: "tfc", kind: .preset, bits: [2, 4], fps: [1000, 10_000, 100_000], target: .xilinx, clockMHz: 100,
                         epochs: 1, seed: 0, samples: 10, dataset: "fashion-mnist")

    func point(_ i: Int) -> DSEPoint {
        var p = DSEPoint(sweep: sweep, index: i)
        p.metric = "accuracy"
        p.accuracy = [0.70, 0.70, 0.70, 0.80, 0.80, 0.81][i]
        p.folding = ["1x1", "1x1"]
        p.multipliers = [2, 12, 90, 2, 12, 90][i]
        p.cyclesPerInference = [90_000, 9_000, 900, 90_000, 9_000, 900][i]
        p.inferencesPerSecondAtClock = 100e6 / Double(p.cyclesPerInference!)
        var r = SynthesisReport(target: .xilinx, device: "xc7", top: "qf_top", clockMHz: 100, cellTypes: ["LUT6": 1], seconds: 1.5)
        r.luts = [300, 900, 4000, 500, 1600, 7000][i]
        p.synthesis = r
        p.simulation = nil
        return p
    }

    func write(_ points: [DSEPoint], into dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir + "/points", withIntermediateDirectories: true)
        for p in points {
            try JSONEncoder().encode(p).write(to: URL(fileURLWithPath: "\(dir)/points/\(p.name).json"))
        }
    }

    func testMergingShardsGivesTheSameResultAsOneRun() throws {
        let tmp = try TemporaryDirectory()
        let all = (0..<6).map(point)
        try write(all, into: tmp.file("one"))
        let a = Shard(index: 0, count: 2), b = Shard(index: 1, count: 2)
        try write(all.filter { a.includes($0.index) }, into: tmp.file("s0"))
        try write(all.filter { b.includes($0.index) }, into: tmp.file("s1"))
        XCTAssertEqual((try FileManager.default.contentsOfDirectory(atPath: tmp.file("s0/points"))).count, 3)

        let one = try loadDSE([tmp.file("one")])
        let merged = try loadDSE([tmp.file("s1"), tmp.file("s0")])
        XCTAssertEqual(one, merged)
        XCTAssertEqual(merged.points.map(\.index), [0, 1, 2, 3, 4, 5])
        // Cost front: 300 LUTs at 0.70, 500 at 0.80, 7000 at 0.81 (the 2-bit points at 900 and 4000
        // LUTs are no more accurate than the 300-LUT one; 1600 at 0.80 loses to 500).
        XCTAssertEqual(merged.paretoCost, ["p00-w2-fps1000", "p03-w4-fps1000", "p05-w4-fps100000"])
        // Throughput at the clock (xilinx has no Fmax): 111k/s at 0.81 beats every other point.
        XCTAssertEqual(merged.throughputBasis, "clock")
        XCTAssertEqual(merged.paretoThroughput, ["p05-w4-fps100000"])

        try writeDSE(one, to: tmp.file("one"))
        try writeDSE(merged, to: tmp.file("merged"))
        for name in ["dse.json", "pareto-luts.svg", "pareto-throughput.svg"] {
            let x = try Data(contentsOf: URL(fileURLWithPath: tmp.file("one/\(name)")))
            let y = try Data(contentsOf: URL(fileURLWithPath: tmp.file("merged/\(name)")))
            XCTAssertEqual(x, y, "\(name) differs between the merged shards and one run")
        }
        let decoded = try JSONDecoder().decode(DSEResult.self, from: Data(contentsOf: URL(fileURLWithPath: tmp.file("merged/dse.json"))))
        XCTAssertEqual(decoded, merged)
        // The same directory twice holds identical points: no conflict.
        XCTAssertEqual(try loadDSE([tmp.file("one"), tmp.file("one")]), one)
    }

    func testPlotsAreWellFormedSVGWithTheFrontMarked() throws {
        let result = DSEResult(sweep: sweep, points: (0..<6).map(point))
        let svg = result.costPlot().svg()
        let xml = try XCTUnwrap(XMLSummary.parse(svg))
        XCTAssertEqual(xml.counts["svg"], 1)
        // One marker per point plus one per legend entry (two widths).
        XCTAssertEqual(xml.counts["circle"], 6 + 2)
        let filled = xml.attributes.filter { $0.0 == "circle" && $0.1["fill"] != "white" }
        XCTAssertEqual(filled.count, 3, "the three front points are filled")
        XCTAssertEqual(xml.counts["polyline"], 1, "the front line")
        XCTAssertTrue(xml.text.contains("LUTs"), "x label")
        XCTAssertTrue(xml.text.contains("test accuracy (integer model)"), "y label")
        XCTAssertTrue(xml.text.contains("(log scale)"), "LUTs span 300...7000: a log axis")
        XCTAssertTrue(xml.text.contains("10k") && xml.text.contains("1000"), "decade ticks")
        XCTAssertFalse(xml.text.contains("e+"), "no exponents in labels")
        XCTAssertTrue(xml.text.contains("Pareto front"))

        let speed = try XCTUnwrap(XMLSummary.parse(result.throughputPlot().svg()))
        XCTAssertTrue(speed.text.contains("inferences/s at 100 MHz"))

        // Labels with markup characters are escaped, not injected.
        let plot = ParetoPlot(title: "a<b & \"c\"", x: PlotAxis(label: "x", values: [1, 2]), y: PlotAxis(label: "y", values: [0, 1]),
                              points: [.init(x: 1, y: 0.5, label: "<w4>", group: "g&h")], front: [0])
        let escaped = try XCTUnwrap(XMLSummary.parse(plot.svg()))
        XCTAssertTrue(escaped.text.contains("a<b & \"c\""))
        XCTAssertTrue(escaped.text.contains("<w4>"))
    }

    func testAxisTicks() {
        let linear = PlotAxis(label: "", values: [0.62, 0.81])
        XCTAssertEqual(linear.ticks.first!, 0.6, accuracy: 1e-12)
        XCTAssertEqual(linear.ticks.last!, 0.85, accuracy: 1e-12)
        XCTAssertEqual(linear.ticks.count, 6, "steps of 0.05")
        let log = PlotAxis(label: "", values: [300, 70_000], logarithmic: true)
        XCTAssertEqual(log.ticks, [100, 1000, 10_000, 100_000])
        XCTAssertEqual(log.fraction(1000), 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(shortNumber(12_500), "12.5k")
        XCTAssertEqual(shortNumber(2_000_000), "2M")
        XCTAssertEqual(shortNumber(0.25), "0.25")
        XCTAssertEqual(shortNumber(1000), "1000")
        XCTAssertEqual(shortNumber(1390.4), "1390")
        XCTAssertEqual(shortNumber(999_900), "1000k")
        XCTAssertEqual(shortNumber(0.000125), "0.000125")
    }

    func testMergeRefusesMissingAndMalformedPoints() throws {
        let tmp = try TemporaryDirectory()
        try write((0..<6).filter { $0 != 4 }.map(point), into: tmp.file("gap"))
        XCTAssertThrowsError(try loadDSE([tmp.file("gap")])) { e in
            XCTAssertTrue("\(e)".contains("p04-w4-fps10000") && "\(e)".contains("--shard"), "\(e)")
        }
        try write((0..<6).map(point), into: tmp.file("bad"))
        try tmp.write("bad/points/p02-w2-fps100000.json", text: "{\"index\": 2")
        XCTAssertThrowsError(try loadDSE([tmp.file("bad")])) { e in
            XCTAssertTrue("\(e)".contains("p02-w2-fps100000.json") && "\(e)".contains("not a DSE point file"), "\(e)")
        }
        var other = point(1)
        other.accuracy = 0.1
        try write((0..<6).map(point), into: tmp.file("x"))
        try write([other], into: tmp.file("y"))
        XCTAssertThrowsError(try loadDSE([tmp.file("x"), tmp.file("y")])) { e in
            XCTAssertTrue("\(e)".contains("different results for point p01-w2-fps10000"), "\(e)")
        }
        XCTAssertThrowsError(try loadDSE([tmp.file("nowhere")])) { XCTAssertTrue("\($0)".contains("not a directory"), "\($0)") }
    }
}
