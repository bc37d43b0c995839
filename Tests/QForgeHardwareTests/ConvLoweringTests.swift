import HardwareTestSupport
@testable import QForgeHardware
import QForgeInteger
import QForgeTensor
import TestSupport
import XCTest

/// Convolutions, max-pool and flatten in the folded style: weight order, geometry, cycles and
/// the errors that name the layer.
final class ConvLoweringTests: XCTestCase {
    /// Input 2×4×4 unsigned 3-bit codes → conv 3×2×2×2 (padding 1) → 2-bit codes → max-pool 2×2
    /// → flatten → dense 4 outputs.
    func smallConvModel(stride: Int = 1) -> IntegerModel {
        let input = CodeGrid(grid: IntQuantGrid(bitWidth: 3, signed: false), scale: 1)
        let hidden = CodeGrid(grid: IntQuantGrid(bitWidth: 2, signed: false), scale: 1)
        let w0 = QTensor(shape: [3, 2, 2, 2], values: (0..<24).map { Int32($0 % 7) - 3 })
        let thresholds = MultiThreshold(thresholds: [[-4, 0, 6]], grid: hidden.grid)
        let conv = IntegerLayer.conv(name: "conv0", input: input, weights: w0, stride: stride, padding: 1,
                                     requantization: .thresholds(thresholds), output: hidden)
        let side = (4 + 2 - 2) / stride + 1, pooled = (side - 2) / 2 + 1
        let k = 3 * pooled * pooled
        let w1 = QTensor(shape: [4, k], values: (0..<(4 * k)).map { Int32($0 % 5) - 2 })
        var fc = IntegerLayer.dense(name: "fc1", input: hidden, weights: w1, requantization: .output, output: nil)
        fc.codeOps = [.maxPool(kernel: 2, stride: 2, padding: 0), .flatten]
        return IntegerModel(name: "small-cnn", input: input, shape: [2, 4, 4], layers: [conv, fc])
    }

    func testConvolutionGeometryWeightsAndCycles() throws {
        let model = smallConvModel()
        let g = try HardwareGraph(model, foldings: [Folding(pe: 1, simd: 2), Folding(pe: 2, simd: 3)])
        let conv = g.units[0]
        let window = try XCTUnwrap(conv.window)
        XCTAssertEqual(window.outHeight, 5)
        XCTAssertEqual(window.outWidth, 5)
        XCTAssertEqual(conv.inputs, 8)  // K = 2·2·2
        // The line buffer: 2 rows (kh) would stall the window at output row 2, whose third input row
        // cannot be written while row 1 still reads row 0; 3 rows of 4 pixels × 2 channels keep it busy.
        let lb = try XCTUnwrap(conv.lineBuffer)
        XCTAssertEqual([lb.rows, lb.codes, lb.banks, lb.rowWords, lb.depth], [3, 24, 1, 4, 12])
        XCTAssertEqual((0..<5).map(lb.rowsNeeded), [1, 2, 3, 4, 4])
        XCTAssertEqual((0..<5).map(lb.firstRow), [0, 0, 1, 2, 3])
        // Column (ky·kw + kx)·C + c holds w[m, c, ky, kx]: row 1, column 3 = (ky 0, kx 1, c 1) = w[1, 1, 0, 1].
        let w = model.layers[0].product.weights.values
        XCTAssertEqual(conv.weights[1 * 8 + 3], w[((1 * 2 + 1) * 2 + 0) * 2 + 1])
        XCTAssertEqual(conv.weights[2 * 8 + 4], w[((2 * 2 + 0) * 2 + 1) * 2 + 0])
        // 25 output pixels × K/SIMD 4 × M/PE 3.
        XCTAssertEqual(conv.cycles, 300)
        XCTAssertEqual(conv.outputWordsPerInference, 75)
        XCTAssertTrue(g.spatialInput)
        XCTAssertEqual(g.inputLanes, 2)
        XCTAssertEqual(g.inputBeats, 16)
        // The pool: 3×5×5 → 3×2×2, one code per beat (the conv's PE).
        XCTAssertEqual(g.pools.count, 1)
        let pool = g.pools[0]
        XCTAssertEqual([pool.lanes, pool.outHeight, pool.outWidth, pool.inputBeats, pool.outputBeats], [1, 2, 2, 75, 12])
        // The window that completes pooled pixel (1, 1), channel 2: input row 3, column 3 → beat (3·5 + 3)·3 + 2.
        XCTAssertEqual(pool.completingBeat((1 * 2 + 1) * 3 + 2), 56)
        XCTAssertEqual(g.units[1].inLanes, 1)
        XCTAssertEqual(g.expectedCyclesPerInference, 300)
        // Latency: input row 0 is in after beat 3, so the conv starts at 4 and issues its 300 slices
        // without a gap (row oy needs rows 0…oy, which arrive long before; the input waits for row 3
        // from beat 12 until output row 2 frees row 0, at 124, and row 3 is in by 128 < 184), so word w
        // leaves at 4 + (w + 1)·4 + 2. The pool's last output follows word 56 (at 234) by one cycle;
        // the dense unit starts the cycle after (236) and its 2 words leave through the serializer.
        let firstWord = 236 + 4 + 2
        XCTAssertEqual(g.expectedLatency, firstWord + (2 - 1) * max(4, 2) + 2)
    }

    /// The cycle model of the stages in front of the dense unit (the conv here): with 3 rows the
    /// window never waits after the first row, so word w leaves at 4 + (w + 1)·4 + 2 and maps
    /// follow each other 300 cycles apart; with kh = 2 rows it waits for input row oy + 1 at every
    /// output row from 2 on (the row can only be written once row oy − 2 is free).
    func testLineBufferCycleModel() throws {
        let g = try HardwareGraph(smallConvModel(), foldings: [Folding(pe: 1, simd: 2), Folding(pe: 2, simd: 3)])
        let conv = g.units[0]
        let lb = try XCTUnwrap(conv.lineBuffer)
        let front = FrontTiming(inputBeats: 16, stages: [.conv(conv, lb)])
        XCTAssertEqual(front.bound, 300)
        XCTAssertEqual(front.outputTimes(inferences: 1), (0..<75).map { 4 + ($0 + 1) * 4 + 2 })
        XCTAssertEqual(front.interval(inferences: 4), 300)
        var two = lb
        two.rows = 2
        let starved = FrontTiming(inputBeats: 16, stages: [.conv(conv, two)])
        XCTAssertGreaterThan(starved.interval(inferences: 4), 300)
        XCTAssertEqual(LineBuffer.minimumRows(lb.window), 2)
    }

    /// The folding search's cycle model of a convolution (output pixels × K/SIMD × M/PE, SIMD
    /// dividing C; the pool behind it takes its 75 codes over the conv's PE lanes) agrees with
    /// the hardware graph's at every folding, and it picks the cheapest folding within a budget.
    func testFoldingSearchCountsConvolutionsAndPools() throws {
        let model = smallConvModel()
        let search = FoldingSearch(model)
        XCTAssertEqual(search.pixels, [25, 1])
        XCTAssertEqual(search.candidates(layer: 0).count, 4)  // PE 1 or 3 × SIMD 1 or 2 (C = 2, not K = 8)
        for a in search.candidates(layer: 0) {
            for b in search.candidates(layer: 1) {
                let g = try HardwareGraph(model, foldings: [a, b])
                XCTAssertEqual(search.cycles([a, b]), g.expectedCyclesPerInference, "\(a); \(b)")
            }
        }
        // 100 cycles (10,000 inferences/s at 1 MHz): the conv needs all 6 multipliers (25·4·1 = 100;
        // 3×1 takes 200), the dense layer one (12·4 = 48, its serializer too).
        let f = try search.forTarget(fps: 10_000, clockMHz: 1)
        XCTAssertEqual(f, [Folding(pe: 3, simd: 2), Folding(pe: 1, simd: 1)])
        XCTAssertEqual(try HardwareGraph(model, foldings: f).expectedCyclesPerInference, 100)
        XCTAssertThrowsError(try search.forTarget(fps: 20_000, clockMHz: 1)) { e in
            XCTAssertEqual(e as? FoldingSearchError, .unreachable(layer: "conv0", budget: 50, fastest: 100))
        }
    }

    func testFlattenReordersDenseColumnsToTheStream() throws {
        let model = smallConvModel()
        let g = try HardwareGraph(model)
        let dense = g.units[1]
        let original = model.layers[1].product.weights.values
        // Stream column (y·2 + x)·3 + c reads the model's column (c·2 + y)·2 + x.
        for (y, x, c) in [(0, 0, 0), (0, 1, 2), (1, 0, 1), (1, 1, 2)] {
            for r in 0..<4 {
                XCTAssertEqual(dense.weights[r * 12 + (y * 2 + x) * 3 + c], original[r * 12 + (c * 2 + y) * 2 + x], "row \(r) y \(y) x \(x) c \(c)")
            }
        }
        XCTAssertNotEqual(dense.weights, original, "the reordering must move columns")
    }

    /// The unit's weights in window order against the integer model: for random inputs, the
    /// dot product of each window (read as the hardware walks it, code 0 in the padding) equals
    /// `IntegerOps.conv2d`, pixel-major with channels fastest.
    func testWindowWalkReproducesTheIntegerConvolution() throws {
        for stride in [1, 2] {
            let model = smallConvModel(stride: stride)
            let u = try HardwareGraph(model).units[0]
            let win = try XCTUnwrap(u.window)
            var rng = SeededRandom(seed: UInt64(stride))
            let x = QTensor(shape: [1, 2, 4, 4], values: (0..<32).map { _ in Int32(rng.next() % 8) })
            let expected = IntegerOps.conv2d(x, weight: model.layers[0].product.weights, stride: (stride, stride), padding: (1, 1))
            for oy in 0..<win.outHeight {
                for ox in 0..<win.outWidth {
                    for m in 0..<u.outputs {
                        var sum: Int64 = 0
                        for ky in 0..<win.kernelHeight {
                            for kx in 0..<win.kernelWidth {
                                for c in 0..<win.channels {
                                    let y = oy * stride + ky - 1, xx = ox * stride + kx - 1
                                    let code = (0..<4).contains(y) && (0..<4).contains(xx) ? x.values[(c * 4 + y) * 4 + xx] : 0
                                    sum += Int64(code) * Int64(u.weights[m * u.inputs + (ky * win.kernelWidth + kx) * win.channels + c])
                                }
                            }
                        }
                        XCTAssertEqual(sum, expected.values[(m * win.outHeight + oy) * win.outWidth + ox], "stride \(stride), pixel (\(oy), \(ox)), channel \(m)")
                    }
                }
            }
        }
    }

    func testInputVectorsStreamPixelByPixel() throws {
        let model = smallConvModel()
        let g = try HardwareGraph(model, foldings: [Folding(pe: 1, simd: 2), Folding(pe: 1, simd: 1)])
        let codes = QTensor(shape: [1, 2, 4, 4], values: (0..<32).map { Int32($0 % 8) })
        let v = TestVectors(model: model, inputs: codes, source: "test")
        let lines = v.inputHex(g).split(separator: "\n")
        XCTAssertEqual(lines.count, 16)
        // Beat 1 is pixel (0, 1): channel 0 is code 1, channel 1 is code 16 % 8 + 1 = 1 → bits 3-bit lanes 0b001_001.
        XCTAssertEqual(lines[1], "09")
        // Beat 5 is pixel (1, 1): channel 0 = code 5, channel 1 = (16 + 5) % 8 = 5 → 0b101_101 = 0x2d.
        XCTAssertEqual(lines[5], "2d")
    }

    func testBadConvolutionsAndPoolsNameTheLayer() {
        let model = smallConvModel()
        XCTAssertThrowsError(try HardwareGraph(model, foldings: [Folding(pe: 3, simd: 4), Folding(pe: 1, simd: 1)])) { e in
            XCTAssertEqual("\(e)", "layer conv0: PE 3, SIMD 4 does not divide the convolution (3 output channels need PE dividing 3, 2 input channels need SIMD dividing 2: a SIMD slice stays within one pixel)")
        }
        XCTAssertThrowsError(try HardwareGraph(model, foldings: [Folding(pe: 2, simd: 1), Folding(pe: 1, simd: 1)])) { e in
            XCTAssertTrue("\(e)".hasPrefix("layer conv0: PE 2, SIMD 1 does not divide the convolution"), "\(e)")
        }
        var m = model
        m.layers[1].codeOps = [.maxPool(kernel: 3, stride: 2, padding: 0), .flatten]
        XCTAssertThrowsError(try HardwareGraph(m)) { e in
            XCTAssertEqual("\(e)", "layer fc1: max-pool 3×3 with stride 2 (the streaming pool unit needs stride = kernel) is not supported by the folded dataflow style (it takes dense and convolution layers, max-pool with stride = kernel, and flatten)")
        }
        m = model
        m.layers[1].codeOps = [.flatten, .maxPool(kernel: 2, stride: 2, padding: 0)]
        XCTAssertThrowsError(try HardwareGraph(m)) { e in
            XCTAssertTrue("\(e)".hasPrefix("layer fc1: max-pool 2×2/2 on a flat vector"), "\(e)")
        }
        m = model
        m.layers = [m.layers[0]]
        m.layers[0].requantization = .output
        m.layers[0].output = nil
        XCTAssertThrowsError(try HardwareGraph(m)) { e in
            XCTAssertTrue("\(e)".hasPrefix("layer conv0: a convolution as the last layer (end the model with a dense layer)"), "\(e)")
        }
    }

    func testPoolModuleIsEmittedAndWired() throws {
        let model = smallConvModel()
        let g = try HardwareGraph(model)
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 3, seed: 1), source: "random")
        let design = HardwareDesign(g, vectors: vectors, integerModel: model)
        XCTAssertTrue(design.manifest.rtl.contains("qf_l1_pool0.v"))
        XCTAssertEqual(design.manifest.layers[0].convolution, "2×2 stride 1 padding 1 over 2×4×4")
        XCTAssertEqual(design.manifest.layers[1].maxPools, ["2×2 stride 2 padding 0 over 3×5×5"])
        // The standard folding (PE 3, SIMD 2) feeds the conv 2 codes per beat: 3 rows of 4 × 2 codes.
        XCTAssertEqual([design.manifest.layers[0].lineBufferRows, design.manifest.layers[0].lineBufferCodes], [3, 24])
        XCTAssertNil(design.manifest.layers[1].lineBufferRows)
        XCTAssertTrue(design.manifest.rtl.contains("qf_ram.v"))
        XCTAssertTrue(design.manifest.json().contains("\"line_buffer_rows\" : 3"))
        XCTAssertEqual(design.manifest.timingSamples, 2 + 1 + 4)
        let top = try XCTUnwrap(design.files["qf_top.v"])
        XCTAssertTrue(top.contains(".in_data_i  (l0_data)") && top.contains(".in_data_i  (p1_0_data)"), top)
        XCTAssertEqual(g.units[0].weights.count, 24)
    }
}
