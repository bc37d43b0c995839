import Foundation
import HardwareTestSupport
import QForgeEDA
import QForgeHardware
import QForgeReport
import TestSupport
import XCTest

final class HTMLReportTests: XCTestCase {
    /// A compiled design of the small dense model (4 → 6 → 2) with a simulation record and an
    /// ASIC and a Xilinx synthesis report beside it.
    func writeBuild(_ tmp: TemporaryDirectory) throws -> String {
        let integer = smallDenseModel()
        let graph = try HardwareGraph(integer, foldings: [Folding(pe: 3, simd: 2), Folding(pe: 2, simd: 6)])
        let vectors = TestVectors(model: integer, inputs: TestVectors.randomInputs(integer, count: 4, seed: 1), source: "random")
        let dir = tmp.file("build")
        try HardwareDesign(graph, vectors: vectors, integerModel: integer).write(to: dir)
        let c = graph.expectedCyclesPerInference
        let sim = try XCTUnwrap(SimulationReport.parse("QFORGE interval=\(c) latency=9 expected_interval=\(c) expected_latency=9 cycles=99\n4 passed, 0 failed"))
        try SimulationRecord(simulator: .verilator, report: sim).write(directory: dir)
        var asic = SynthesisReport(target: .asic, device: "osu018", top: graph.top, clockMHz: 100)
        asic.cells = 1234; asic.areaUm2 = 98765.4; asic.fmaxMHz = 250; asic.slackNs = 6; asic.powerMW = 1.5
        var xilinx = SynthesisReport(target: .xilinx, device: "xc7", top: graph.top, clockMHz: 100)
        xilinx.luts = 321; xilinx.ffs = 111
        for (folder, r) in [("synth-asic", asic), ("synth-xilinx", xilinx)] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(folder)", withIntermediateDirectories: true)
            try r.json().write(toFile: "\(dir)/\(folder)/report.json", atomically: true, encoding: .utf8)
        }
        return dir
    }

    func testReportIsWellFormedXHTMLWithTheFigures() throws {
        let tmp = try TemporaryDirectory()
        let dir = try writeBuild(tmp)
        var report = try BuildReport(directory: dir)
        XCTAssertEqual(report.synthesis.map(\.folder), ["synth-asic", "synth-xilinx"])
        XCTAssertEqual(report.simulation?.passed, 4)
        report.modelPath = "models/a<b>&c.safetensors"
        let path = try report.write()
        XCTAssertEqual(path, dir + "/report.html")
        let html = try String(contentsOfFile: path, encoding: .utf8)
        let xml = try XCTUnwrap(XMLSummary.parse(html))
        XCTAssertEqual(xml.counts["html"], 1)
        XCTAssertEqual(xml.counts["svg"], 1, "the cycles chart (no model: no error chart)")
        XCTAssertEqual(xml.counts["script"], nil, "self-contained, no scripts")
        XCTAssertEqual(xml.attributes.filter { $0.1["src"] != nil || $0.1["href"] != nil }.count, 0, "no external resources")
        XCTAssertTrue(html.contains("a&lt;b&gt;&amp;c.safetensors"), "the path is escaped")
        XCTAssertTrue(xml.text.contains("models/a<b>&c.safetensors"))
        for figure in ["synth-asic", "98765", "250.0", "synth-xilinx", "321", "bit-exact", "fc0 3×2", "fc1"] {
            XCTAssertTrue(xml.text.contains(figure), "missing \(figure)")
        }
        // inferences/s at Fmax: 250 MHz / cycles per inference.
        let cycles = report.manifest.expectedCyclesPerInference
        XCTAssertTrue(xml.text.contains(shortNumber(250e6 / Double(cycles))), "inferences/s of the ASIC run")
        XCTAssertTrue(xml.text.contains("--model MODEL.safetensors"), "says how to add accuracy")
    }

    func testReportOfADirectoryWithoutAManifestSaysSo() throws {
        let tmp = try TemporaryDirectory()
        try tmp.write("empty/x.txt", text: "x")
        XCTAssertThrowsError(try BuildReport(directory: tmp.file("empty"))) { e in
            XCTAssertTrue("\(e)".contains("no manifest.json") && "\(e)".contains("qforge compile"), "\(e)")
        }
    }
}
