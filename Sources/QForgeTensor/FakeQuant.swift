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

    /// Rounds `x` to an integral value in this mode (NaN and ±∞ pass through); Float for the
    /// fake-quantized model, Double for the integer model's reference.
    @inlinable @inline(__always)
    public func apply<F: FloatingPoint>(_ x: F) -> F {
        switch self {
        case .round: return x.rounded(.toNearestOrEven)
        case .halfUp: return x.rounded(.toNearestOrAwayFromZero)
        case .halfDown:
            let truncated = x.rounded(.towardZero)
            // x − trunc(x) is exact, so the tie test is exact for every Float.
            return abs(x - truncated) == F(1) / F(2) ? truncated : x.rounded(.toNearestOrEven)
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
        // QONNX allows any width; quantizers of weights and activations use 1…16, biases up to 32.
        precondition((1...32).contains(bitWidth), "IntQuantGrid: bit width \(bitWidth) outside 1...32")
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
        if let blocks = quantBlocks(scale: scale, zeroPoint: zeroPoint) {
            return fakeQuantizedBlocks(scale: scale, zeroPoint: zeroPoint, grid: grid, blocks: blocks)
        }
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

    /// When scale and zero point are each one value, or one per index of axis 0 (per output
    /// channel), the tensor splits into that many contiguous blocks with constant parameters.
    func quantBlocks(scale: Tensor, zeroPoint: Tensor) -> Int? {
        let c = Swift.max(scale.count, zeroPoint.count)
        func fits(_ t: Tensor) -> Bool {
            t.count == 1 || (rank > 0 && t.count == shape[0] && t.shape.first == shape[0] && t.shape.dropFirst().allSatisfy { $0 == 1 }
                             && t.rank <= rank)
        }
        guard count > 0, fits(scale), fits(zeroPoint), c == 1 || (rank > 0 && c == shape[0]) else { return nil }
        return c
    }

    /// `fakeQuantized` over constant-parameter blocks, 16 lanes at a time: the path QAT takes
    /// for per-tensor and per-channel quantizers. Same values and gradients as the general path.
    func fakeQuantizedBlocks(scale: Tensor, zeroPoint: Tensor, grid: IntQuantGrid, blocks: Int) -> Tensor {
        let lo = Float(grid.minInt), hi = Float(grid.maxInt), mode = grid.rounding
        let per = count / blocks
        let xd = detached, sd = scale.detached, zd = zeroPoint.detached
        @inline(__always) func params(_ b: Int) -> (Float, Float) {
            (sd.storage.pointer[sd.count == 1 ? 0 : b], zd.storage.pointer[zd.count == 1 ? 0 : b])
        }
        let y = Tensor(shape: shape) { out in
            let px = xd.storage.pointer, po = out.baseAddress!
            Parallel.forRange(count) { r in
                var i = r.lowerBound
                while i < r.upperBound {
                    let b = i / per, end = Swift.min(r.upperBound, (b + 1) * per)
                    let (sc, z) = params(b)
                    QuantKernel.forward(px + i, po + i, end - i, scale: sc, zero: z, lo: lo, hi: hi, mode: mode)
                    i = end
                }
            }
        }
        let needS = scale.requiresGradient, needZ = zeroPoint.requiresGradient
        return Tensor.record(y, [self, scale, zeroPoint]) { g in
            let pg = g.storage.pointer, px = xd.storage.pointer
            let gx = TensorStorage(count: g.count)
            // Per-block sums of the scale and zero-point gradients, per worker range.
            var gs = [Double](repeating: 0, count: blocks), gz = [Double](repeating: 0, count: blocks)
            let lock = NSLock()
            Parallel.forRange(count) { r in
                var localS = [Int: Double](), localZ = [Int: Double]()
                var i = r.lowerBound
                while i < r.upperBound {
                    let b = i / per, end = Swift.min(r.upperBound, (b + 1) * per)
                    let (sc, z) = params(b)
                    let (ds, dz) = QuantKernel.backward(px + i, pg + i, gx.pointer + i, end - i, scale: sc, zero: z, lo: lo, hi: hi,
                                                        mode: mode, wantScale: needS, wantZero: needZ)
                    localS[b, default: 0] += ds
                    localZ[b, default: 0] += dz
                    i = end
                }
                lock.lock()
                for (b, v) in localS { gs[b] += v }
                for (b, v) in localZ { gz[b] += v }
                lock.unlock()
            }
            return [Tensor(shape: xd.shape, storage: gx),
                    needS ? Tensor(shape: sd.shape, scalars: sd.count == 1 ? [Float(gs.reduce(0, +))] : gs.map { Float($0) }) : nil,
                    needZ ? Tensor(shape: zd.shape, scalars: zd.count == 1 ? [Float(gz.reduce(0, +))] : gz.map { Float($0) }) : nil]
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

/// The elementwise IntQuant kernels on one block with constant scale and zero point.
///
/// Plain loops with the rounding mode switched outside them, so that LLVM vectorises each
/// (the standard library's generic SIMD rounding, clamping and min/max run lane by lane and
/// were 10× slower here). Sums go through a scratch buffer and `Reduce.sum`.
enum QuantKernel {
    @inline(__always)
    static func withRounding<R>(_ mode: RoundingMode, _ body: ((Float) -> Float) -> R) -> R {
        switch mode {
        case .round: return body { $0.rounded(.toNearestOrEven) }
        case .halfUp: return body { $0.rounded(.toNearestOrAwayFromZero) }
        case .floor: return body { $0.rounded(.down) }
        case .ceil: return body { $0.rounded(.up) }
        case .down: return body { $0.rounded(.towardZero) }
        case .up: return body { $0.rounded(.awayFromZero) }
        case .halfDown: return body { RoundingMode.halfDown.apply($0) }
        }
    }

    static func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                        scale: Float, zero: Float, lo: Float, hi: Float, mode: RoundingMode) {
        withRounding(mode) { round in
            for i in 0..<n {
                let r = round(x[i] / scale + zero)
                let q = r < lo ? lo : (r > hi ? hi : r)
                y[i] = (q - zero) * scale
            }
        }
    }

    /// Writes the x gradient; returns Σ of the scale and zero-point gradients over the block.
    static func backward(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>, _ n: Int,
                         scale: Float, zero: Float, lo: Float, hi: Float, mode: RoundingMode,
                         wantScale: Bool, wantZero: Bool) -> (Double, Double) {
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(n, 1))
        defer { scratch.deallocate() }
        var sumS: Float = 0, sumZ: Float = 0
        withRounding(mode) { round in
            for i in 0..<n {
                let r = round(x[i] / scale + zero)
                gx[i] = (r >= lo && r <= hi) ? g[i] : 0
            }
            if wantScale {
                for i in 0..<n {
                    let v = x[i] / scale, r = round(v + zero)
                    let q = r < lo ? lo : (r > hi ? hi : r)
                    scratch[i] = g[i] * ((r >= lo && r <= hi) ? r - zero - v : q - zero)
                }
                sumS = Reduce.sum(scratch, n)
            }
            if wantZero {
                for i in 0..<n {
                    let r = round(x[i] / scale + zero)
                    scratch[i] = (r >= lo && r <= hi) ? 0 : -g[i] * scale
                }
                sumZ = Reduce.sum(scratch, n)
            }
        }
        return (Double(sumS), Double(sumZ))
    }
}

/// Nested sign-magnitude weights (seed document 002): one stored `outerBits`-bit code holds
/// a narrower `innerBits`-bit weight in a window of its magnitude bits.
///
///     q = clamp(round(x / s), −M, M)                  M = 2^(outerBits−1) − 1 (sign + magnitude)
///     m = min((|q| + r) >> shift, 2^(innerBits−1) − 1)   the window: magnitude bits shift … shift+innerBits−2,
///                                                       saturated when a higher bit is set
///     inner code = sign(q) · m,   y = sign(q) · m · 2^shift · s
///
/// With r = 0 (`rounds` false) the window truncates: exactly the selected bits of the stored
/// word. With r = 2^(shift−1) it rounds half away from zero at the window's lowest bit (one
/// saturating increment in hardware), which halves the error of the inner weights.
public struct NestedWindow: Equatable, Sendable {
    public let outerBits: Int
    public let innerBits: Int
    /// Lowest magnitude bit of the window (0 … outerBits − innerBits).
    public let shift: Int
    /// Round at the window's lowest bit instead of truncating.
    public let rounds: Bool

    public init(outerBits: Int, innerBits: Int, shift: Int, rounds: Bool = false) {
        precondition(innerBits >= 2 && innerBits < outerBits && outerBits <= 16, "NestedWindow: widths \(outerBits)/\(innerBits)")
        precondition((0...(outerBits - innerBits)).contains(shift), "NestedWindow: shift \(shift) outside 0...\(outerBits - innerBits)")
        self.outerBits = outerBits; self.innerBits = innerBits; self.shift = shift; self.rounds = rounds
    }

    /// What is added to |q| before the shift: 2^(shift−1) when rounding, else 0.
    public var roundingTerm: Int { rounds && shift > 0 ? 1 << (shift - 1) : 0 }

    /// Largest outer magnitude, 2^(outerBits−1) − 1.
    public var outerMax: Int { (1 << (outerBits - 1)) - 1 }
    /// Largest inner magnitude, 2^(innerBits−1) − 1.
    public var innerMax: Int { (1 << (innerBits - 1)) - 1 }

    /// The inner code of an outer code.
    @inline(__always)
    public func innerCode(_ q: Int) -> Int {
        let m = Swift.min((abs(q) + roundingTerm) >> shift, innerMax)
        return q < 0 ? -m : m
    }
}

extension NestedWindow {
    /// Outer codes q = clamp(round(x / s), −M, M) as magnitudes and signed scales (s or −s), and
    /// whether x / s was inside ±M, for `x` with one scale or one per index of axis 0.
    static func outerCodes(_ x: Tensor, scale: Tensor, outerMax: Int, rounding: RoundingMode)
        -> (magnitude: [Int32], signedScale: [Float], inside: [Bool]) {
        let n = x.count, blocks = Swift.max(scale.count, 1), per = n / blocks
        precondition(scale.count == 1 || (x.rank > 0 && scale.count == x.shape[0]), "nested quantizer: \(scale.count) scales for shape \(x.shape)")
        var magnitude = [Int32](repeating: 0, count: n), signedScale = [Float](repeating: 0, count: n)
        var inside = [Bool](repeating: false, count: n)
        let px = x.storage.pointer, m = Float(outerMax)
        for b in 0..<blocks {
            let s = scale.storage.pointer[scale.count == 1 ? 0 : b]
            for i in (b * per)..<((b + 1) * per) {
                let v = rounding.apply(px[i] / s)
                let q = Swift.min(Swift.max(v, -m), m)
                magnitude[i] = Int32(abs(q))
                signedScale[i] = q < 0 ? -s : s
                inside[i] = abs(v) <= m
            }
        }
        return (magnitude, signedScale, inside)
    }

    /// Σ (inner weight − x)² for every window shift 0 … outerBits − innerBits (index = shift).
    public static func squaredErrors(_ x: Tensor, scale: Tensor, outerBits: Int, innerBits: Int, rounding: RoundingMode,
                                     rounds: Bool = false) -> [Double] {
        let probe = NestedWindow(outerBits: outerBits, innerBits: innerBits, shift: 0)
        let codes = outerCodes(x, scale: scale, outerMax: probe.outerMax, rounding: rounding)
        let innerMax = Int32(probe.innerMax), px = x.storage.pointer, n = x.count
        return (0...(outerBits - innerBits)).map { k -> Double in
            let step = Float(1 << k), half = Int32(rounds && k > 0 ? 1 << (k - 1) : 0)
            var e: Double = 0, i = 0
            codes.magnitude.withUnsafeBufferPointer { mag in
                codes.signedScale.withUnsafeBufferPointer { sc in
                    while i < n {
                        let end = Swift.min(n, i + 4096)
                        var partial: Float = 0
                        for j in i..<end {
                            let d = Float(Swift.min((mag[j] + half) >> Int32(k), innerMax)) * step * sc[j] - px[j]
                            partial += d * d
                        }
                        e += Double(partial)
                        i = end
                    }
                }
            }
            return e
        }
    }
}

extension Tensor {
    /// The inner weights of `NestedWindow` in float: sign(q) · m · 2^shift · scale, with `scale`
    /// one value or one per index of axis 0, rounding `rounding` for the outer code.
    /// Gradient: straight through where the outer code is not clamped and the window is not
    /// saturated, zero elsewhere; the scale (a statistic of the weights) gets none.
    public func nestedFakeQuantized(scale: Tensor, window: NestedWindow, rounding: RoundingMode = .round) -> Tensor {
        let codes = NestedWindow.outerCodes(detached, scale: scale.detached, outerMax: window.outerMax, rounding: rounding)
        let k = Int32(window.shift), innerMax = Int32(window.innerMax), step = Float(1 << window.shift)
        let half = Int32(window.roundingTerm)
        let pass = (0..<count).map { codes.inside[$0] && (codes.magnitude[$0] + half) >> k <= innerMax }
        let y = Tensor(shape: shape) { out in
            for i in 0..<out.count { out[i] = Float(Swift.min((codes.magnitude[i] + half) >> k, innerMax)) * step * codes.signedScale[i] }
        }
        return Tensor.record(y, [self]) { g in
            let pg = g.storage.pointer
            return [Tensor(shape: g.shape) { out in for i in 0..<g.count { out[i] = pass[i] ? pg[i] : 0 } }]
        }
    }
}

extension Tensor {
    /// QONNX `BipolarQuant` in float: y = scale · (x ≥ 0 ? +1 : −1), with `scale` one value or
    /// one per index of axis 0. Gradient: straight through where |x| ≤ scale, zero elsewhere
    /// (the clipped straight-through estimator of binarised networks); the scale, a statistic
    /// of the weights, gets none.
    public func bipolarQuantized(scale: Tensor) -> Tensor {
        let blocks = Swift.max(scale.count, 1)
        precondition(scale.count == 1 || (rank > 0 && scale.count == shape[0]), "bipolarQuantized: \(scale.count) scales for shape \(shape)")
        let per = count / blocks, xd = detached, sd = scale.detached
        let y = Tensor(shape: shape) { out in
            let px = xd.storage.pointer
            for b in 0..<blocks {
                let s = sd.storage.pointer[scale.count == 1 ? 0 : b]
                for i in (b * per)..<((b + 1) * per) { out[i] = px[i] >= 0 ? s : -s }
            }
        }
        return Tensor.record(y, [self]) { g in
            let pg = g.storage.pointer, px = xd.storage.pointer
            return [Tensor(shape: g.shape) { out in
                for b in 0..<blocks {
                    let s = sd.storage.pointer[sd.count == 1 ? 0 : b]
                    for i in (b * per)..<((b + 1) * per) { out[i] = abs(px[i]) <= s ? pg[i] : 0 }
                }
            }]
        }
    }
}
