import QForgeTensor
import Foundation

/// How a quantizer maps a real number to an integer code, with QONNX IntQuant semantics:
///
///     q = clamp(round(x / scale + zeroPoint), minInt, maxInt)      (the integer code)
///     y = (q − zeroPoint) · scale                                  (the dequantized value)
///
/// `scale` and `zeroPoint` hold one value for the whole tensor, or one per channel along
/// `axis` (a single zero point is shared by all channels). `kind` selects the code set:
/// `.int` is the usual two's-complement or unsigned range, `.bipolar` is {−1, +1} (QONNX
/// BipolarQuant, bit width 1), `.signMagnitude` is the symmetric range ±(2^(b−1) − 1).
/// `scaleIsPowerOfTwo` records that every scale is 2^k, which lets hardware shift instead
/// of multiply; `validate()` checks that it is true.
///
/// JSON: the field names below; omitted fields take the defaults of `init` (except
/// `bitWidth` and `scale`, which are required).
public struct QuantizerSpec: Codable, Equatable, Sendable {
    /// The set of integer codes.
    public enum Kind: String, Codable, CaseIterable, Sendable {
        case int
        case bipolar
        case signMagnitude

        public init(from decoder: Decoder) throws {
            let raw = try decoder.singleValueContainer().decode(String.self)
            guard let kind = Kind(rawValue: raw) else {
                throw GraphError(.unknownValue(what: "quantizer kind", path: GraphJSON.path(decoder.codingPath),
                                               value: raw, known: Kind.allCases.map(\.rawValue)))
            }
            self = kind
        }
    }

    public var kind: Kind
    /// Bits per code, 1…32 (weights up to 16, int32 activations up to 32).
    public var bitWidth: Int
    /// Whether codes are signed (ignored by `.bipolar`; `.signMagnitude` requires it).
    public var signed: Bool
    /// Narrow range: drops the most negative code when signed, the largest when unsigned (QONNX).
    public var narrow: Bool
    public var roundingMode: RoundingMode
    /// One scale for the tensor, or one per channel along `axis`. Finite and > 0.
    public var scale: [Float]
    /// One zero point for all, or one per scale.
    public var zeroPoint: [Float]
    /// Channel axis for per-channel quantization (PyTorch weights: 0, the output channel).
    public var axis: Int?
    /// Every scale is an exact power of two.
    public var scaleIsPowerOfTwo: Bool

    public init(bitWidth: Int, signed: Bool = true, narrow: Bool = false, roundingMode: RoundingMode = .round,
                scale: [Float], zeroPoint: [Float] = [0], axis: Int? = nil, kind: Kind = .int,
                scaleIsPowerOfTwo: Bool = false) {
        self.kind = kind
        self.bitWidth = bitWidth
        self.signed = signed
        self.narrow = narrow
        self.roundingMode = roundingMode
        self.scale = scale
        self.zeroPoint = zeroPoint
        self.axis = axis
        self.scaleIsPowerOfTwo = scaleIsPowerOfTwo
    }

    /// Smallest integer code. QONNX `min_int`: signed narrow −2^(b−1)+1, signed −2^(b−1),
    /// unsigned 0; bipolar −1; sign-magnitude −(2^(b−1)−1). Meaningful for a valid spec;
    /// never traps for an invalid bit width.
    public var minInt: Int {
        let b = Swift.min(Swift.max(bitWidth, 1), 62)
        switch kind {
        case .bipolar: return -1
        case .signMagnitude: return -((1 << (b - 1)) - 1)
        case .int:
            if !signed { return 0 }
            return narrow ? -(1 << (b - 1)) + 1 : -(1 << (b - 1))
        }
    }

    /// Largest integer code. QONNX `max_int`: signed 2^(b−1)−1, unsigned 2^b−1, unsigned
    /// narrow 2^b−2; bipolar +1; sign-magnitude 2^(b−1)−1.
    public var maxInt: Int {
        let b = Swift.min(Swift.max(bitWidth, 1), 62)
        switch kind {
        case .bipolar: return 1
        case .signMagnitude: return (1 << (b - 1)) - 1
        case .int:
            if signed { return (1 << (b - 1)) - 1 }
            return narrow ? (1 << b) - 2 : (1 << b) - 1
        }
    }

    /// True when `scale` has one value per channel rather than one for the tensor.
    public var isPerChannel: Bool { scale.count > 1 || axis != nil }

    /// Checks the spec is usable: bit width 1…32, scales finite and > 0, zero points finite
    /// and either one or one per scale, per-channel scales with a non-negative axis, a code
    /// range of at least two values, the kind's own constraints, and `scaleIsPowerOfTwo`.
    public func validate() throws {
        guard (1...32).contains(bitWidth) else { throw GraphError(.bitWidthOutOfRange(bitWidth)) }
        guard !scale.isEmpty else { throw GraphError(.invalidQuantizer(problem: "scale is empty")) }
        for (i, s) in scale.enumerated() where !(s.isFinite && s > 0) {
            throw GraphError(.invalidScale(index: i, value: s))
        }
        guard zeroPoint.count == scale.count || zeroPoint.count == 1 else {
            throw GraphError(.scaleZeroPointMismatch(scales: scale.count, zeroPoints: zeroPoint.count))
        }
        for (i, z) in zeroPoint.enumerated() where !z.isFinite {
            throw GraphError(.invalidQuantizer(problem: "zeroPoint[\(i)] = \(z) must be finite"))
        }
        if let axis, axis < 0 {
            throw GraphError(.invalidQuantizer(problem: "axis \(axis) must be non-negative"))
        }
        if scale.count > 1 && axis == nil {
            throw GraphError(.invalidQuantizer(problem: "\(scale.count) per-channel scales need an axis"))
        }
        switch kind {
        case .bipolar:
            guard bitWidth == 1 else {
                throw GraphError(.invalidQuantizer(problem: "a bipolar quantizer has bit width 1, not \(bitWidth)"))
            }
            guard zeroPoint.allSatisfy({ $0 == 0 }) else {
                throw GraphError(.invalidQuantizer(problem: "a bipolar quantizer has zero point 0"))
            }
        case .signMagnitude:
            guard signed else { throw GraphError(.invalidQuantizer(problem: "a sign-magnitude quantizer is signed")) }
            guard bitWidth >= 2 else {
                throw GraphError(.invalidQuantizer(problem: "a sign-magnitude quantizer needs at least 2 bits"))
            }
        case .int:
            guard maxInt > minInt else {
                throw GraphError(.invalidQuantizer(
                    problem: "\(bitWidth)-bit \(signed ? "signed" : "unsigned") narrow range holds only \(minInt)"))
            }
        }
        if scaleIsPowerOfTwo {
            for (i, s) in scale.enumerated() where s != Float(sign: .plus, exponent: s.exponent, significand: 1) {
                throw GraphError(.invalidQuantizer(problem: "scaleIsPowerOfTwo is set but scale[\(i)] = \(s) is not a power of two"))
            }
        }
    }

    private enum CodingKeys: String, CodingKey {
        case kind, bitWidth, signed, narrow, roundingMode, scale, zeroPoint, axis, scaleIsPowerOfTwo
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .int
        bitWidth = try c.decode(Int.self, forKey: .bitWidth)
        signed = try c.decodeIfPresent(Bool.self, forKey: .signed) ?? true
        narrow = try c.decodeIfPresent(Bool.self, forKey: .narrow) ?? false
        roundingMode = try c.decodeIfPresent(RoundingMode.self, forKey: .roundingMode) ?? .round
        scale = try c.decode([Float].self, forKey: .scale)
        zeroPoint = try c.decodeIfPresent([Float].self, forKey: .zeroPoint) ?? [0]
        axis = try c.decodeIfPresent(Int.self, forKey: .axis)
        scaleIsPowerOfTwo = try c.decodeIfPresent(Bool.self, forKey: .scaleIsPowerOfTwo) ?? false
    }
}

// RoundingMode is defined with the fake-quantize op in QForgeTensor; the graph stores it by its
// QONNX name.
extension RoundingMode: Codable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let raw = try c.decode(String.self)
        guard let mode = RoundingMode(qonnxName: raw) else {
            throw GraphError(.unknownValue(what: "rounding mode", path: GraphJSON.path(decoder.codingPath), value: raw,
                                           known: RoundingMode.allCases.map(\.rawValue)))
        }
        self = mode
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}
