import QForgeInteger
import QForgeTensor

/// The version written into every generated file's header and into `manifest.json`.
public let qforgeHardwareVersion = "0.1.0"

/// How much of a layer runs in parallel: PE output channels and SIMD inputs per clock.
///
/// A dense layer with K inputs and M outputs computes one SIMD-wide slice of the input vector
/// against PE rows of its weights per cycle, so one input vector takes K/SIMD × M/PE cycles.
/// PE must divide M and SIMD must divide K.
public struct Folding: Codable, Equatable, Sendable, CustomStringConvertible {
    public var pe: Int
    public var simd: Int

    public init(pe: Int, simd: Int) {
        self.pe = pe
        self.simd = simd
    }

    public var description: String { "PE \(pe), SIMD \(simd)" }

    /// The default folding of a layer with `inputs` and `outputs`: the largest divisor of M up
    /// to `limit` as PE and the largest divisor of K up to `limit` as SIMD.
    public static func standard(inputs: Int, outputs: Int, limit: Int = 8) -> Folding {
        func divisor(_ n: Int) -> Int { (1...max(1, min(limit, n))).last { n % $0 == 0 } ?? 1 }
        return Folding(pe: divisor(outputs), simd: divisor(inputs))
    }
}

/// Why a model cannot become hardware, in one line with the values a user needs.
public enum HardwareError: Error, CustomStringConvertible, Equatable {
    case unsupportedOp(layer: String, op: String)
    case folding(layer: String, problem: String)
    case foldingCount(given: Int, layers: Int)
    case gridMismatch(layer: String, problem: String)
    case invalid(String)

    public var description: String {
        switch self {
        case let .unsupportedOp(layer, op):
            return "layer \(layer): \(op) is not supported by the folded dataflow style (it takes dense and convolution layers, max-pool with stride = kernel, and flatten)"
        case let .folding(layer, problem): return "layer \(layer): \(problem)"
        case let .foldingCount(given, layers): return "the folding lists \(given) layers, the model has \(layers)"
        case let .gridMismatch(layer, problem): return "layer \(layer): \(problem)"
        case let .invalid(message): return message
        }
    }
}

/// An integer range and the signed width that holds it.
public struct ValueRange: Codable, Equatable, Sendable {
    public var lo: Int64
    public var hi: Int64
    public init(_ lo: Int64, _ hi: Int64) {
        precondition(lo <= hi, "ValueRange: \(lo) above \(hi)")
        self.lo = lo
        self.hi = hi
    }
    /// The smallest signed width holding lo…hi (at least 1).
    public var bits: Int { IntegerOps.signedBitsNeeded(min: lo, max: hi) }
    public func union(_ o: ValueRange) -> ValueRange { ValueRange(min(lo, o.lo), max(hi, o.hi)) }
}

/// A per-output-channel parameter of a layer: one value for every channel (a constant in the
/// RTL) or one per channel (a field of the layer's parameter ROM).
public struct ChannelParameter: Equatable, Sendable {
    public var name: String
    public var values: [Int64]
    /// Width of the field or constant in bits (two's complement unless `unsigned`).
    public var bits: Int
    public var unsigned: Bool

    public var isConstant: Bool { Set(values).count <= 1 }
    public func value(_ channel: Int) -> Int64 { values[values.count == 1 ? 0 : channel] }
}

/// How a matrix-vector unit turns its accumulators into its output words.
public enum RequantizationUnit: Equatable, Sendable {
    /// clamp(outBias + #{i : t ≥ T[c][i]}, grid); thresholds clamped into the value range
    /// (lo…hi + 1 decides t ≥ T exactly for every t in lo…hi), lists padded to one length with hi + 1.
    case thresholds(levels: Int, thresholds: [ChannelParameter], outBias: Int64, comparatorBits: Int)
    /// v = t + roundedBias; clamp(R(v·m/2^s + z), lowest, grid max), computed exactly; `lowest` is
    /// max(grid min, the integer model's lowest code), the ReLU floor of signed grids.
    case multiplyShift(roundedBias: ChannelParameter?, sumBits: Int, multiplier: ChannelParameter, shift: ChannelParameter,
                       offset: ChannelParameter, rounding: RoundingMode, lowest: Int64)
    /// The last layer: the accumulators leave the design as they are.
    case output

    public var name: String {
        switch self {
        case .thresholds: return "thresholds"
        case .multiplyShift: return "multiply-shift"
        case .output: return "output"
        }
    }
}

/// A matrix-vector-activation unit: one dense layer, folded.
///
/// Datapath of one output channel c, in order (every width follows from exact interval
/// analysis of the integer model, so nothing in between can overflow):
///
/// 1. s = Σ_k x[k]·w[c,k], summed SIMD products at a time into a `sumBits` register (when a
///    wrapping accumulator cap is narrower than the sum, the register has the cap's width:
///    two's complement wraps the same in any order);
/// 2. a = s + bias[c] (the zero-point correction `product.bias`) at `accBits`;
/// 3. the cap: saturate to `cap.bits` (wrap happened in the register);
/// 4. t = a >>> droppedBits (floor), `valueRange`/`valueBits`;
/// 5. the requantization unit, or t itself for the last layer.
public struct MatrixVectorUnit: Equatable, Sendable {
    public var index: Int
    /// The integer layer's name (`layers.2/act_quant`).
    public var layerName: String
    /// The RTL module (`qf_l0_mvau`).
    public var module: String
    public var inputs: Int
    public var outputs: Int
    public var folding: Folding
    /// Codes per beat on the incoming stream (the producer's PE, or the input's lanes).
    public var inLanes: Int
    public var inputGrid: IntQuantGrid
    /// Weight codes [M, K] as stored (flipped rows already negated) and their signed width.
    public var weights: [Int32]
    public var weightBits: Int
    /// Range of the bias-free sum over all inputs of the input grid.
    public var sumRange: ValueRange
    /// Width of the running-sum register.
    public var sumBits: Int
    /// `product.bias`: added once per output (nil: none).
    public var bias: ChannelParameter?
    /// Width at which a = s + bias is formed.
    public var accBits: Int
    /// The exact accumulator range before any cap (bias included).
    public var accRange: ValueRange
    public var cap: AccumulatorCap?
    /// Whether a saturating cap clamps (false when the cap is wider than the values).
    public var saturates: Bool
    /// Range and width after the cap.
    public var cappedRange: ValueRange
    public var cappedBits: Int
    public var droppedBits: Int
    /// Range and width of t = capped >>> droppedBits.
    public var valueRange: ValueRange
    public var valueBits: Int
    public var requantization: RequantizationUnit
    /// A convolution's window over the input map (nil: a dense layer). Then `inputs` is
    /// K = kh·kw·C, `weights` columns are in window order, and each input map yields
    /// `outputPixels` output vectors.
    public var window: SlidingWindow?
    /// A convolution's input buffer: a few input rows (nil: a dense layer's two banks).
    public var lineBuffer: LineBuffer?
    /// The grid the requantization produces: the output grid, or a lookup table's input grid.
    public var requantizedGrid: IntQuantGrid?
    /// A lookup-table activation after the requantization: the output code of every
    /// requantized code requantizedGrid.min…max, in that order (nil: none).
    public var lookupCodes: [Int32]?
    /// The grid of the output codes (nil for the last layer).
    public var outputGrid: IntQuantGrid?
    /// Width of one output lane: the code width, or `valueBits` for the last layer.
    public var outputBits: Int

    public var synapseFold: Int { inputs / folding.simd }
    public var neuronFold: Int { outputs / folding.pe }
    /// Cycles per inference: K/SIMD × M/PE per output vector (one per output pixel of a convolution).
    public var cycles: Int { synapseFold * neuronFold * (window?.outputPixels ?? 1) }
    /// Output words (PE codes each) per inference.
    public var outputWordsPerInference: Int { neuronFold * (window?.outputPixels ?? 1) }
    /// Codes of one bank of a dense unit's input buffer: the input vector.
    public var bankSize: Int { inputs }
    public var inputBits: Int { inputGrid.bitWidth }

    /// Per-channel parameters that vary by channel: the fields of the parameter ROM, in order.
    public var romFields: [ChannelParameter] {
        var fields: [ChannelParameter] = []
        if let b = bias, !b.isConstant { fields.append(b) }
        switch requantization {
        case let .thresholds(_, lists, _, _): fields += lists.filter { !$0.isConstant }
        case let .multiplyShift(rb, _, m, s, z, _, _): fields += [rb, m, s, z].compactMap { $0 }.filter { !$0.isConstant }
        case .output: break
        }
        return fields
    }
}

/// The folded dataflow design of an integer model: a chain of matrix-vector units between an
/// AXI-Stream input of codes and an AXI-Stream output of the last layer's accumulators.
///
/// Input stream: one beat carries `inputLanes` consecutive input codes (the first layer's
/// SIMD), feature k·lanes + l in bits [l·b, l·b + b) (b the input code width), padded with
/// zero bits to whole bytes; an inference is `inputBeats` beats, in feature order.
/// Output stream: one accumulator per beat, sign-extended to whole bytes, channel order,
/// `tlast` on the last channel of each inference; with `argmax`, one beat per inference instead:
/// the index of the largest accumulator (the lowest on ties, `IntegerOps.argmax`), unsigned.
public struct HardwareGraph: Equatable, Sendable {
    /// Prefix of every module and file (`qf`): the top is `<prefix>_top`.
    public var prefix: String
    public var modelName: String
    public var inputShape: [Int]
    public var inputGrid: IntQuantGrid
    public var units: [MatrixVectorUnit]
    /// Max-pool units, each in front of the unit `before`.
    public var pools: [PoolUnit] = []
    /// Codes per input beat.
    public var inputLanes: Int
    /// Whether the input is a feature map streamed pixel by pixel (HWC), not in model order.
    public var spatialInput = false
    /// Whether the design ends in an argmax unit (one index per inference).
    public var argmax = false
    /// Folded (the units above) or fully parallel (`HardwareGraph.parallel`, ParallelStyle.swift).
    public var style: HardwareStyle = .folded

    public var top: String { "\(prefix)_top" }
    public var inputFeatures: Int { inputShape.reduce(1, *) }
    public var inputBeats: Int { inputFeatures / inputLanes }
    public var inputDataBits: Int { roundUpToBytes(inputLanes * inputGrid.bitWidth) }
    /// Width of the serializer's beats: the last accumulators, sign-extended to whole bytes.
    public var accumulatorDataBits: Int { roundUpToBytes(units.last!.valueBits) }
    public var outputValueBits: Int { argmax ? indexBits(units.last!.outputs) : units.last!.valueBits }
    /// Values per output beat: all the last accumulators in the parallel style, else one.
    public var outputLanes: Int { style == .parallel && !argmax ? units.last!.outputs : 1 }
    public var outputDataBits: Int { outputLanes * roundUpToBytes(outputValueBits) }
    /// Output beats per inference.
    public var outputWords: Int { argmax || style == .parallel ? 1 : units.last!.outputs }

    /// Clock cycles between inferences in steady state, without stalls: the slowest stage of
    /// the pipeline. Stages: the input (one beat per cycle), every layer (K/SIMD × M/PE), and
    /// the last layer with the serializer, which emits its PE accumulators one per cycle, so
    /// it needs M/PE · max(K/SIMD, PE) cycles.
    public var expectedCyclesPerInference: Int {
        if style == .parallel { return parallelCyclesPerInference }
        let last = units.last!
        let tail = last.neuronFold * max(last.synapseFold, last.folding.pe)
        return ([inputBeats, tail] + pools.map(\.inputBeats) + units.dropLast().map(\.cycles)).max()!
    }

    /// Cycles from the first input beat's handshake to the last output beat's handshake of an
    /// inference entering an empty design without stalls. Each dense unit starts when its input
    /// bank is full, issues its K/SIMD × M/PE slices, and its last output word reaches the
    /// next bank 3 cycles after the last issue (ROM read, multiply-accumulate, requantize);
    /// the serializer then emits the last layer's words.
    ///
    /// `time(b)` is the cycle at which beat b of the current stream is taken (input beat b at
    /// b); a dense unit starts one cycle after its bank's last beat and delivers word w at
    /// start + (w + 1)·K/SIMD + 2; a pool delivers each output one cycle after the input that
    /// completes its window. Convolutions start each output row as soon as its input rows are
    /// in, and their line buffers hold the stream back when full, so the stages in front of
    /// the first dense unit (pools and convolutions) are timed by their cycle model
    /// (`FrontTiming`), which gives the times of the stream into that unit.
    public var expectedLatency: Int {
        if style == .parallel { return parallelLatency }
        let last = units.last!
        var time: (Int) -> Int = { $0 }
        var lastBeat = inputBeats - 1
        var start = 0
        let front = frontStages(units: units, pools: pools)
        let firstDense = units.firstIndex { $0.lineBuffer == nil }!
        if firstDense > 0 {
            let timing = FrontTiming(inputBeats: inputBeats, stages: front)
            let times = timing.outputTimes(inferences: 1)
            time = { times[$0] }
            lastBeat = times.count - 1
        }
        for u in units[firstDense...] {
            for pool in pools where pool.before == u.index && firstDense == 0 {
                let previous = time
                time = { j in previous(pool.completingBeat(j)) + 1 }
                lastBeat = pool.outputBeats - 1
            }
            start = time(lastBeat) + 1  // the unit's bank is full after its last beat
            if u.index == last.index { break }
            let (s, sf) = (start, u.synapseFold)
            time = { w in s + (w + 1) * sf + 2 }
            lastBeat = u.outputWordsPerInference - 1
        }
        let firstWord = start + last.synapseFold + 2
        // The argmax unit registers its index one cycle after the last accumulator.
        return firstWord + (last.neuronFold - 1) * max(last.synapseFold, last.folding.pe) + last.folding.pe + (argmax ? 1 : 0)
    }
}

func roundUpToBytes(_ bits: Int) -> Int { (bits + 7) / 8 * 8 }

/// Bits of an unsigned value (at least 1).
func unsignedBits(_ v: Int64) -> Int { max(1, 64 - UInt64(max(v, 0)).leadingZeroBitCount) }

/// Bits of an index 0…count−1 (at least 1).
func indexBits(_ count: Int) -> Int { unsignedBits(Int64(max(count - 1, 0))) }

extension HardwareGraph {
    /// Lowers an integer model to matrix-vector units (dense or convolution) and max-pool units
    /// with the given foldings (one per layer; nil: `Folding.standard`, over C for a
    /// convolution). Flatten is free (dense columns are reordered to the stream's HWC order);
    /// what the hardware lacks, and models whose layer grids do not chain, are errors naming the layer. `argmax`: the design outputs
    /// the index of the largest last accumulator instead of the accumulators.
    public init(_ model: IntegerModel, foldings: [Folding]? = nil, prefix: String = "qf", argmax: Bool = false) throws {
        guard !model.layers.isEmpty else { throw HardwareError.invalid("the integer model has no layers") }
        guard prefix.first.map({ $0.isLetter }) == true, prefix.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), prefix.allSatisfy(\.isASCII) else {
            throw HardwareError.invalid("module prefix '\(prefix)' must start with a letter and hold only letters, digits and _")
        }
        if let f = foldings, f.count != model.layers.count { throw HardwareError.foldingCount(given: f.count, layers: model.layers.count) }
        let lowered = try HardwareGraph.lower(model, foldings: foldings, prefix: prefix)
        units = lowered.units
        pools = lowered.pools
        inputLanes = lowered.inputLanes
        spatialInput = lowered.spatialInput
        self.prefix = prefix
        modelName = model.name
        inputShape = model.inputShape
        inputGrid = model.inputQuantizer.grid
        self.argmax = argmax
    }
}

extension MatrixVectorUnit {
    /// `w`: the weights as [M, K] in the order the unit reads its inputs; `window`: a convolution's.
    init(_ layer: IntegerLayer, index: Int, isLast: Bool, folding: Folding, inLanes: Int, prefix: String,
         weights w: QTensor, window: SlidingWindow? = nil) throws {
        precondition(w.rank == 2, "unit weights must be [M, K]")
        let (m, k) = (w.shape[0], w.shape[1])
        guard m > 0, k > 0 else { throw HardwareError.invalid("layer \(layer.name): empty weight matrix \(w.shape)") }
        guard folding.pe >= 1, folding.simd >= 1, m % folding.pe == 0, k % folding.simd == 0 else {
            throw HardwareError.folding(layer: layer.name, problem: "\(folding) does not divide the layer (\(m) outputs need PE dividing \(m), \(k) inputs need SIMD dividing \(k))")
        }
        self.index = index
        layerName = layer.name
        module = "\(prefix)_l\(index)_mvau"
        inputs = k
        outputs = m
        self.folding = folding
        self.inLanes = inLanes
        self.window = window
        inputGrid = layer.input.grid
        weights = w.values
        weightBits = IntegerOps.signedBitsNeeded(min: Int64(w.values.min()!), max: Int64(w.values.max()!))

        let codes = Int32(inputGrid.minInt)...Int32(inputGrid.maxInt)
        // A padded window also reads code 0 (`IntegerOps.conv2d` pads with it).
        let sums = IntegerOps.accumulatorRanges(weight: w, inputs: codes, zeroPadded: (window?.padding ?? 0) > 0)
        let biasValues = layer.product.bias ?? [Int64](repeating: 0, count: m)
        let sumRanges = sums.map { ValueRange($0.lowerBound, $0.upperBound) }
        let accRanges = sums.enumerated().map { c, r in ValueRange(r.lowerBound + biasValues[c], r.upperBound + biasValues[c]) }
        sumRange = sumRanges.dropFirst().reduce(sumRanges[0]) { $0.union($1) }
        accRange = accRanges.dropFirst().reduce(accRanges[0]) { $0.union($1) }
        let full = sumRange.union(accRange).bits
        cap = layer.accumulatorCap
        if let cap, cap.overflow == .wrap, cap.bits < full {
            // Wrapping: every sum and the bias live modulo 2^bits.
            sumBits = cap.bits
            accBits = cap.bits
            saturates = false
            cappedRange = accRange.bits <= cap.bits ? accRange : ValueRange(cap.range.lowerBound, cap.range.upperBound)
            cappedBits = cap.bits
        } else {
            sumBits = sumRange.bits
            accBits = full
            if let cap, cap.overflow == .saturate, cap.bits < accRange.bits {
                saturates = true
                cappedRange = ValueRange(max(accRange.lo, cap.range.lowerBound), min(accRange.hi, cap.range.upperBound))
                cappedBits = cap.bits
            } else {
                saturates = false
                cappedRange = accRange
                cappedBits = full
            }
        }
        if let b = layer.product.bias, b.contains(where: { $0 != 0 }) {
            // Stored modulo 2^accBits: a + b is formed at accBits and always fits there.
            let width = accBits
            bias = ChannelParameter(name: "bias", values: b.map { wrap($0, bits: width) }, bits: width, unsigned: false)
        } else {
            bias = nil
        }
        let dropped = layer.droppedBits
        droppedBits = dropped
        valueRange = ValueRange(cappedRange.lo >> Int64(dropped), cappedRange.hi >> Int64(dropped))
        valueBits = max(1, cappedBits - dropped)

        if isLast {
            requantization = .output
            outputGrid = nil
            outputBits = valueBits
            return
        }
        guard let final = layer.output else { throw HardwareError.invalid("layer \(layer.name) has no output grid") }
        outputGrid = final.grid
        outputBits = final.grid.bitWidth
        // The requantization targets `out`: the output grid, or the lookup table's input grid.
        let out = layer.requantizedGrid ?? final
        requantizedGrid = out.grid
        if let lookup = layer.lookup {
            let entries = Int64(out.grid.maxInt) - Int64(out.grid.minInt) + 1
            guard entries <= Int64(CodeLookup.maxEntries) else {
                throw HardwareError.unsupportedOp(layer: layer.name, op: "lookup-table \(lookup.function) activation of \(entries) entries (at most \(CodeLookup.maxEntries))")
            }
            lookupCodes = (Int64(out.grid.minInt)...Int64(out.grid.maxInt)).map { lookup.table.apply($0) }
            if let bad = lookupCodes!.first(where: { !(final.grid.minInt...final.grid.maxInt).contains(Int($0)) }) {
                throw HardwareError.gridMismatch(layer: layer.name, problem: "lookup-table \(lookup.function) activation yields code \(bad) outside the output grid \(final.grid)")
            }
        }
        let lo = valueRange.lo, hi = valueRange.hi
        switch layer.requantization {
        case .thresholds(let t):
            guard t.thresholds.count == 1 || t.thresholds.count == m else {
                throw HardwareError.invalid("layer \(layer.name): \(t.thresholds.count) threshold lists for \(m) channels")
            }
            guard t.grid == out.grid else { throw HardwareError.gridMismatch(layer: layer.name, problem: "thresholds produce \(t.grid), the \(layer.lookup == nil ? "output" : "lookup table's input") grid is \(out.grid)") }
            let levels = t.thresholds.map(\.count).max() ?? 0
            // t ≥ T decides the same for every t in lo…hi once T is clamped to lo…hi + 1.
            let comparatorBits = ValueRange(lo, hi + 1).bits
            let lists: [[Int64]] = (0..<m).map { c in
                let list = t.thresholds[t.thresholds.count == 1 ? 0 : c]
                return list.map { min(max($0, lo), hi + 1) } + [Int64](repeating: hi + 1, count: levels - list.count)
            }
            let params = (0..<levels).map { i in
                ChannelParameter(name: "threshold\(i)", values: lists.map { $0[i] }, bits: comparatorBits, unsigned: false)
            }
            let gmin = Int64(out.grid.minInt), gmax = Int64(out.grid.maxInt)
            let outBias = min(max(t.outBias, gmin - Int64(levels) - 1), gmax + 1)  // same codes after the clamp
            requantization = .thresholds(levels: levels, thresholds: params, outBias: outBias, comparatorBits: comparatorBits)
        case .multiplyShift(let ms):
            guard ms.grid == out.grid else { throw HardwareError.gridMismatch(layer: layer.name, problem: "the multiplier produces \(ms.grid), the \(layer.lookup == nil ? "output" : "lookup table's input") grid is \(out.grid)") }
            let channels = max(ms.multipliers.count, ms.shifts.count, ms.offsets.count)
            guard channels == 1 || channels == m else {
                throw HardwareError.invalid("layer \(layer.name): \(channels) multiplier parameters for \(m) channels")
            }
            // A negative shift s (multiplier 1) is the multiplier 2^−s with shift 0.
            var mults: [Int64] = [], shifts: [Int64] = [], offsets: [Int64] = []
            for c in 0..<m {
                let mm = ms.multipliers[ms.multipliers.count == 1 ? 0 : c], s = ms.shifts[ms.shifts.count == 1 ? 0 : c]
                let z = ms.offsets[ms.offsets.count == 1 ? 0 : c]
                if s >= 0 { mults.append(Int64(mm)); shifts.append(Int64(s)) } else { mults.append(Int64(1) << Int64(-s)); shifts.append(0) }
                offsets.append(z)
            }
            var sumRange = valueRange
            var roundedBias: ChannelParameter?
            if let rb = layer.roundedBias, rb.contains(where: { $0 != 0 }) {
                guard rb.count == m || rb.count == 1 else { throw HardwareError.invalid("layer \(layer.name): \(rb.count) rounded biases for \(m) channels") }
                let v = (0..<m).map { rb[rb.count == 1 ? 0 : $0] }
                sumRange = ValueRange(lo + v.min()!, hi + v.max()!)
                let sumBits = sumRange.bits
                roundedBias = ChannelParameter(name: "rounded_bias", values: v.map { wrap($0, bits: sumBits) }, bits: sumBits, unsigned: false)
            }
            let multiplier = ChannelParameter(name: "multiplier", values: mults,
                                              bits: IntegerOps.signedBitsNeeded(min: mults.min()!, max: mults.max()!), unsigned: false)
            let shift = ChannelParameter(name: "shift", values: shifts, bits: unsignedBits(shifts.max()!), unsigned: true)
            let offset = ChannelParameter(name: "offset", values: offsets,
                                          bits: IntegerOps.signedBitsNeeded(min: offsets.min()!, max: offsets.max()!), unsigned: false)
            let lowest = max(Int64(ms.grid.minInt), ms.lowest ?? Int64.min)
            guard lowest <= Int64(ms.grid.maxInt) else {
                throw HardwareError.invalid("layer \(layer.name): multiply-shift lowest code \(lowest) is above the grid's highest \(ms.grid.maxInt)")
            }
            requantization = .multiplyShift(roundedBias: roundedBias, sumBits: sumRange.bits, multiplier: multiplier, shift: shift,
                                            offset: offset, rounding: out.grid.rounding, lowest: lowest)
        case .output:
            throw HardwareError.invalid("layer \(layer.name): only the last layer may emit raw accumulators")
        }
    }
}

/// v modulo 2^bits as a signed bits-wide value.
func wrap(_ v: Int64, bits: Int) -> Int64 {
    bits >= 64 ? v : (v << Int64(64 - bits)) >> Int64(64 - bits)
}
