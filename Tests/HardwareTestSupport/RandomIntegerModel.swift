import QForgeInteger
import QForgeTensor

/// Random dense integer models for testing the hardware against `IntegerModel.run`: layer
/// sizes, weight and activation widths (1–8 bits, signed or unsigned, narrow), zero points,
/// thresholds or multiplier/shift requantization in every rounding mode, accumulator caps
/// (wrap and saturate) and dropped bits.
public struct RandomIntegerModel {
    public var rng: SeededRandom

    public init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(rng.next() % UInt64(r.upperBound - r.lowerBound + 1)) }
    mutating func chance(_ p: Double) -> Bool { Double(rng.next() % 10_000) < p * 10_000 }

    mutating func grid(maxBits: Int = 8) -> IntQuantGrid {
        let bits = int(1...maxBits)
        let signed = bits > 1 && chance(0.5)
        let narrow = bits > 1 && chance(0.25)
        return IntQuantGrid(bitWidth: bits, signed: signed, narrow: narrow, rounding: RoundingMode.allCases[int(0...RoundingMode.allCases.count - 1)])
    }

    mutating func codeGrid(maxBits: Int = 8) -> CodeGrid {
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
            let (k, m) = (sizes[i], sizes[i + 1])
            let wbits = int(1...8)
            let weights: [Int32] = (0..<(m * k)).map { _ in
                if wbits == 1 { return chance(0.5) ? 1 : -1 }
                let lo = -(1 << (wbits - 1)), hi = (1 << (wbits - 1)) - 1
                return Int32(chance(0.1) ? (chance(0.5) ? lo : hi) : int(lo...hi))
            }
            let w = QTensor(shape: [m, k], values: weights)
            let isLast = i == count - 1
            let probe = IntegerLayer.dense(name: "probe", input: input, weights: w, requantization: .output, output: nil)
            var cap: AccumulatorCap?
            if chance(0.3), probe.accumulatorBits > 3 {
                cap = AccumulatorCap(bits: max(2, probe.accumulatorBits - int(1...3)), overflow: chance(0.5) ? .wrap : .saturate)
            }
            let width = min(probe.accumulatorBits, cap?.bits ?? 64)
            let dropped = chance(0.3) ? int(1...min(3, max(1, width - 1))) : 0
            let name = "layers.\(i)"
            if isLast {
                layers.append(.dense(name: name, input: input, weights: w, accumulatorCap: cap, droppedBits: dropped, requantization: .output, output: nil))
                break
            }
            let out = codeGrid()
            // The range of the value the requantization sees (after cap and shift), for plausible parameters.
            let lo = probe.accumulatorRange.map(\.lowerBound).min()!, hi = probe.accumulatorRange.map(\.upperBound).max()!
            let capLo = cap.map { max(lo, $0.range.lowerBound) } ?? lo, capHi = cap.map { min(hi, $0.range.upperBound) } ?? hi
            let vlo = capLo >> Int64(dropped), vhi = capHi >> Int64(dropped)
            var requant: Requantization
            var roundedBias: [Int64]?
            if chance(0.5) {
                let levels = out.grid.maxInt - out.grid.minInt
                let lists = (0..<(chance(0.2) ? 1 : m)).map { _ -> [Int64] in
                    (0..<levels).map { _ in Int64(int(Int(vlo) - 2...Int(vhi) + 2)) }.sorted()
                }
                let outBias = chance(0.8) ? Int64(out.grid.minInt) : Int64(out.grid.minInt + int(-2...2))
                requant = .thresholds(MultiThreshold(thresholds: lists, outBias: outBias, grid: out.grid))
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
                        shifts.append(max(0, mbits + spanBits - out.grid.bitWidth + int(-3...3)))
                    }
                }
                let offsets = (0..<(perChannel && chance(0.5) ? m : 1)).map { _ in Int64(out.zeroPoint + int(-2...2)) }
                requant = .multiplyShift(MultiplyShift(multipliers: multipliers, shifts: shifts, offsets: offsets, grid: out.grid))
                if chance(0.6) { roundedBias = (0..<m).map { _ in Int64(int(-span...span)) } }
            }
            layers.append(.dense(name: name, input: input, weights: w, accumulatorCap: cap, droppedBits: dropped, roundedBias: roundedBias,
                                 requantization: requant, output: out))
            input = out
        }
        return IntegerModel(name: "random", input: first, shape: [sizes[0]], layers: layers)
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
