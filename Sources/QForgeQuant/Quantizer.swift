import Foundation
import QForgeNN
import QForgeTensor

/// Errors in quantization settings and policies: one line each, naming what and where.
public enum QuantError: Error, CustomStringConvertible, Equatable {
    case badBitWidth(Int, context: String, allowed: ClosedRange<Int>)
    case badScale(Float, context: String)
    case unknownLayer(path: String, known: [String])
    case badNestedWindow(outerBits: Int, innerBits: Int, shift: Int)
    case unsupported(String)

    public var description: String {
        switch self {
        case let .badBitWidth(b, context, allowed):
            return "\(context): bit width \(b) is outside \(allowed)"
        case let .badScale(s, context):
            return "\(context): scale \(s) must be a positive finite number"
        case let .unknownLayer(path, known):
            return "policy names layer '\(path)', which the model does not have (layers: \(known.joined(separator: ", ")))"
        case let .badNestedWindow(o, i, k):
            return "a nested \(i)-bit window at magnitude bits \(k)…\(k + i - 2) lies outside the \(o - 1) magnitude bits (0…\(o - 2)) of a \(o)-bit sign-magnitude weight; the shift must be 0…\(o - i)"
        case let .unsupported(s):
            return s
        }
    }
}

/// How a tensor is quantized: the IntQuant grid plus where its scale comes from.
public struct QuantizerSettings: Codable, Equatable, Sendable {
    /// Where the scale comes from.
    public enum ScaleSource: String, Codable, Sendable {
        /// max|x| / maxInt, recomputed from the tensor on every call (weights; Brevitas's default).
        case maxAbs
        /// mean|x| / maxInt (Brevitas's `StatsOp.AVE`): a smaller scale that keeps 2-bit weights
        /// from rounding to zero.
        case meanAbs
        /// A trained parameter, initialised from a high percentile of the first batches (activations).
        case learned
        /// A constant set by post-training calibration (weights with MSE-optimal scales), one
        /// per tensor or per output channel.
        case fixed
    }

    public var bitWidth: Int
    public var signed: Bool
    public var narrow: Bool
    public var rounding: RoundingMode
    /// One scale per output channel (axis 0) instead of one per tensor.
    public var perChannel: Bool
    /// Scales restricted to powers of two (requantization becomes a shift).
    public var powerOfTwo: Bool
    public var source: ScaleSource
    /// Nested weights: this (sign-magnitude, `bitWidth`-bit) code also holds an `innerBits`-bit
    /// weight in a window of its magnitude bits (`NestedWindow`); nil for plain quantizers.
    public var nested: Nested?
    /// Bipolar (QONNX BipolarQuant): codes −1 and +1, y = ±scale; 1 bit, signed, weights only.
    public var bipolar: Bool
    /// Zero point: fixed at 0 (symmetric), or learned (asymmetric; activations with a learned
    /// scale): calibrated from the 0.001st and 99.999th percentiles of the first batches, then
    /// trained with a straight-through rounding so it stays an integer.
    public var zeroPoint: ZeroPointMode

    public enum ZeroPointMode: String, Codable, Sendable { case zero, learned }

    /// The inner width of nested weights and the window's lowest magnitude bit (nil: chosen per
    /// layer as the window with the least squared error to the weights, during training).
    public struct Nested: Codable, Equatable, Sendable {
        public var innerBits: Int
        public var shift: Int?
        /// Round at the window's lowest bit (true) or truncate to the selected bits (nil, false).
        public var rounds: Bool?
        public init(innerBits: Int, shift: Int? = nil, rounds: Bool = false) {
            self.innerBits = innerBits; self.shift = shift; self.rounds = rounds
        }
    }

    public init(bitWidth: Int, signed: Bool, narrow: Bool = false, rounding: RoundingMode = .round,
                perChannel: Bool = false, powerOfTwo: Bool = false, source: ScaleSource, nested: Nested? = nil, bipolar: Bool = false,
                zeroPoint: ZeroPointMode = .zero) {
        self.bitWidth = bitWidth; self.signed = signed; self.narrow = narrow; self.rounding = rounding
        self.perChannel = perChannel; self.powerOfTwo = powerOfTwo; self.source = source; self.nested = nested
        self.bipolar = bipolar; self.zeroPoint = zeroPoint
    }

    /// Bipolar weights with one scale (mean|w|, as XNOR-Net) per tensor or per output channel.
    public static func bipolarWeights(perChannel: Bool = false, powerOfTwo: Bool = false) -> QuantizerSettings {
        QuantizerSettings(bitWidth: 1, signed: true, perChannel: perChannel, powerOfTwo: powerOfTwo, source: .meanAbs, bipolar: true)
    }

    private enum CodingKeys: String, CodingKey {
        case bitWidth, signed, narrow, rounding, perChannel, powerOfTwo, source, nested, bipolar, zeroPoint
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(bitWidth: try c.decode(Int.self, forKey: .bitWidth), signed: try c.decode(Bool.self, forKey: .signed),
                  narrow: try c.decode(Bool.self, forKey: .narrow), rounding: try c.decode(RoundingMode.self, forKey: .rounding),
                  perChannel: try c.decode(Bool.self, forKey: .perChannel), powerOfTwo: try c.decode(Bool.self, forKey: .powerOfTwo),
                  source: try c.decode(ScaleSource.self, forKey: .source), nested: try c.decodeIfPresent(Nested.self, forKey: .nested),
                  bipolar: try c.decodeIfPresent(Bool.self, forKey: .bipolar) ?? false,
                  zeroPoint: try c.decodeIfPresent(ZeroPointMode.self, forKey: .zeroPoint) ?? .zero)
    }

    /// Signed, narrow range, scale from max|w|: Brevitas's `Int8WeightPerTensorFloat` at any width.
    public static func weights(bits: Int, perChannel: Bool = false, powerOfTwo: Bool = false) -> QuantizerSettings {
        QuantizerSettings(bitWidth: bits, signed: true, narrow: true, perChannel: perChannel, powerOfTwo: powerOfTwo, source: .maxAbs)
    }

    /// Unsigned with a learned scale: Brevitas's `Uint8ActPerTensorFloat` at any width.
    public static func activations(bits: Int, powerOfTwo: Bool = false) -> QuantizerSettings {
        QuantizerSettings(bitWidth: bits, signed: false, powerOfTwo: powerOfTwo, source: .learned)
    }

    public var grid: IntQuantGrid { IntQuantGrid(bitWidth: bitWidth, signed: signed, narrow: narrow, rounding: rounding) }

    /// Checks the settings; `context` names the quantizer in the error. Weights take 1…16
    /// bits, activations (`activation`) up to 32 (int32 fixed point, seed 000).
    public func validate(_ context: String, activation: Bool = false) throws {
        let allowed = activation ? 1...32 : 1...16
        guard allowed.contains(bitWidth) else { throw QuantError.badBitWidth(bitWidth, context: context, allowed: allowed) }
        // Codes are int32: an unsigned grid tops out at 31 bits (32-bit activations are signed).
        if !signed && bitWidth > 31 {
            throw QuantError.unsupported("\(context): an unsigned \(bitWidth)-bit grid does not fit int32 codes; use a signed 32-bit grid (as `quantize` makes 32-bit activations) or 31 bits")
        }
        if zeroPoint == .learned && (source != .learned || perChannel) {
            throw QuantError.unsupported("\(context): a learned zero point needs a learned per-tensor scale (activation quantizers)")
        }
        if bipolar {
            guard bitWidth == 1, signed, source != .learned, nested == nil else {
                throw QuantError.unsupported("\(context): bipolar quantizers are 1-bit signed weight quantizers with a max|w| or mean|w| scale")
            }
            return
        }
        let g = IntQuantGrid(bitWidth: bitWidth, signed: signed, narrow: narrow)
        guard g.maxInt > 0 else {
            throw QuantError.unsupported("\(context): a \(bitWidth)-bit \(signed ? "signed" : "unsigned")\(narrow ? " narrow" : "") grid has no positive level; use 2 bits or more")
        }
        if let n = nested {
            guard signed, narrow, source != .learned else {
                throw QuantError.unsupported("\(context): nested weights need a signed narrow-range (sign-magnitude) weight quantizer")
            }
            guard (2..<bitWidth).contains(n.innerBits) else {
                throw QuantError.unsupported("\(context): a nested inner width of \(n.innerBits) bits must be 2…\(bitWidth - 1) for \(bitWidth)-bit weights")
            }
            if let k = n.shift, !(0...(bitWidth - n.innerBits)).contains(k) {
                throw QuantError.badNestedWindow(outerBits: bitWidth, innerBits: n.innerBits, shift: k)
            }
        }
    }
}

/// A fake quantizer in a network: QONNX IntQuant with a scale from statistics or learned.
///
/// Learned scales start from data: over the first `calibrationBatches` training batches (300,
/// as Brevitas) the scale follows the 99.999th percentile of |x| / maxInt (averaged), then it
/// is trained with the LSQ gradient of `Tensor.fakeQuantized`. Power-of-two learned scales train log2(scale)
/// and round it with a straight-through estimator.
public final class Quantizer {
    public let settings: QuantizerSettings
    /// The learned scale (linear, or log2 when `powerOfTwo`); nil for statistics-based scales.
    public let parameter: Parameter?
    /// The learned zero point (a float, rounded with a straight-through estimator); nil when 0.
    public let zeroPointParameter: Parameter?
    public let calibrationBatches: Int
    public private(set) var batchesSeen = 0
    /// The scale of a `.fixed` quantizer, shaped to broadcast against its input ([1] or [C, 1, …]).
    public private(set) var fixedScale: Tensor?
    /// While set, the quantizer passes its input through unquantized and shows it to the
    /// observer (post-training calibration collects statistics this way).
    public var observer: ((Tensor) -> Void)?
    /// Nested weights: the window in use (fixed by the settings, or the last automatic choice).
    public private(set) var nestedShift: Int?

    public init(_ settings: QuantizerSettings, calibrationBatches: Int = 300) {
        self.settings = settings
        self.calibrationBatches = calibrationBatches
        nestedShift = settings.nested?.shift
        parameter = settings.source == .learned ? Parameter(Tensor(shape: [1], scalars: [settings.powerOfTwo ? 0 : 1])) : nil
        zeroPointParameter = settings.zeroPoint == .learned ? Parameter(Tensor(shape: [1], scalars: [0])) : nil
    }

    /// A learned quantizer with a known scale (loading a saved model).
    public init(_ settings: QuantizerSettings, scale: Float, zeroPoint: Float = 0) {
        self.settings = settings
        calibrationBatches = 0
        parameter = Parameter(Tensor(shape: [1], scalars: [settings.powerOfTwo ? log2f(scale) : scale]))
        zeroPointParameter = settings.zeroPoint == .learned ? Parameter(Tensor(shape: [1], scalars: [zeroPoint])) : nil
        batchesSeen = Int.max / 2
    }

    /// A `.fixed` quantizer with the given scale(s), shaped to broadcast against its input.
    public init(_ settings: QuantizerSettings, fixedScale: Tensor) {
        self.settings = settings
        calibrationBatches = 0
        parameter = nil
        zeroPointParameter = nil
        self.fixedScale = fixedScale
    }

    /// Sets a learned scale (and zero point) from calibration; they are then trained, never
    /// recalibrated.
    public func setLearnedScale(_ scale: Float, zeroPoint: Float = 0) throws {
        guard let parameter else { throw QuantError.unsupported("setLearnedScale: the quantizer's scale is not learned") }
        guard scale > 0, scale.isFinite else { throw QuantError.badScale(scale, context: "calibrated scale") }
        parameter.assign(Tensor(shape: [1], scalars: [settings.powerOfTwo ? log2f(scale) : scale]))
        zeroPointParameter?.assign(Tensor(shape: [1], scalars: [zeroPoint]))
        batchesSeen = Int.max / 2
    }

    /// The zero point in use: 0, or the learned one rounded to an integer (straight through).
    public var zeroPoint: Tensor {
        zeroPointParameter.map { $0.value.roundedSTE() } ?? Tensor(shape: [1], scalars: [0])
    }

    /// The largest code (1 for bipolar quantizers).
    var maxInt: Float { settings.bipolar ? 1 : Float(settings.grid.maxInt) }

    /// The scale for `x` as a tensor broadcastable to it (shape [C, 1, …] per channel).
    public func scale(for x: Tensor) -> Tensor {
        switch settings.source {
        case .learned:
            let p = parameter!.value
            return settings.powerOfTwo ? p.roundedSTE().exp2() : p
        case .fixed:
            return fixedScale!
        case .maxAbs, .meanAbs:
            let stat = settings.source == .maxAbs ? absMax(x) : absMean(x)
            var s = stat.map { Swift.max($0, 1e-8) / maxInt }
            if settings.powerOfTwo { s = s.map { exp2f(log2f($0).rounded()) } }
            var shape = [Int](repeating: 1, count: x.rank)
            if settings.perChannel && x.rank > 0 { shape[0] = x.shape[0] } else { shape = [1] }
            return Tensor(shape: shape, scalars: s)
        }
    }

    /// The current scale value(s), for reports and export.
    public func scaleValues(for x: Tensor) -> [Float] { withoutGradients { scale(for: x).scalars } }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let observer {
            observer(x)
            return x
        }
        if let nested = settings.nested, LayerContext.nestedView {
            let s = withoutGradients { scale(for: x) }
            let shift = nested.shift ?? (LayerContext.phase == .training || nestedShift == nil ? bestNestedShift(x, scale: s) : nestedShift!)
            nestedShift = shift
            return x.nestedFakeQuantized(scale: s, window: window(shift), rounding: settings.rounding)
        }
        if settings.bipolar { return x.bipolarQuantized(scale: withoutGradients { scale(for: x) }) }
        if settings.source == .learned, LayerContext.phase == .training, batchesSeen < calibrationBatches {
            calibrate(x)
        }
        return x.fakeQuantized(scale: scale(for: x), zeroPoint: zeroPoint, grid: settings.grid)
    }

    func window(_ shift: Int) -> NestedWindow {
        NestedWindow(outerBits: settings.bitWidth, innerBits: settings.nested!.innerBits, shift: shift, rounds: settings.nested!.rounds ?? false)
    }

    /// The window with the least squared error between inner weights and `x`.
    func bestNestedShift(_ x: Tensor, scale: Tensor) -> Int {
        let errors = NestedWindow.squaredErrors(x.detached, scale: scale, outerBits: settings.bitWidth,
                                                innerBits: settings.nested!.innerBits, rounding: settings.rounding,
                                                rounds: settings.nested!.rounds ?? false)
        return errors.indices.min { errors[$0] < errors[$1] }!
    }

    /// The settings as they apply to weights `w`: a nested quantizer's automatic window is
    /// resolved (the file records the window the hardware will use).
    public func resolvedSettings(for w: Tensor) -> QuantizerSettings {
        var s = settings
        if s.nested != nil && s.nested!.shift == nil {
            s.nested!.shift = nestedShift ?? bestNestedShift(w, scale: withoutGradients { scale(for: w) })
        }
        return s
    }

    /// Moves the learned scale towards the 99.999th percentile of |x| / maxInt (running mean
    /// over the calibration batches).
    ///
    /// Grids wider than 24 bits (32-bit fixed-point activations, seed 000) calibrate to twice
    /// the largest |x| seen instead (running max): Float32 cannot hold their top codes
    /// (2^31 − 1 rounds to 2^31), so the float model must never reach them, and at such widths
    /// a percentile gains no precision worth clipping for.
    func calibrate(_ x: Tensor) {
        let range: (scale: Float, zeroPoint: Float)
        let wide = settings.bitWidth > 24
        if wide && settings.zeroPoint != .learned {
            range = (2 * absMax(x)[0] / maxInt, 0)
        } else if settings.zeroPoint == .learned {
            // Asymmetric: the grid spans the 0.001st…99.999th percentiles of x (and 0).
            let lo = Swift.min(percentile(x, 0.00001), 0), hi = Swift.max(percentile(x, 0.99999), 0)
            let s = (hi - lo) / Float(settings.grid.maxInt - settings.grid.minInt)
            range = (s, Float(settings.grid.minInt) - lo / s)
        } else {
            range = (percentileAbs(x, 0.99999) / maxInt, 0)
        }
        guard range.scale > 0, range.scale.isFinite, range.zeroPoint.isFinite else { return }
        batchesSeen += 1
        let current = settings.powerOfTwo ? exp2f(parameter!.value.item) : parameter!.value.item
        let next = batchesSeen == 1 ? range.scale
            : wide ? Swift.max(current, range.scale) : current + (range.scale - current) / Float(batchesSeen)
        parameter!.assign(Tensor(shape: [1], scalars: [settings.powerOfTwo ? log2f(next) : next]))
        if let z = zeroPointParameter {
            let zNext = batchesSeen == 1 ? range.zeroPoint : z.value.item + (range.zeroPoint - z.value.item) / Float(batchesSeen)
            z.assign(Tensor(shape: [1], scalars: [zNext]))
        }
    }

    func absMax(_ x: Tensor) -> [Float] {
        perChannelValues(x) { p, n in
            // |x| as bits: for non-NaN floats the order of (bits & 0x7fffffff) is the order of |x|,
            // and an integer max-reduction vectorises where a Float one (NaN rules) does not.
            var m: UInt32 = 0
            p.withMemoryRebound(to: UInt32.self, capacity: n) { bits in
                for i in 0..<n { let a = bits[i] & 0x7FFF_FFFF; m = a > m ? a : m }
            }
            return Float(bitPattern: m)
        }
    }

    func absMean(_ x: Tensor) -> [Float] {
        perChannelValues(x) { p, n in var s: Double = 0; for i in 0..<n { s += Double(abs(p[i])) }; return Float(s / Double(Swift.max(n, 1))) }
    }

    func perChannelValues(_ x: Tensor, _ f: (UnsafePointer<Float>, Int) -> Float) -> [Float] {
        if settings.perChannel && x.rank > 0 {
            let c = x.shape[0], per = x.count / Swift.max(c, 1)
            return (0..<c).map { f(x.storage.pointer + $0 * per, per) }
        }
        return [f(x.storage.pointer, x.count)]
    }
}

/// The q-quantile of |x| (0 ≤ q ≤ 1), from at most 65,536 evenly strided samples, found by
/// selection (linear time; QAT calls this on every batch while scales calibrate).
func percentileAbs(_ x: Tensor, _ q: Double) -> Float { percentile(x, q, magnitude: true) }

/// The q-quantile of x (or of |x|), from at most 65,536 evenly strided samples.
func percentile(_ x: Tensor, _ q: Double, magnitude: Bool = false) -> Float {
    let n = x.count
    guard n > 0 else { return 0 }
    let stride = Swift.max(1, n / 65_536)
    var values = [Float]()
    values.reserveCapacity(n / stride + 1)
    var i = 0
    while i < n { let v = x.storage.pointer[i]; values.append(magnitude ? abs(v) : v); i += stride }
    let k = Swift.min(values.count - 1, Int((q * Double(values.count - 1)).rounded()))
    return select(&values, k)
}

/// The k-th smallest element (0-based) of `v`, reordering it (Hoare's quickselect with a
/// median-of-three pivot).
func select(_ v: inout [Float], _ k: Int) -> Float {
    var lo = 0, hi = v.count - 1
    while lo < hi {
        let mid = lo + (hi - lo) / 2
        let pivot = Swift.max(Swift.min(v[lo], v[mid]), Swift.min(Swift.max(v[lo], v[mid]), v[hi]))
        var i = lo, j = hi
        while i <= j {
            while v[i] < pivot { i += 1 }
            while v[j] > pivot { j -= 1 }
            if i <= j { v.swapAt(i, j); i += 1; j -= 1 }
        }
        if k <= j { hi = j } else if k >= i { lo = i } else { return v[k] }
    }
    return v[k]
}
