import QForgeInteger
import QForgeTensor

/// Random dense integer models for testing the hardware against `IntegerModel.run`: layer
/// sizes, weight and activation widths (1–8 bits, signed or unsigned, narrow), zero points,
/// thresholds or multiplier/shift requantization in every rounding mode, ReLU floors (`lowest`)
/// on multiplier/shift grids, lookup-table activations (random tables), accumulator caps (wrap and saturate) and dropped bits. With
/// `wide`, a grid is sometimes 17–32 bits wide (signed, zero point 0, as seed 000's int32
/// activations); layers writing such a grid requantize by multiplier/shift (right or left shifts).
public struct RandomIntegerModel {
    public var rng: SeededRandom
    /// The chance that a grid is 17–32 bits wide.
    public var wideChance: Double
    /// The chance that a hidden layer with a grid up to 8 bits has a lookup-table activation.
    public var lookupChance: Double

    public init(seed: UInt64, wideChance: Double = 0.2, lookupChance: Double = 0.25) {
        rng = SeededRandom(seed: seed)
        self.wideChance = wideChance
        self.lookupChance = lookupChance
    }

    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(rng.next() % UInt64(r.upperBound - r.lowerBound + 1)) }
    mutating func chance(_ p: Double) -> Bool { Double(rng.next() % 10_000) < p * 10_000 }

    mutating func grid(maxBits: Int = 8) -> IntQuantGrid {
        let bits = int(1...maxBits)
        let signed = bits > 1 && chance(0.5)
        let narrow = bits > 1 && chance(0.25)
        return IntQuantGrid(bitWidth: bits, signed: signed, narrow: narrow, rounding: RoundingMode.allCases[int(0...RoundingMode.allCases.count - 1)])
    }

    mutating func codeGrid(maxBits: Int = 8) -> CodeGrid {
        if chance(wideChance) {
            let g = IntQuantGrid(bitWidth: int(17...32), signed: true, narrow: chance(0.25),
                                 rounding: RoundingMode.allCases[int(0...RoundingMode.allCases.count - 1)])
            return CodeGrid(grid: g, scale: 1, zeroPoint: 0)
        }
        let g = grid(maxBits: maxBits)
        let zero = chance(0.4) ? int(g.minInt...g.maxInt) : (g.minInt...g.maxInt).contains(0) ? 0 : g.minInt
        return CodeGrid(grid: g, scale: 1, zeroPoint: zero)
    }

    /// A model of 1…`maxLayers` dense layers with sizes 1…`maxSize`.
    public mutating func model(maxLayers: Int = 3, maxSize: Int = 32) -> IntegerModel {
        let count = int(1...maxLayers)
        let sizes = (0...count).map { _ in int(1...maxSize) }
        var input = codeGrid()
        let first = input
        var layers: [IntegerLayer] = []
        for i in 0..<count {
            let w = weights([sizes[i + 1], sizes[i]])
            let (layer, out) = layer(name: "layers.\(i)", input: input, weights: w, isLast: i == count - 1)
            layers.append(layer)
            if let out { input = out }
        }
        return IntegerModel(name: "random", input: first, shape: [sizes[0]], layers: layers)
    }

    /// A convolutional model over a C × H × W input (C ≤ `maxChannels`, sides 3…`maxSide`):
    /// 0…2 convolutions (kernels 1…3, possibly non-square, stride 1 or 2, padding 0 or 1, 1…`maxChannels`
    /// output channels), max-pools (2×2 or 3×3, stride = kernel, padding 0 or 1) in front of
    /// some layers, then flatten, an optional hidden dense layer and the last dense layer
    /// (1…`maxDense` outputs). Requantization, caps and widths as `model`.
    public mutating func convModel(maxChannels: Int = 6, maxSide: Int = 8, maxDense: Int = 12) -> IntegerModel {
        var (c, h, w) = (int(1...maxChannels), int(3...maxSide), int(3...maxSide))
        let shape = [c, h, w]
        var input = codeGrid()
        let first = input
        var layers: [IntegerLayer] = []
        var ops: [CodeOp] = []
        func pool() {
            guard h >= 2, w >= 2 else { return }
            let k = int(2...min(3, h, w)), p = chance(0.3) ? 1 : 0
            ops.append(.maxPool(kernel: k, stride: k, padding: p))
            (h, w) = ((h + 2 * p - k) / k + 1, (w + 2 * p - k) / k + 1)
        }
        let convs = int(0...2)
        if convs == 0 || chance(0.2) { pool() }
        for i in 0..<convs {
            let p = int(0...1)
            let kh = int(1...min(3, h + 2 * p)), kw = int(1...min(3, w + 2 * p))
            let s = chance(0.25) ? 2 : 1
            let m = int(1...maxChannels)
            let (layer, out) = layer(name: "conv\(i)", input: input, weights: weights([m, c, kh, kw]), conv: (s, p), codeOps: ops, isLast: false)
            layers.append(layer)
            input = out!
            ops = []
            (c, h, w) = (m, (h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1)
            if chance(0.5) { pool() }
        }
        ops.append(.flatten)
        let hidden = chance(0.5)
        var k = c * h * w
        for i in 0...(hidden ? 1 : 0) {
            let m = int(1...maxDense)
            let (layer, out) = layer(name: "fc\(i)", input: input, weights: weights([m, k]), codeOps: ops, isLast: i == (hidden ? 1 : 0))
            layers.append(layer)
            ops = []
            k = m
            if let out { input = out }
        }
        return IntegerModel(name: "random-cnn", input: first, shape: shape, layers: layers)
    }

    /// Random weight codes of `shape`, 1…8 bits (±1 for one bit), the extremes more often.
    mutating func weights(_ shape: [Int]) -> QTensor {
        let wbits = int(1...8)
        let weights: [Int32] = (0..<shape.reduce(1, *)).map { _ in
            if wbits == 1 { return chance(0.5) ? 1 : -1 }
            let lo = -(1 << (wbits - 1)), hi = (1 << (wbits - 1)) - 1
            return Int32(chance(0.1) ? (chance(0.5) ? lo : hi) : int(lo...hi))
        }
        return QTensor(shape: shape, values: weights)
    }

    /// A layer of weights `w` over `input` (dense, or a convolution of stride and padding `conv`)
    /// with a random cap, dropped bits and requantization onto a random grid (returned; nil for
    /// the last layer), sometimes through a lookup table.
    mutating func layer(name: String, input: CodeGrid, weights w: QTensor, conv: (stride: Int, padding: Int)? = nil, codeOps: [CodeOp] = [],
                        isLast: Bool) -> (IntegerLayer, CodeGrid?) {
        let m = w.shape[0]
        func make(_ cap: AccumulatorCap?, _ dropped: Int, _ roundedBias: [Int64]?, _ requant: Requantization, _ out: CodeGrid?) -> IntegerLayer {
            if let conv {
                return .conv(name: name, input: input, weights: w, stride: conv.stride, padding: conv.padding, codeOps: codeOps, accumulatorCap: cap,
                             droppedBits: dropped, roundedBias: roundedBias, requantization: requant, output: out)
            }
            var l = IntegerLayer.dense(name: name, input: input, weights: w, accumulatorCap: cap, droppedBits: dropped, roundedBias: roundedBias,
                                       requantization: requant, output: out)
            l.codeOps = codeOps
            return l
        }
        let probe = make(nil, 0, nil, .output, nil)
        var cap: AccumulatorCap?
        if chance(0.3), probe.accumulatorBits > 3 {
            cap = AccumulatorCap(bits: max(2, probe.accumulatorBits - int(1...3)), overflow: chance(0.5) ? .wrap : .saturate)
        }
        let width = min(probe.accumulatorBits, cap?.bits ?? 64)
        let dropped = chance(0.3) ? int(1...min(3, max(1, width - 1))) : 0
        if isLast { return (make(cap, dropped, nil, .output, nil), nil) }
        let out = codeGrid()
        // A lookup-table activation: requantize to a narrow grid, then a random table onto `out`.
        let lookupInput: CodeGrid? = out.grid.bitWidth <= 8 && chance(lookupChance) ? { () -> CodeGrid in
            var g = codeGrid()
            while g.grid.bitWidth > 8 { g = codeGrid() }
            return g
        }() : nil
        let target = lookupInput ?? out
        // The range of the value the requantization sees (after cap and shift), for plausible parameters.
        let lo = probe.accumulatorRange.map(\.lowerBound).min()!, hi = probe.accumulatorRange.map(\.upperBound).max()!
        let capLo = cap.map { max(lo, $0.range.lowerBound) } ?? lo, capHi = cap.map { min(hi, $0.range.upperBound) } ?? hi
        let vlo = capLo >> Int64(dropped), vhi = capHi >> Int64(dropped)
        var requant: Requantization
        var roundedBias: [Int64]?
        if target.grid.bitWidth <= 8 && chance(0.5) {
            let levels = target.grid.maxInt - target.grid.minInt
            let lists = (0..<(chance(0.2) ? 1 : m)).map { _ -> [Int64] in
                (0..<levels).map { _ in Int64(int(Int(vlo) - 2...Int(vhi) + 2)) }.sorted()
            }
            let outBias = chance(0.8) ? Int64(target.grid.minInt) : Int64(target.grid.minInt + int(-2...2))
            requant = .thresholds(MultiThreshold(thresholds: lists, outBias: outBias, grid: target.grid))
        } else {
            let perChannel = chance(0.6)
            let n = perChannel ? m : 1
            let span = max(1, Int(vhi - vlo))
            let spanBits = 64 - UInt64(span).leadingZeroBitCount
            var multipliers: [Int32] = [], shifts: [Int] = []
            for _ in 0..<n {
                if chance(0.15) {
                    multipliers.append(1)
                    shifts.append(-int(1...3))
                } else {
                    let mbits = int(1...16)
                    multipliers.append(Int32(int(1...(1 << mbits) - 1)) * (chance(0.1) ? -1 : 1))
                    shifts.append(max(0, mbits + spanBits - target.grid.bitWidth + int(-3...3)))
                }
            }
            let offsets = (0..<(perChannel && chance(0.5) ? m : 1)).map { _ in Int64(target.zeroPoint + int(-2...2)) }
            // A ReLU floor: the zero point (the code of 0) or any code of the grid.
            let lowest: Int64? = chance(0.4) ? (chance(0.5) ? Int64(target.zeroPoint) : Int64(int(target.grid.minInt...target.grid.maxInt))) : nil
            requant = .multiplyShift(MultiplyShift(multipliers: multipliers, shifts: shifts, offsets: offsets, grid: target.grid, lowest: lowest))
            if chance(0.6) { roundedBias = (0..<m).map { _ in Int64(int(-span...span)) } }
        }
        var layer = make(cap, dropped, roundedBias, requant, out)
        if let lookupInput {
            // Entries for a window around the grid (codes beyond it take the end entries).
            let lo = Int64(lookupInput.grid.minInt + int(-2...2))
            let count = max(1, lookupInput.grid.maxInt - lookupInput.grid.minInt + 1 + int(-3...2))
            let codes = (0..<count).map { _ in Int32(int(out.grid.minInt...out.grid.maxInt)) }
            layer.lookup = CodeLookup(input: lookupInput, function: chance(0.5) ? .sigmoid : .tanh, table: LookupTable(lo: lo, codes: codes))
        }
        return (layer, out)
    }
}

/// A two-layer model with known numbers: 4 unsigned 3-bit inputs (zero point 2) → 6 codes
/// (thresholds, 2-bit unsigned) → 2 accumulators (8-bit saturating cap, 1 dropped bit).
public func smallDenseModel() -> IntegerModel {
    let input = CodeGrid(grid: IntQuantGrid(bitWidth: 3, signed: false), scale: 1, zeroPoint: 2)
    let hidden = CodeGrid(grid: IntQuantGrid(bitWidth: 2, signed: false), scale: 1)
    let rows: [[Int32]] = [[1, -2, 3, 0], [-4, 5, -6, 7], [0, 0, 1, 1], [-1, -1, -1, -1], [2, 2, -3, 3], [7, -8, 1, 0]]
    let w0 = QTensor(shape: [6, 4], values: rows.flatMap { $0 })
    let lists: [[Int64]] = (0..<6).map { (c: Int) -> [Int64] in
        let t = Int64(c)
        return [t - 10, t, 5 + 2 * t]
    }
    let thresholds = MultiThreshold(thresholds: lists, grid: hidden.grid)
    let l0 = IntegerLayer.dense(name: "fc0", input: input, weights: w0, requantization: .thresholds(thresholds), output: hidden)
    let second: [Int32] = [7, 7, 7, 7, 7, 7, -8, 1, -8, 1, -8, 1]
    let w1 = QTensor(shape: [2, 6], values: second)
    let l1 = IntegerLayer.dense(name: "fc1", input: hidden, weights: w1, accumulatorCap: AccumulatorCap(bits: 8, overflow: .saturate),
                                droppedBits: 1, requantization: .output, output: nil)
    return IntegerModel(name: "small", input: input, shape: [4], layers: [l0, l1])
}

/// `smallDenseModel()` with its first layer requantized by a right shift of 2 onto signed 3-bit
/// codes with a floor at −1, then a lookup table (entries for −3…2) onto the 2-bit hidden grid.
public func smallLookupModel() -> IntegerModel {
    var m = smallDenseModel()
    let input = CodeGrid(grid: IntQuantGrid(bitWidth: 3, signed: true), scale: 1)
    m.layers[0].requantization = .multiplyShift(.shifting(by: [2], grid: input.grid, lowest: -1))
    m.layers[0].lookup = CodeLookup(input: input, function: .sigmoid, table: LookupTable(lo: -3, codes: [0, 1, 1, 2, 3, 3]))
    return m
}

/// A model of the `jet` preset's shape (16-64-32-32-5) at w4a4 with random numbers, for the
/// parallel style where no jet data set is at hand: 8-bit signed inputs, 4-bit signed narrow
/// weights (−7…7), hidden layers requantized by 15 ascending thresholds per channel (what
/// BatchNorm and a 4-bit unsigned activation streamline to) spread over the middle half of
/// the channel's accumulator range, the last layer's accumulators out.
public func jetShapedModel(seed: UInt64, sizes: [Int] = [16, 64, 32, 32, 5]) -> IntegerModel {
    var rng = SeededRandom(seed: seed)
    func int(_ r: ClosedRange<Int64>) -> Int64 { r.lowerBound + Int64(rng.next() % UInt64(r.upperBound - r.lowerBound + 1)) }
    let first = CodeGrid(grid: IntQuantGrid(bitWidth: 8, signed: true), scale: 1)
    let hidden = CodeGrid(grid: IntQuantGrid(bitWidth: 4, signed: false), scale: 1)
    var input = first
    var layers: [IntegerLayer] = []
    for i in 0..<(sizes.count - 1) {
        let (k, m) = (sizes[i], sizes[i + 1])
        let w = QTensor(shape: [m, k], values: (0..<(m * k)).map { _ in Int32(int(-7...7)) })
        let name = "layers.\(i)"
        if i == sizes.count - 2 {
            layers.append(.dense(name: name, input: input, weights: w, requantization: .output, output: nil))
            break
        }
        let probe = IntegerLayer.dense(name: "probe", input: input, weights: w, requantization: .output, output: nil)
        let lists = probe.accumulatorRange.map { r -> [Int64] in
            let span = max(1, (r.upperBound - r.lowerBound) / 4)
            let mid = (r.upperBound + r.lowerBound) / 2
            return (0..<15).map { _ in int((mid - span)...(mid + span)) }.sorted()
        }
        layers.append(.dense(name: name, input: input, weights: w,
                             requantization: .thresholds(MultiThreshold(thresholds: lists, grid: hidden.grid)), output: hidden))
        input = hidden
    }
    return IntegerModel(name: "jet-shaped", input: first, shape: [sizes[0]], layers: layers)
}
