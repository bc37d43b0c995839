import Foundation
import QForgeNN
import QForgeTensor

/// Errors in quantization settings and policies: one line each, naming what and where.
public enum QuantError: Error, CustomStringConvertible, Equatable {
    case badBitWidth(Int, context: String)
    case badScale(Float, context: String)
    case unknownLayer(path: String, known: [String])
    case unsupported(String)

    public var description: String {
        switch self {
        case let .badBitWidth(b, context):
            return "\(context): bit width \(b) is outside 1...16"
        case let .badScale(s, context):
            return "\(context): scale \(s) must be a positive finite number"
        case let .unknownLayer(path, known):
            return "policy names layer '\(path)', which the model does not have (layers: \(known.joined(separator: ", ")))"
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

    public init(bitWidth: Int, signed: Bool, narrow: Bool = false, rounding: RoundingMode = .round,
                perChannel: Bool = false, powerOfTwo: Bool = false, source: ScaleSource) {
        self.bitWidth = bitWidth; self.signed = signed; self.narrow = narrow; self.rounding = rounding
        self.perChannel = perChannel; self.powerOfTwo = powerOfTwo; self.source = source
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

    /// Checks the settings; `context` names the quantizer in the error.
    public func validate(_ context: String) throws {
        guard (1...16).contains(bitWidth) else { throw QuantError.badBitWidth(bitWidth, context: context) }
        let g = IntQuantGrid(bitWidth: bitWidth, signed: signed, narrow: narrow)
        guard g.maxInt > 0 else {
            throw QuantError.unsupported("\(context): a \(bitWidth)-bit \(signed ? "signed" : "unsigned")\(narrow ? " narrow" : "") grid has no positive level; use 2 bits or more")
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
    public let calibrationBatches: Int
    public private(set) var batchesSeen = 0
    /// The scale of a `.fixed` quantizer, shaped to broadcast against its input ([1] or [C, 1, …]).
    public private(set) var fixedScale: Tensor?
    /// While set, the quantizer passes its input through unquantized and shows it to the
    /// observer (post-training calibration collects statistics this way).
    public var observer: ((Tensor) -> Void)?

    public init(_ settings: QuantizerSettings, calibrationBatches: Int = 300) {
        self.settings = settings
        self.calibrationBatches = calibrationBatches
        parameter = settings.source == .learned ? Parameter(Tensor(shape: [1], scalars: [settings.powerOfTwo ? 0 : 1])) : nil
    }

    /// A learned quantizer with a known scale (loading a saved model).
    public init(_ settings: QuantizerSettings, scale: Float) {
        self.settings = settings
        calibrationBatches = 0
        parameter = Parameter(Tensor(shape: [1], scalars: [settings.powerOfTwo ? log2f(scale) : scale]))
        batchesSeen = Int.max / 2
    }

    /// A `.fixed` quantizer with the given scale(s), shaped to broadcast against its input.
    public init(_ settings: QuantizerSettings, fixedScale: Tensor) {
        self.settings = settings
        calibrationBatches = 0
        parameter = nil
        self.fixedScale = fixedScale
    }

    /// Sets a learned scale (calibration); it is then trained, never recalibrated.
    public func setLearnedScale(_ scale: Float) throws {
        guard let parameter else { throw QuantError.unsupported("setLearnedScale: the quantizer's scale is not learned") }
        guard scale > 0, scale.isFinite else { throw QuantError.badScale(scale, context: "calibrated scale") }
        parameter.assign(Tensor(shape: [1], scalars: [settings.powerOfTwo ? log2f(scale) : scale]))
        batchesSeen = Int.max / 2
    }

    var maxInt: Float { Float(settings.grid.maxInt) }

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
        if settings.source == .learned, LayerContext.phase == .training, batchesSeen < calibrationBatches {
            calibrate(x)
        }
        return x.fakeQuantized(scale: scale(for: x), zeroPoint: Tensor(shape: [1], scalars: [0]), grid: settings.grid)
    }

    /// Moves the learned scale towards the 99.999th percentile of |x| / maxInt (running mean
    /// over the calibration batches).
    func calibrate(_ x: Tensor) {
        let p = percentileAbs(x, 0.99999) / maxInt
        guard p > 0, p.isFinite else { return }
        batchesSeen += 1
        let current = settings.powerOfTwo ? exp2f(parameter!.value.item) : parameter!.value.item
        let next = batchesSeen == 1 ? p : current + (p - current) / Float(batchesSeen)
        parameter!.assign(Tensor(shape: [1], scalars: [settings.powerOfTwo ? log2f(next) : next]))
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

/// The q-quantile of |x| (0 ≤ q ≤ 1), from at most 65,536 evenly strided samples.
func percentileAbs(_ x: Tensor, _ q: Double) -> Float {
    let n = x.count
    guard n > 0 else { return 0 }
    let stride = Swift.max(1, n / 65_536)
    var values = [Float]()
    values.reserveCapacity(n / stride + 1)
    var i = 0
    while i < n { values.append(abs(x.storage.pointer[i])); i += stride }
    values.sort()
    return values[Swift.min(values.count - 1, Int((q * Double(values.count - 1)).rounded()))]
}
