import HardwareTestSupport
@testable import QForgeHardware
import QForgeInteger
import QForgeTensor
import XCTest

final class ParallelStyleTests: XCTestCase {
    func testParallelGraphTakesWholeVectorsOnePerCycle() throws {
        let g = try HardwareGraph.parallel(smallDenseModel())
        XCTAssertEqual(g.style, .parallel)
        XCTAssertEqual(g.units.map(\.folding), [Folding(pe: 6, simd: 4), Folding(pe: 2, simd: 6)])
        XCTAssertEqual(g.units.map(\.module), ["qf_l0_dense", "qf_l1_dense"])
        XCTAssertEqual(g.inputLanes, 4)
        XCTAssertEqual(g.inputBeats, 1)
        XCTAssertEqual(g.inputDataBits, 16)  // 4 × 3 bits, padded to bytes
        // Two accumulators of 7 bits, each sign-extended to a byte, in one beat.
        XCTAssertEqual(g.outputLanes, 2)
        XCTAssertEqual(g.outputDataBits, 16)
        XCTAssertEqual(g.outputWords, 1)
        XCTAssertEqual(g.expectedCyclesPerInference, 1)
        XCTAssertEqual(g.expectedLatency, 2)
        let a = try HardwareGraph.parallel(smallDenseModel(), argmax: true)
        XCTAssertEqual(a.outputLanes, 1)
        XCTAssertEqual(a.outputDataBits, 8)
        XCTAssertEqual(a.expectedLatency, 3)
    }

    func testExpectedVectorsPackAllAccumulatorsPerLine() throws {
        let model = smallDenseModel()
        let g = try HardwareGraph.parallel(model)
        // All-lowest inputs (code 0, value −2 with the zero point): fc0's codes, then fc1.
        let inputs = QTensor(shape: [1, 4], values: [0, 0, 0, 0])
        let v = TestVectors(model: model, inputs: inputs, source: "test")
        let (a, b) = (v.outputs.values[0], v.outputs.values[1])
        let expected = twosComplementHex(b, bits: 8) + twosComplementHex(a, bits: 8) + "\n"
        XCTAssertEqual(v.expectedHex(g), expected)
        XCTAssertEqual(v.inputHex(g), "0000\n")
    }

    func testDesignHasNoMemoriesAndConstantWeights() throws {
        let model = smallDenseModel()
        let g = try HardwareGraph.parallel(model)
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 4, seed: 1), source: "random")
        let d = HardwareDesign(g, vectors: vectors, integerModel: model)
        XCTAssertEqual(d.manifest.style, "parallel")
        XCTAssertEqual(d.manifest.rtl, ["qf_l0_dense.v", "qf_l1_dense.v", "qf_top.v"])
        XCTAssertEqual(d.manifest.memories, [])
        XCTAssertEqual(d.manifest.output.lanes, 2)
        XCTAssertEqual(d.manifest.expectedCyclesPerInference, 1)
        XCTAssertNil(d.manifest.layers[0].weightMemory)
        let l0 = try XCTUnwrap(d.files["qf_l0_dense.v"])
        // fc0 channel 0: weights 1, −2, 3, 0 on 8-bit sums (sums of −70…84 need 8 bits).
        XCTAssertTrue(l0.contains("assign sums[7:0] = x[7:0] - x[15:8] * 8'h02 + x[23:16] * 8'h03;"), l0)
        XCTAssertFalse(l0.contains("$readmemh"))
    }

    func testParallelRefusesConvolutionsAndLargeModels() {
        var m = smallDenseModel()
        m.layers[0].product.kind = .conv(stride: 1, padding: 0)
        m.layers[0].product.weights = QTensor(shape: [6, 1, 2, 2], values: m.layers[0].product.weights.values)
        XCTAssertThrowsError(try HardwareGraph.parallel(m)) { e in
            XCTAssertTrue("\(e)".hasPrefix("layer fc0: convolution 6×1×2×2 stride 1 padding 0"), "\(e)")
            XCTAssertTrue("\(e)".contains("use --style folded"), "\(e)")
        }
        // 6·4 + 2·6 = 36 multipliers.
        XCTAssertEqual(HardwareGraph.parallelMultipliers(smallDenseModel()), 36)
        XCTAssertThrowsError(try HardwareGraph.parallel(smallDenseModel(), multiplierLimit: 35)) { e in
            XCTAssertTrue("\(e)".contains("needs 36 multipliers (Σ M·K over its layers), more than the limit of 35; use --style folded"), "\(e)")
        }
        XCTAssertNoThrow(try HardwareGraph.parallel(smallDenseModel(), multiplierLimit: 36))
    }
}
