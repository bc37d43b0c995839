@testable import QForgeInteger
import QForgeTensor
import XCTest

/// `IntegerModel.run` (packed weights, fused Int32 epilogues, the direct convolution) against
/// the definition computed step by step: code ops, the Int64 product, bias, cap, dropped bits,
/// `requantize`. Random layers at the edges: extreme inputs and weights, zero points, caps that
/// wrap and saturate, dropped bits, thresholds beyond Int32, lists of unequal length, rounded
/// biases, 32-bit grids.
final class ExecutorTests: XCTestCase {
    /// Codes of every layer but the last, and the last accumulators, by the definition.
    func reference(_ model: IntegerModel, _ input: QTensor) -> (codes: [QTensor], outputs: AccTensor) {
        var x = input
        var taps: [QTensor] = []
        for (i, layer) in model.layers.enumerated() {
            for op in layer.codeOps {
                switch op {
                case let .maxPool(k, s, p): x = IntegerOps.maxPool2d(x, kernel: (k, k), stride: (s, s), padding: (p, p))
                case .flatten: x = x.flattened()
                }
            }
            var acc: AccTensor
            switch layer.product.kind {
            case .gemm:
                acc = IntegerOps.matmul(x.rank == 2 ? x : x.flattened(), weight: layer.product.weights, bias: layer.product.bias, path: .int64)
            case let .conv(s, p):
                acc = IntegerOps.conv2d(x, weight: layer.product.weights, bias: layer.product.bias, stride: (s, s), padding: (p, p), path: .int64)
            }
            if let cap = layer.accumulatorCap { acc = cap.apply(acc) }
            if layer.droppedBits > 0 { acc = AccTensor(shape: acc.shape, values: acc.values.map { $0 >> Int64(layer.droppedBits) }) }
            if i == model.layers.count - 1 { return (taps, acc) }
            x = layer.requantize(acc)
            taps.append(x)
        }
        fatalError("no layers")
    }

    /// Runs `body` once per available Int16 kernel, restoring the default afterwards.
    func forEachKernel(_ body: () -> Void) {
        let saved = IntegerOps.int16Kernel
        defer { IntegerOps.int16Kernel = saved }
        for kernel in IntegerOps.availableInt16Kernels {
            IntegerOps.int16Kernel = kernel
            body()
        }
    }

    func assertRunMatchesReference(_ model: IntegerModel, _ input: QTensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        let expected = reference(model, input)
        forEachKernel {
            let trace = model.run(input)
            XCTAssertEqual(trace.codes, expected.codes, "\(message), \(IntegerOps.int16Kernel)", file: file, line: line)
            XCTAssertEqual(trace.outputs, expected.outputs, "\(message), \(IntegerOps.int16Kernel)", file: file, line: line)
        }
    }

    // MARK: Building layers

    func grid(_ bits: Int, signed: Bool, _ rounding: RoundingMode = .round) -> IntQuantGrid {
        IntQuantGrid(bitWidth: bits, signed: signed, rounding: rounding)
    }

    /// A layer with its zero-point bias and ranges (`withRanges`), requantized by `requant`
    /// (given the layer's exact ranges shifted by its dropped bits).
    func layer(_ kind: IntegerProduct.Kind, _ weights: QTensor, input: CodeGrid, output: IntQuantGrid?, codeOps: [CodeOp] = [],
               cap: AccumulatorCap? = nil, dropped: Int = 0, roundedBias: [Int64]? = nil,
               requant: ([ClosedRange<Int64>]) -> Requantization = { _ in .output }) -> IntegerLayer {
        let m = weights.shape[0]
        var l = IntegerLayer(name: "layer", codeOps: codeOps, product: IntegerProduct(kind: kind, weights: weights, bias: nil),
                             accumulatorRange: [], accumulatorBits: 0, accumulatorCap: cap, flipped: Array(repeating: false, count: m),
                             roundedBias: roundedBias, epilogue: [], requantization: .output, output: output.map { CodeGrid(grid: $0, scale: 1) },
                             input: input)
        l.droppedBits = dropped
        l = l.withRanges()
        l.requantization = requant(l.accumulatorRange.map { ($0.lowerBound >> Int64(dropped))...($0.upperBound >> Int64(dropped)) })
        return l
    }

    func codes(_ shape: [Int], _ grid: IntQuantGrid, _ rng: inout SeededRandom) -> QTensor {
        QTensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Int32(Int.random(in: grid.minInt...grid.maxInt, using: &rng)) })
    }

    /// Random ascending thresholds per channel around each range, with a few far outside it
    /// (beyond Int32 too), in lists of `length` (or of lengths up to it when `ragged`).
    func thresholds(_ ranges: [ClosedRange<Int64>], length: Int, grid: IntQuantGrid, shared: Bool = false, ragged: Bool = false,
                    _ rng: inout SeededRandom) -> Requantization {
        let extremes: [Int64] = [Int64.min, Int64(Int32.min), Int64(Int32.min) + 1, Int64(Int32.max) - 1, Int64(Int32.max), Int64.max]
        let lists = (shared ? [ranges[0]] : ranges).map { r -> [Int64] in
            let n = ragged ? Int.random(in: 0...length, using: &rng) : length
            return (0..<n).map { _ -> Int64 in
                if Int.random(in: 0..<10, using: &rng) == 0 { return extremes.randomElement(using: &rng)! }
                return Int64.random(in: (r.lowerBound - 3)...(r.upperBound + 3), using: &rng)
            }.sorted()
        }
        return .thresholds(MultiThreshold(thresholds: lists, outBias: Int64.random(in: -3...3, using: &rng) + Int64(grid.minInt), grid: grid))
    }

    func multiplyShift(channels: Int, grid: IntQuantGrid, _ rng: inout SeededRandom) -> Requantization {
        .multiplyShift(MultiplyShift(multipliers: (0..<channels).map { _ in Int32.random(in: 1...40000, using: &rng) },
                                     shifts: (0..<channels).map { _ in Int.random(in: 0...24, using: &rng) },
                                     offsets: [Int64.random(in: -2...2, using: &rng)], grid: grid))
    }

    /// A random chain: conv (stride 1) → max-pool, conv (stride 1 or 2) → flatten, gemm → gemm.
    func randomModel(_ rng: inout SeededRandom, weightBound: Int32) -> (IntegerModel, [Int]) {
        let modes: [RoundingMode] = [.round, .halfUp, .floor, .ceil]
        let inGrid = Bool.random(using: &rng) ? grid(8, signed: false) : grid(4, signed: true)
        let input = CodeGrid(grid: inGrid, scale: 1, zeroPoint: Bool.random(using: &rng) ? 0 : Int.random(in: inGrid.minInt...inGrid.maxInt, using: &rng))
        let c0 = [1, 2, 3].randomElement(using: &rng)!, side = [6, 7, 9].randomElement(using: &rng)!
        let m1 = [4, 16, 18].randomElement(using: &rng)!, m2 = [5, 20].randomElement(using: &rng)!, m3 = [7, 17].randomElement(using: &rng)!
        func weights(_ shape: [Int]) -> QTensor {
            QTensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in
                Int.random(in: 0..<8, using: &rng) == 0 ? (Bool.random(using: &rng) ? weightBound : -weightBound) : Int32.random(in: -weightBound...weightBound, using: &rng)
            })
        }
        func cap() -> AccumulatorCap? {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: return AccumulatorCap(bits: Int.random(in: 6...12, using: &rng), overflow: .wrap)
            case 1: return AccumulatorCap(bits: Int.random(in: 6...12, using: &rng), overflow: .saturate)
            case 2: return AccumulatorCap(bits: 40, overflow: .wrap)
            default: return nil
            }
        }
        func requant(_ channels: Int, _ out: IntQuantGrid) -> ([ClosedRange<Int64>]) -> Requantization {
            let kind = Int.random(in: 0..<4, using: &rng), length = out.maxInt - out.minInt, ragged = Bool.random(using: &rng)
            var local = SeededRandom(seed: UInt64.random(in: 0...1000, using: &rng))
            return { ranges in
                switch kind {
                case 0: return self.multiplyShift(channels: channels, grid: out, &local)
                case 1: return self.thresholds(ranges, length: length, grid: out, shared: true, &local)
                default: return self.thresholds(ranges, length: length, grid: out, ragged: ragged, &local)
                }
            }
        }
        let g1 = grid([1, 2, 4].randomElement(using: &rng)!, signed: Bool.random(using: &rng), modes.randomElement(using: &rng)!)
        let g2 = grid(4, signed: false), g3 = grid(3, signed: true)
        let stride2 = Bool.random(using: &rng) ? 1 : 2, pad2 = Int.random(in: 0...1, using: &rng)
        let l1 = layer(.conv(stride: 1, padding: 1), weights([m1, c0, 3, 3]), input: input, output: g1, cap: cap(),
                       dropped: Int.random(in: 0...2, using: &rng), requant: requant(m1, g1))
        let l2 = layer(.conv(stride: stride2, padding: pad2), weights([m2, m1, 3, 3]), input: CodeGrid(grid: g1, scale: 1), output: g2,
                       codeOps: [.maxPool(kernel: 2, stride: 2, padding: 0)], cap: cap(), requant: requant(m2, g2))
        let pooled = (side / 2 + 2 * pad2 - 3) / stride2 + 1
        let rounded = (0..<m3).map { _ in Int64.random(in: -50...50, using: &rng) }
        let l3 = layer(.gemm, weights([m3, m2 * pooled * pooled]), input: CodeGrid(grid: g2, scale: 1), output: g3, codeOps: [.flatten],
                       cap: cap(), dropped: Int.random(in: 0...1, using: &rng), roundedBias: Bool.random(using: &rng) ? rounded : nil,
                       requant: requant(m3, g3))
        let l4 = layer(.gemm, weights([3, m3]), input: CodeGrid(grid: g3, scale: 1, zeroPoint: -1), output: nil, cap: cap())
        let model = IntegerModel(name: "random", inputShape: [c0, side, side], inputQuantizer: input, inputScale: 1, layers: [l1, l2, l3, l4])
        return (model, [c0, side, side])
    }

    // MARK: Tests

    func testRandomChainsMatchTheDefinition() {
        var rng = SeededRandom(seed: 77)
        var seen: [String: Int] = [:]  // which plans the trials exercised
        defer {
            let bytes = IntegerOps.availableInt16Kernels.contains(.vnni512) ? ["byte conv", "byte gemm"] : []  // the byte paths need VNNI
            for kind in ["direct", "pooled direct", "im2col", "gemm", "thresholds", "multiplyShift", "wrap", "saturate", "definition"] + bytes {
                XCTAssertGreaterThan(seen[kind] ?? 0, 0, "no \(kind) plan among the trials: \(seen)")
            }
        }
        for trial in 0..<24 {
            let (model, shape) = randomModel(&rng, weightBound: [1, 7, 127][trial % 3])
            for plan in model.executionCache.plans(for: model.layers) {
                guard let fused = plan.fused else { seen["definition", default: 0] += 1; continue }
                if case .gemm = plan.layer.product.kind { seen["gemm", default: 0] += 1 } else { seen[fused.direct != nil ? "direct" : "im2col", default: 0] += 1 }
                if fused.direct != nil && plan.layer.codeOps == [.maxPool(kernel: 2, stride: 2, padding: 0)] { seen["pooled direct", default: 0] += 1 }
                if fused.byteDirect != nil { seen["byte conv", default: 0] += 1 }
                if fused.byteGemm != nil { seen["byte gemm", default: 0] += 1 }
                if case .thresholds = fused.epilogue.requant { seen["thresholds", default: 0] += 1 }
                if case .multiplyShift = fused.epilogue.requant { seen["multiplyShift", default: 0] += 1 }
                if let cap = fused.epilogue.cap { seen[cap.overflow.rawValue, default: 0] += 1 }
            }
            let g = model.inputQuantizer.grid, n = 5
            assertRunMatchesReference(model, codes([n] + shape, g, &rng), "trial \(trial), random inputs")
            let top = QTensor(shape: [n] + shape, values: Array(repeating: Int32(g.maxInt), count: n * shape.reduce(1, *)))
            let bottom = QTensor(shape: [n] + shape, values: Array(repeating: Int32(g.minInt), count: n * shape.reduce(1, *)))
            assertRunMatchesReference(model, top, "trial \(trial), all-max inputs")
            assertRunMatchesReference(model, bottom, "trial \(trial), all-min inputs")
        }
    }

    func testFusedPlansAreChosenWhereExact() {
        // 8-bit unsigned inputs, weights −7…7: every layer takes the Int16 path and is fused;
        // the stride-1 convolution reads the image directly, the stride-2 one does not.
        let u8 = CodeGrid(grid: grid(8, signed: false), scale: 1), u4 = grid(4, signed: false)
        var rng = SeededRandom(seed: 5)
        let w1 = QTensor(shape: [8, 1, 3, 3], values: (0..<72).map { _ in Int32.random(in: -7...7, using: &rng) })
        let w2 = QTensor(shape: [8, 8, 3, 3], values: (0..<576).map { _ in Int32.random(in: -7...7, using: &rng) })
        let w3 = QTensor(shape: [4, 72], values: (0..<288).map { _ in Int32.random(in: -7...7, using: &rng) })
        let t = { (r: [ClosedRange<Int64>]) in self.thresholds(r, length: 15, grid: u4, &rng) }
        let model = IntegerModel(name: "fused", inputShape: [1, 6, 6], inputQuantizer: u8, inputScale: 1, layers: [
            layer(.conv(stride: 1, padding: 1), w1, input: u8, output: u4, requant: t),
            layer(.conv(stride: 2, padding: 1), w2, input: CodeGrid(grid: u4, scale: 1), output: u4, requant: t),
            layer(.gemm, w3, input: CodeGrid(grid: u4, scale: 1), output: nil, codeOps: [.flatten]),
        ])
        let plans = model.executionCache.plans(for: model.layers)
        XCTAssertEqual(plans.map { $0.fused != nil }, [true, true, true])
        XCTAssertEqual(plans.map { $0.fused?.direct != nil }, [true, false, false])
        // Unsigned bytes in, byte weights: on a VNNI CPU the first layer also has the byte form.
        let vnni = IntegerOps.availableInt16Kernels.contains(.vnni512)
        XCTAssertEqual(plans.map { $0.fused?.byteDirect != nil }, [vnni, false, false])
        XCTAssertEqual(plans.map { $0.fused?.byteGemm != nil }, [false, false, vnni])
        assertRunMatchesReference(model, codes([3, 1, 6, 6], u8.grid, &rng), "fused chain")
        // The same weights ×100 need more than Int16 lanes: the definition runs.
        var wide = model
        wide.layers[0].product.weights = QTensor(shape: w1.shape, values: w1.values.map { $0 * 100 })
        XCTAssertNil(wide.executionCache.plans(for: wide.layers)[0].fused)
        assertRunMatchesReference(wide, codes([3, 1, 6, 6], u8.grid, &rng), "wide weights")
    }

    func testReLUFloorFusesAndLookupTablesRunTheDefinition() {
        // A shift onto a signed 8-bit grid floored at code 0 (a ReLU), then a sigmoid table.
        let u8 = CodeGrid(grid: grid(8, signed: false), scale: 1), s8 = grid(8, signed: true)
        var rng = SeededRandom(seed: 9)
        let w1 = QTensor(shape: [6, 10], values: (0..<60).map { _ in Int32.random(in: -7...7, using: &rng) })
        let w2 = QTensor(shape: [5, 6], values: (0..<30).map { _ in Int32.random(in: -7...7, using: &rng) })
        let w3 = QTensor(shape: [3, 5], values: (0..<15).map { _ in Int32.random(in: -7...7, using: &rng) })
        let floor = { (_: [ClosedRange<Int64>]) in Requantization.multiplyShift(.shifting(by: [3], grid: s8, lowest: 0)) }
        var model = IntegerModel(name: "floor", inputShape: [10], inputQuantizer: u8, inputScale: 1, layers: [
            layer(.gemm, w1, input: u8, output: s8, requant: floor),
            layer(.gemm, w2, input: CodeGrid(grid: s8, scale: 1), output: s8, requant: floor),
            layer(.gemm, w3, input: CodeGrid(grid: s8, scale: 1), output: nil),
        ])
        let pre = CodeGrid(grid: s8, scale: 1.0 / 16), post = CodeGrid(grid: grid(8, signed: false), scale: 1.0 / 255)
        model.layers[1].lookup = CodeLookup(input: pre, function: .sigmoid, output: post)
        model.layers[1].output = post
        model.layers[2].input = post
        let plans = model.executionCache.plans(for: model.layers)
        XCTAssertEqual(plans.map { $0.fused != nil }, [true, false, true])
        let input = codes([7, 10], u8.grid, &rng)
        assertRunMatchesReference(model, input, "floor and table")
        let first = model.run(input).codes[0].values
        XCTAssertEqual(first.min(), 0)  // the floor holds, on a grid reaching −128
        XCTAssertGreaterThan(first.max()!, 0)
    }

    func testBiasAtTheInt32Edge() {
        // |Σ| ≤ 255 · 7 · 4 = 7140; |bias| up to 2^31 − 2 − 7140 keeps the fused form, one more
        // does not. Caps of 31 bits (saturating and wrapping) act on those large sums.
        let u8 = CodeGrid(grid: grid(8, signed: false), scale: 1)
        let w = QTensor(shape: [2, 4], values: [7, 7, 7, 7, -7, -7, -7, -7])
        let edge = Int64(Int32.max) - 1 - 7140
        let x = QTensor(shape: [3, 4], values: [255, 255, 255, 255, 0, 0, 0, 0, 17, 200, 3, 255])
        for (bias, fused) in [(edge, true), (edge + 1, false), (-edge, true), (-edge - 1, false)] {
            for cap in [nil, AccumulatorCap(bits: 31, overflow: .saturate), AccumulatorCap(bits: 31, overflow: .wrap)] {
                var l = layer(.gemm, w, input: u8, output: nil, cap: cap)
                l.product.bias = [bias, -bias]
                let last = IntegerModel(name: "edge", inputShape: [4], inputQuantizer: u8, inputScale: 1, layers: [l])
                XCTAssertEqual(last.executionCache.plans(for: last.layers)[0].fused != nil, fused, "bias \(bias)")
                assertRunMatchesReference(last, x, "bias \(bias), cap \(String(describing: cap))")
                // As a hidden layer: thresholds near the Int32 ends.
                var hidden = l
                hidden.output = CodeGrid(grid: grid(2, signed: false), scale: 1)
                hidden.requantization = .thresholds(MultiThreshold(thresholds: [[Int64(Int32.min) + 1, -bias, bias].sorted(), [Int64(Int32.max) - 1, Int64(Int32.max), Int64.max]],
                                                                   grid: grid(2, signed: false)))
                let out = layer(.gemm, QTensor(shape: [1, 2], values: [1, 1]), input: CodeGrid(grid: grid(2, signed: false), scale: 1), output: nil)
                let two = IntegerModel(name: "edge2", inputShape: [4], inputQuantizer: u8, inputScale: 1, layers: [hidden, out])
                assertRunMatchesReference(two, x, "hidden, bias \(bias), cap \(String(describing: cap))")
            }
        }
    }

    func testDroppedBitsAndWideGridsFallBackOrMatch() {
        var rng = SeededRandom(seed: 9)
        let u8 = CodeGrid(grid: grid(8, signed: false), scale: 1)
        let w = QTensor(shape: [20, 30], values: (0..<600).map { _ in Int32.random(in: -7...7, using: &rng) })
        let x = codes([7, 30], u8.grid, &rng)
        // Dropped bits beyond 31 leave 0 or −1; a 32-bit signed output grid keeps the definition.
        for dropped in [1, 5, 31, 40] {
            let l = layer(.gemm, w, input: u8, output: grid(3, signed: true), dropped: dropped) {
                self.thresholds($0, length: 7, grid: self.grid(3, signed: true), &rng)
            }
            let out = layer(.gemm, QTensor(shape: [2, 20], values: (0..<40).map { Int32($0 % 5) - 2 }), input: CodeGrid(grid: grid(3, signed: true), scale: 1), output: nil)
            let model = IntegerModel(name: "drop", inputShape: [30], inputQuantizer: u8, inputScale: 1, layers: [l, out])
            XCTAssertNotNil(model.executionCache.plans(for: model.layers)[0].fused)
            assertRunMatchesReference(model, x, "dropped \(dropped)")
        }
        let s32 = grid(32, signed: true)
        let wide = layer(.gemm, w, input: u8, output: s32) { self.thresholds($0, length: 5, grid: s32, &rng) }
        let out = layer(.gemm, QTensor(shape: [1, 20], values: Array(repeating: 1, count: 20)), input: CodeGrid(grid: s32, scale: 1), output: nil)
        let model = IntegerModel(name: "wide", inputShape: [30], inputQuantizer: u8, inputScale: 1, layers: [wide, out])
        XCTAssertEqual(model.executionCache.plans(for: model.layers).map { $0.fused != nil }, [false, false])
        assertRunMatchesReference(model, x, "32-bit grid")
    }

    func testBlockedOutputsEqualRun() {
        // `outputs` runs blocks of samples on the cores; with a tiny cache budget every block
        // holds one or a few samples, and the outputs must still be `run`'s, in order.
        var rng = SeededRandom(seed: 31)
        let saved = IntegerModel.blockBytes
        defer { IntegerModel.blockBytes = saved }
        for trial in 0..<4 {
            let (model, shape) = randomModel(&rng, weightBound: [7, 127][trial % 2])
            let x = codes([23] + shape, model.inputQuantizer.grid, &rng)
            let expected = reference(model, x).outputs
            for budget in [1, 20_000, 1 << 20] {
                IntegerModel.blockBytes = budget
                forEachKernel {
                    XCTAssertEqual(model.outputs(x), expected, "trial \(trial), budget \(budget), \(IntegerOps.int16Kernel)")
                }
            }
        }
    }

    func testLargeBatchesSplitOverCoresAndCachesFollowChanges() {
        // Enough work to split over the cores (≥ 2^20 multiply-adds per layer).
        var rng = SeededRandom(seed: 11)
        let u4 = CodeGrid(grid: grid(4, signed: false), scale: 1)
        let w1 = QTensor(shape: [64, 512], values: (0..<(64 * 512)).map { _ in Int32.random(in: -7...7, using: &rng) })
        let w2 = QTensor(shape: [16, 4, 3, 3], values: (0..<576).map { _ in Int32.random(in: -7...7, using: &rng) })
        let gemm = layer(.gemm, w1, input: u4, output: u4.grid) { self.thresholds($0, length: 15, grid: self.grid(4, signed: false), &rng) }
        let head = layer(.gemm, QTensor(shape: [3, 64], values: (0..<192).map { Int32($0 % 15) - 7 }), input: u4, output: nil)
        var model = IntegerModel(name: "big", inputShape: [512], inputQuantizer: u4, inputScale: 1, layers: [gemm, head])
        let x = codes([40, 512], u4.grid, &rng)
        assertRunMatchesReference(model, x, "wide gemm")
        let conv = IntegerModel(name: "conv", inputShape: [4, 40, 40], inputQuantizer: u4, inputScale: 1, layers: [
            layer(.conv(stride: 1, padding: 1), w2, input: u4, output: nil),
        ])
        assertRunMatchesReference(conv, codes([12, 4, 40, 40], u4.grid, &rng), "conv as the last layer")
        // A copy shares the plans until its layers change; then each runs its own layers.
        let before = model
        model.layers[0].product.weights = QTensor(shape: w1.shape, values: w1.values.map { -$0 })
        XCTAssertNotEqual(model, before)
        assertRunMatchesReference(model, x, "negated weights")
        assertRunMatchesReference(before, x, "the unchanged copy")
        // The cache is not part of the value.
        var same = before
        same.layers = before.layers
        _ = same.run(x)
        XCTAssertEqual(same, before)
    }
}
