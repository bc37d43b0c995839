import HardwareTestSupport
@testable import QForgeHardware
import QForgeInteger
import QForgeTensor
import TestSupport
import XCTest

final class LoweringTests: XCTestCase {
    func testWidthsFollowTheIntegerModel() throws {
        let g = try HardwareGraph(smallDenseModel(), foldings: [Folding(pe: 2, simd: 2), Folding(pe: 1, simd: 3)])
        let u0 = g.units[0], u1 = g.units[1]
        XCTAssertEqual(u0.weightBits, 4)  // −8…7 fits 4 bits; w0 spans −8…7
        XCTAssertEqual(u0.inputBits, 3)
        // Channel 3 of fc0: weights −1, −1, −1, −1; the zero-point bias −2·(−4) = 8.
        XCTAssertEqual(u0.bias?.value(3), 8)
        // Sums over inputs 0…7: channel 1 (−4, 5, −6, 7) reaches −70…84; with the biases −74…80.
        XCTAssertEqual(u0.sumRange, ValueRange(-70, 84))
        XCTAssertEqual(u0.accRange, ValueRange(-74, 80))
        XCTAssertEqual(u0.accBits, 8)
        XCTAssertEqual(u0.cycles, 2 * 3)
        XCTAssertEqual(u0.inLanes, 2)
        XCTAssertEqual(u1.inLanes, 2)  // fc0's PE
        // fc1: 7·3·6 = 126 at most, −8·3·3 = −72 at least: 8 bits; the cap (8) does not clamp.
        XCTAssertEqual(u1.sumRange, ValueRange(-72, 126))
        XCTAssertFalse(u1.saturates)
        XCTAssertEqual(u1.valueRange, ValueRange(-36, 63))
        XCTAssertEqual(u1.valueBits, 7)
        XCTAssertEqual(g.inputBeats, 2)
        XCTAssertEqual(g.outputDataBits, 8)
        // Slowest stage: fc0 (6 cycles) vs the input (2 beats) vs the last unit with one lane (2 × max(2, 1)).
        XCTAssertEqual(g.expectedCyclesPerInference, 6)
    }

    func testFoldingMustDivide() {
        XCTAssertThrowsError(try HardwareGraph(smallDenseModel(), foldings: [Folding(pe: 4, simd: 2), Folding(pe: 1, simd: 1)])) { e in
            XCTAssertEqual("\(e)", "layer fc0: PE 4, SIMD 2 does not divide the layer (6 outputs need PE dividing 6, 4 inputs need SIMD dividing 4)")
        }
        XCTAssertThrowsError(try HardwareGraph(smallDenseModel(), foldings: [Folding(pe: 1, simd: 1)])) { e in
            XCTAssertEqual("\(e)", "the folding lists 1 layers, the model has 2")
        }
    }

    func testDefaultFoldingTakesDivisorsUpToEight() {
        XCTAssertEqual(Folding.standard(inputs: 784, outputs: 10), Folding(pe: 5, simd: 8))
        XCTAssertEqual(Folding.standard(inputs: 7, outputs: 1), Folding(pe: 1, simd: 7))
        XCTAssertEqual(Folding.standard(inputs: 13, outputs: 64), Folding(pe: 8, simd: 1))
    }

    func testUnsupportedOpsNameTheLayer() {
        var m = smallDenseModel()
        m.layers[1].codeOps = [.maxPool(kernel: 2, stride: 2, padding: 0)]
        XCTAssertThrowsError(try HardwareGraph(m)) { e in
            XCTAssertEqual("\(e)", "layer fc1: max-pool 2×2/2 on a flat vector (it needs a feature map) is not supported by the folded dataflow style (it takes dense and convolution layers, max-pool with stride = kernel, and flatten)")
        }
        m = smallDenseModel()
        m.layers[0].product.kind = .conv(stride: 1, padding: 0)
        m.layers[0].product.weights = QTensor(shape: [6, 1, 2, 2], values: m.layers[0].product.weights.values)
        XCTAssertThrowsError(try HardwareGraph(m)) { e in
            XCTAssertTrue("\(e)".hasPrefix("layer fc0: convolution of a flat vector (it needs a feature map) is not supported"), "\(e)")
        }
        m = smallDenseModel()
        m.layers[0].codeOps = [.flatten]  // free
        XCTAssertNoThrow(try HardwareGraph(m))
    }

    func testLookupTableCopiesTheIntegerModelsTable() throws {
        var m = smallDenseModel()
        let hidden = m.layers[0].output!
        let input = CodeGrid(grid: IntQuantGrid(bitWidth: 3, signed: true), scale: 1)
        // Entries for −3…2: −4 takes the first entry, 3 the last.
        m.layers[0].lookup = CodeLookup(input: input, function: .sigmoid, table: LookupTable(lo: -3, codes: [0, 1, 1, 2, 3, 3]))
        m.layers[0].requantization = .multiplyShift(.shifting(by: [2], grid: input.grid))
        let u = try HardwareGraph(m).units[0]
        XCTAssertEqual(u.requantizedGrid, input.grid)
        XCTAssertEqual(u.outputGrid, hidden.grid)
        XCTAssertEqual(u.lookupCodes, [0, 0, 1, 1, 2, 3, 3, 3])
        XCTAssertTrue(emitUnit(u, prefix: "qf").contains("3'h4: lookup_code = 2'h0;"))
        // A table onto codes the output grid lacks is refused with the layer named.
        m.layers[0].lookup = CodeLookup(input: input, function: .tanh, table: LookupTable(lo: -3, codes: [0, 9]))
        XCTAssertThrowsError(try HardwareGraph(m)) { e in
            XCTAssertTrue("\(e)".hasPrefix("layer fc0: lookup-table tanh activation yields code 9"), "\(e)")
        }
    }

    func testReLUFloorBecomesTheClampsLowerBound() throws {
        var m = smallDenseModel()
        let signed = CodeGrid(grid: IntQuantGrid(bitWidth: 8, signed: true), scale: 1)
        m.layers[0].requantization = .multiplyShift(.shifting(by: [1], grid: signed.grid, lowest: 0))
        m.layers[0].output = signed
        m.layers[1].input = signed
        let g = try HardwareGraph(m)
        guard case let .multiplyShift(_, _, _, _, _, _, lowest) = g.units[0].requantization else { return XCTFail("not multiply-shift") }
        XCTAssertEqual(lowest, 0)
        m.layers[0].requantization = .multiplyShift(.shifting(by: [1], grid: signed.grid, lowest: -1000))
        guard case let .multiplyShift(_, _, _, _, _, _, below) = try HardwareGraph(m).units[0].requantization else { return XCTFail("not multiply-shift") }
        XCTAssertEqual(below, -128, "a floor under the grid is the grid's bottom")
    }

    func testWeightWordsPackLanesLowestFirst() throws {
        let g = try HardwareGraph(smallDenseModel(), foldings: [Folding(pe: 2, simd: 2), Folding(pe: 1, simd: 3)])
        let words = g.units[0].weightWords()
        XCTAssertEqual(words.count, 6)
        // Address 0: rows 0 and 1, inputs 0 and 1: lanes w[0,0]=1, w[0,1]=−2, w[1,0]=−4, w[1,1]=5 (4 bits each).
        XCTAssertEqual(words[0], "5ce1")
        // Address 1: rows 0 and 1, inputs 2 and 3: 3, 0, −6, 7.
        XCTAssertEqual(words[1], "7a03")
    }

    func testLiteralsAndPackedWords() {
        XCTAssertEqual(twosComplementHex(-1, bits: 5), "1f")
        XCTAssertEqual(twosComplementHex(-36, bits: 8), "dc")
        XCTAssertEqual(twosComplementHex(5, bits: 13), "0005")
        XCTAssertEqual(twosComplementHex(-2, bits: 70), "3ffffffffffffffffe")
        XCTAssertEqual(slit(12, -13), "12'shff3")
        XCTAssertEqual(lit(11, 784), "11'd784")
        var w = BitWord()
        w.append(-1, bits: 3)
        w.append(2, bits: 4)
        w.append(-1, bits: 66)
        XCTAssertEqual(w.hex, "1ffffffffffffffff97")
        XCTAssertEqual(signExtend("a", from: 4, to: 6), "{{2{a[3]}}, a}")
        XCTAssertEqual(signExtend("a", from: 6, to: 4), "a[3:0]")
    }

    func testVectorsComeFromTheIntegerModel() throws {
        let model = smallDenseModel()
        let inputs = TestVectors.randomInputs(model, count: 8, seed: 1)
        XCTAssertEqual(inputs.values.prefix(4), [0, 0, 0, 0])  // all lowest
        XCTAssertEqual(inputs.values[4..<8], [7, 7, 7, 7])  // all highest
        let v = TestVectors(model: model, inputs: inputs, source: "random")
        XCTAssertEqual(v.outputs, model.run(inputs).outputs)
    }

    func testRefusesANonEmptyBuildDirectory() throws {
        let dir = try TemporaryDirectory()
        try dir.write("keep.txt", text: "x")
        let model = smallDenseModel()
        let design = HardwareDesign(try HardwareGraph(model), vectors: TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 2, seed: 0), source: "random"),
                                    integerModel: model)
        XCTAssertThrowsError(try design.write(to: dir.path)) { e in
            XCTAssertTrue("\(e)".contains("is not empty (1 entries); choose another directory or pass --force"), "\(e)")
        }
        try design.write(to: dir.path, force: true)
        let manifest = try HardwareManifest.load(dir.path)
        XCTAssertEqual(manifest.top, "qf_top")
        XCTAssertEqual(manifest.rtl.last, "qf_top.v")
        XCTAssertEqual(manifest.expectedCyclesPerInference, design.graph.expectedCyclesPerInference)
    }
}
