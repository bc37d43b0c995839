import Foundation
import HardwareTestSupport
import QForgeEDA
import QForgeHardware
import QForgeInteger
import TestSupport
import XCTest

/// Generic Yosys synthesis of generated designs: the RTL must synthesize as written (ROMs with
/// their memory files, lookup tables, wide multiply-shift requantization). Skipped without
/// yosys unless CI is set.
final class SynthesisTests: XCTestCase {
    func testYosysParsesCellsAndWarnings() {
        let log = """
            Warning: Replacing memory \\mem with list of registers.
               Number of cells:                 12
            === design hierarchy ===
               Number of cells:               1328
            """
        XCTAssertEqual(SynthesisSummary.parse(log), SynthesisSummary(cells: 1328, warnings: ["Warning: Replacing memory \\mem with list of registers."]))
        XCTAssertNil(SynthesisSummary.parse("ERROR: syntax error\n"))
    }

    func testGeneratedDesignsSynthesize() throws {
        try requireResource(Tool.yosys.isAvailable(), "yosys not found (Debian package yosys)")
        let dir = try TemporaryDirectory()
        var generator = RandomIntegerModel(seed: 7, wideChance: 0.5, lookupChance: 0.5)
        for (name, model) in [("lookup", smallLookupModel()), ("random", generator.model(maxLayers: 2, maxSize: 8))] {
            let graph = try HardwareGraph(model)
            let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 2, seed: 1), source: "random")
            let path = dir.file(name)
            try HardwareDesign(graph, vectors: vectors, integerModel: model).write(to: path)
            let summary = try synthesize(directory: path)
            XCTAssertGreaterThan(summary.cells, 0, name)
            XCTAssertEqual(summary.warnings, [], name)
        }
    }

    /// A convolutional design (sliding window with padding, max-pool unit, flatten, dense)
    /// synthesizes without warnings.
    func testConvolutionalDesignSynthesizes() throws {
        try requireResource(Tool.yosys.isAvailable(), "yosys not found (Debian package yosys)")
        let dir = try TemporaryDirectory()
        var generator = RandomIntegerModel(seed: 11)
        var model = generator.convModel(maxChannels: 2, maxSide: 4, maxDense: 2)
        while !model.layers.contains(where: { $0.product.kind != .gemm }) || !model.layers.contains(where: { !$0.codeOps.filter { $0 != .flatten }.isEmpty }) {
            model = generator.convModel(maxChannels: 2, maxSide: 4, maxDense: 2)  // one with a convolution and a pool
        }
        let graph = try HardwareGraph(model)
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 2, seed: 1), source: "random")
        let path = dir.file("conv")
        try HardwareDesign(graph, vectors: vectors, integerModel: model).write(to: path)
        let summary = try synthesize(directory: path)
        XCTAssertGreaterThan(summary.cells, 0)
        XCTAssertEqual(summary.warnings, [])
    }

    func testParallelDesignsSynthesize() throws {
        try requireResource(Tool.yosys.isAvailable(), "yosys not found (Debian package yosys)")
        let dir = try TemporaryDirectory()
        var generator = RandomIntegerModel(seed: 8, wideChance: 0.3, lookupChance: 0.5)
        for (name, model, argmax) in [("lookup", smallLookupModel(), true), ("random", generator.model(maxLayers: 2, maxSize: 8), false)] {
            let graph = try HardwareGraph.parallel(model, argmax: argmax)
            let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 2, seed: 1), source: "random")
            let path = dir.file(name)
            try HardwareDesign(graph, vectors: vectors, integerModel: model).write(to: path)
            let summary = try synthesize(directory: path)
            XCTAssertGreaterThan(summary.cells, 0, name)
            XCTAssertEqual(summary.warnings, [], name)
        }
    }
}
