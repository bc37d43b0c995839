import Foundation

/// How a quantizer rounds x/scale + zero point to an integer. The names are QONNX's
/// `rounding_mode` values, and each mode rounds as QONNX's reference executor does.
///
/// | x | ROUND | HALF_UP | HALF_DOWN | FLOOR | CEIL | DOWN | UP |
/// |---|-------|---------|-----------|-------|------|------|----|
/// | 2.5 | 2 | 3 | 2 | 2 | 3 | 2 | 3 |
/// | −2.5 | −2 | −3 | −2 | −3 | −2 | −2 | −3 |
/// | 1.6 | 2 | 2 | 2 | 1 | 2 | 1 | 2 |
/// | −1.4 | −1 | −1 | −1 | −2 | −1 | −1 | −2 |
public enum RoundingMode: String, CaseIterable, Sendable {
    /// Nearest, ties to even (numpy `round`; QONNX also calls it HALF_EVEN).
    case round = "ROUND"
    /// Nearest, ties away from zero.
    case halfUp = "HALF_UP"
    /// Nearest, ties toward zero.
    case halfDown = "HALF_DOWN"
    /// Toward −∞.
    case floor = "FLOOR"
    /// Toward +∞.
    case ceil = "CEIL"
    /// Toward zero (truncation).
    case down = "DOWN"
    /// Away from zero.
    case up = "UP"

    /// Parses a QONNX `rounding_mode`: case-insensitive, with HALF_EVEN as ROUND.
    public init?(qonnxName: String) {
        let upper = qonnxName.uppercased()
        if upper == "HALF_EVEN" { self = .round; return }
        self.init(rawValue: upper)
    }

    /// Rounds `x` to an integral value in this mode (NaN and ±∞ pass through).
    @inline(__always)
    public func apply(_ x: Float) -> Float {
        switch self {
        case .round: return x.rounded(.toNearestOrEven)
        case .halfUp: return x.rounded(.toNearestOrAwayFromZero)
        case .halfDown:
            let truncated = x.rounded(.towardZero)
            // x − trunc(x) is exact, so the tie test is exact for every Float.
            return abs(x - truncated) == 0.5 ? truncated : x.rounded(.toNearestOrEven)
        case .floor: return x.rounded(.down)
        case .ceil: return x.rounded(.up)
        case .down: return x.rounded(.towardZero)
        case .up: return x.rounded(.awayFromZero)
        }
    }
}

/// The integer grid of a QONNX `IntQuant` (`Quant`) node: bit width, signedness, narrow range
/// and rounding. Scale and zero point are tensors, given to the op.
public struct IntQuantGrid: Equatable, Sendable {
    public let bitWidth: Int
    public let signed: Bool
    public let narrow: Bool
    public let rounding: RoundingMode

    public init(bitWidth: Int, signed: Bool, narrow: Bool = false, rounding: RoundingMode = .round) {
        precondition((1...16).contains(bitWidth), "IntQuantGrid: bit width \(bitWidth) outside 1...16")
        self.bitWidth = bitWidth
        self.signed = signed
        self.narrow = narrow
        self.rounding = rounding
    }

    /// Smallest integer: signed −2^(b−1) (narrow: −2^(b−1)+1), unsigned 0.
    public var minInt: Int { signed ? -(1 << (bitWidth - 1)) + (narrow ? 1 : 0) : 0 }
    /// Largest integer: signed 2^(b−1)−1, unsigned 2^b−1 (narrow: 2^b−2), as QONNX's `max_int`.
    public var maxInt: Int { signed ? (1 << (bitWidth - 1)) - 1 : (1 << bitWidth) - 1 - (narrow ? 1 : 0) }
}

extension Tensor {
    /// QONNX `IntQuant` in float (“fake quantization”):
    ///
    ///     q = clamp(round(x / scale + zeroPoint), minInt, maxInt)
    ///     y = (q − zeroPoint) · scale
    ///
    /// `scale` and `zeroPoint` broadcast against x (one value per tensor, or per channel with
    /// shape [C, 1, …]). The division is done as QONNX does it (x / scale in Float32), so the
    /// integers match its reference executor.
    ///
    /// Gradients, as autograd gives them with a straight-through round (Brevitas's QAT):
    /// - x: g where minInt ≤ round(x/scale + zp) ≤ maxInt, else 0;
    /// - scale: g·(q − zp − x/scale) inside the range, g·(q − zp) where clamped (the LSQ
    ///   gradient without LSQ's extra scaling, which belongs to the training policy);
    /// - zero point: 0 inside the range, −g·scale where clamped.
    public func fakeQuantized(scale: Tensor, zeroPoint: Tensor, grid: IntQuantGrid) -> Tensor {
        guard let outShape = broadcastShape(shape, scale.shape), outShape == shape,
              broadcastShape(shape, zeroPoint.shape) == shape else {
            preconditionFailure("fakeQuantized: scale \(scale.shape) / zero point \(zeroPoint.shape) do not broadcast to \(shape)")
        }
        let lo = Float(grid.minInt), hi = Float(grid.maxInt), mode = grid.rounding
        let ss = broadcastStrides(scale.shape, to: shape), zs = broadcastStrides(zeroPoint.shape, to: shape)
        let xd = detached, sd = scale.detached, zd = zeroPoint.detached
        let y = Tensor(shape: shape) { out in
            let px = xd.storage.pointer, ps = sd.storage.pointer, pz = zd.storage.pointer, po = out.baseAddress!
            broadcastLoop(shape, ss, zs) { o, si, zi, n, ds, dz in
                for j in 0..<n {
                    let s = ps[si + j * ds], z = pz[zi + j * dz]
                    let q = Swift.min(Swift.max(mode.apply(px[o + j] / s + z), lo), hi)
                    po[o + j] = (q - z) * s
                }
            }
        }
        let needS = scale.requiresGradient, needZ = zeroPoint.requiresGradient
        let inShape = shape
        return Tensor.record(y, [self, scale, zeroPoint]) { g in
            let pg = g.storage.pointer, px = xd.storage.pointer, ps = sd.storage.pointer, pz = zd.storage.pointer
            let gx = TensorStorage(count: g.count)
            let gs = TensorStorage(count: needS ? g.count : 0), gz = TensorStorage(count: needZ ? g.count : 0)
            broadcastLoop(inShape, ss, zs) { o, si, zi, n, ds, dz in
                for j in 0..<n {
                    let i = o + j, s = ps[si + j * ds], z = pz[zi + j * dz]
                    let v = px[i] / s, r = mode.apply(v + z)
                    let inside = r >= lo && r <= hi
                    gx.pointer[i] = inside ? pg[i] : 0
                    if needS { gs.pointer[i] = pg[i] * (inside ? r - z - v : Swift.min(Swift.max(r, lo), hi) - z) }
                    if needZ { gz.pointer[i] = inside ? 0 : -pg[i] * s }
                }
            }
            return [Tensor(shape: inShape, storage: gx),
                    needS ? Tensor(shape: inShape, storage: gs).sumToShape(sd.shape) : nil,
                    needZ ? Tensor(shape: inShape, storage: gz).sumToShape(zd.shape) : nil]
        }
    }

    /// The integers q = clamp(round(x / scale + zeroPoint), minInt, maxInt) of `fakeQuantized`
    /// (the values an integer model stores), with the same broadcasting.
    public func quantizedIntegers(scale: Tensor, zeroPoint: Tensor, grid: IntQuantGrid) -> [Int] {
        precondition(broadcastShape(shape, scale.shape) == shape && broadcastShape(shape, zeroPoint.shape) == shape,
                     "quantizedIntegers: scale \(scale.shape) / zero point \(zeroPoint.shape) do not broadcast to \(shape)")
        let lo = Float(grid.minInt), hi = Float(grid.maxInt), mode = grid.rounding
        let ss = broadcastStrides(scale.shape, to: shape), zs = broadcastStrides(zeroPoint.shape, to: shape)
        var result = [Int](repeating: 0, count: count)
        let px = storage.pointer, ps = scale.storage.pointer, pz = zeroPoint.storage.pointer
        broadcastLoop(shape, ss, zs) { o, si, zi, n, ds, dz in
            for j in 0..<n {
                result[o + j] = Int(Swift.min(Swift.max(mode.apply(px[o + j] / ps[si + j * ds] + pz[zi + j * dz]), lo), hi))
            }
        }
        return result
    }
}
