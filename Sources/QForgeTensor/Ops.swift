import Foundation

// Elementwise, broadcasting, reduction and shape ops. Each op computes its forward and
// records its pullback (the derivative rule) in the same function, once.

// MARK: - Broadcasting

/// NumPy broadcasting of two shapes; nil when they are incompatible.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let r = Swift.max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
    }
    return out
}

/// Strides of `shape` seen from a broadcast result of rank `rank` (0 where broadcast).
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
    let st = stridesOf(shape)
    let pad = outShape.count - shape.count
    return (0..<outShape.count).map { i in
        i < pad ? 0 : (shape[i - pad] == 1 && outShape[i] != 1 ? 0 : st[i - pad])
    }
}

/// Walks the output of a broadcast binary op, calling `body(outIndex, aIndex, bIndex, n)` for
/// each contiguous run of `n` inner elements where both inputs advance by 0 or 1.
@inline(__always)
func broadcastLoop(_ outShape: [Int], _ sa: [Int], _ sb: [Int],
                   _ body: (Int, Int, Int, Int, Int, Int) -> Void) {
    let r = outShape.count
    if r == 0 { body(0, 0, 0, 1, 0, 0); return }
    let inner = outShape[r - 1]
    let ia = sa[r - 1], ib = sb[r - 1]
    let outer = outShape.dropLast().reduce(1, *)
    var idx = [Int](repeating: 0, count: r - 1)
    var offA = 0, offB = 0
    for o in 0..<outer {
        body(o * inner, offA, offB, inner, ia, ib)
        // increment the multi-index over the outer dimensions
        var d = r - 2
        while d >= 0 {
            idx[d] += 1
            offA += sa[d]; offB += sb[d]
            if idx[d] < outShape[d] { break }
            offA -= sa[d] * idx[d]; offB -= sb[d] * idx[d]
            idx[d] = 0
            d -= 1
        }
    }
}

extension Tensor {
    /// Sums a broadcast gradient back down to `target` shape.
    public func sumToShape(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let pad = shape.count - target.count
        precondition(pad >= 0, "sumToShape: \(shape) cannot reduce to \(target)")
        var axes: [Int] = Array(0..<pad)
        for i in 0..<target.count where target[i] == 1 && shape[i + pad] != 1 { axes.append(i + pad) }
        return detached.sum(alongAxes: axes, keepingDimensions: true).reshaped(to: target)
    }

    @inline(__always)
    static func binary(_ a: Tensor, _ b: Tensor, _ name: String, _ f: (Float, Float) -> Float) -> Tensor {
        if a.shape == b.shape {
            return Tensor(shape: a.shape) { out in
                let pa = a.storage.pointer, pb = b.storage.pointer, po = out.baseAddress!
                Parallel.forRange(out.count) { r in for i in r { po[i] = f(pa[i], pb[i]) } }
            }
        }
        guard let os = broadcastShape(a.shape, b.shape) else {
            preconditionFailure("\(name): shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let sa = broadcastStrides(a.shape, to: os), sb = broadcastStrides(b.shape, to: os)
        return Tensor(shape: os) { out in
            let pa = a.storage.pointer, pb = b.storage.pointer, po = out.baseAddress!
            broadcastLoop(os, sa, sb) { o, ia, ib, n, da, db in
                for j in 0..<n { po[o + j] = f(pa[ia + j * da], pb[ib + j * db]) }
            }
        }
    }

    @inline(__always)
    func map(_ f: (Float) -> Float) -> Tensor {
        Tensor(shape: shape) { out in
            let p = storage.pointer, po = out.baseAddress!
            Parallel.forRange(out.count) { r in for i in r { po[i] = f(p[i]) } }
        }
    }

    @inline(__always)
    static func zipMap(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        precondition(a.shape == b.shape)
        return Tensor(shape: a.shape) { out in
            let pa = a.storage.pointer, pb = b.storage.pointer, po = out.baseAddress!
            Parallel.forRange(out.count) { r in for i in r { po[i] = f(pa[i], pb[i]) } }
        }
    }

    // MARK: - Arithmetic

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let y = binary(a, b, "add", +)
        return record(y, [a, b]) { g in [g.sumToShape(a.shape), g.sumToShape(b.shape)] }
    }

    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let y = binary(a, b, "sub", -)
        return record(y, [a, b]) { g in [g.sumToShape(a.shape), (-g.detached).sumToShape(b.shape)] }
    }

    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let y = binary(a, b, "mul", *)
        return record(y, [a, b]) { g in
            [a.requiresGradient ? binary(g, b.detached, "mul", *).sumToShape(a.shape) : nil,
             b.requiresGradient ? binary(g, a.detached, "mul", *).sumToShape(b.shape) : nil]
        }
    }

    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let y = binary(a, b, "div", /)
        return record(y, [a, b]) { g in
            [a.requiresGradient ? binary(g, b.detached, "div", /).sumToShape(a.shape) : nil,
             b.requiresGradient ? binary(binary(g, y.detached, "mul", *), b.detached, "div", { -$0 / $1 }).sumToShape(b.shape) : nil]
        }
    }

    public static prefix func - (a: Tensor) -> Tensor {
        record(a.map { -$0 }, [a]) { g in [g.map { -$0 }] }
    }

    public static func + (a: Tensor, s: Float) -> Tensor { record(a.map { $0 + s }, [a]) { g in [g] } }
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    public static func * (a: Tensor, s: Float) -> Tensor { record(a.map { $0 * s }, [a]) { g in [g.map { $0 * s }] } }
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }

    // MARK: - Unary functions

    public func exp() -> Tensor {
        let y = map { Foundation.exp($0) }
        return Tensor.record(y, [self]) { g in [Tensor.zipMap(g, y, *)] }
    }

    public func log() -> Tensor {
        let x = detached
        return Tensor.record(map { Foundation.log($0) }, [self]) { g in [Tensor.zipMap(g, x, /)] }
    }

    public func sqrt() -> Tensor {
        let y = map { $0.squareRoot() }
        return Tensor.record(y, [self]) { g in [Tensor.zipMap(g, y) { $0 * 0.5 / $1 }] }
    }

    public func squared() -> Tensor {
        let x = detached
        return Tensor.record(map { $0 * $0 }, [self]) { g in [Tensor.zipMap(g, x) { 2 * $0 * $1 }] }
    }

    /// 2^x.
    public func exp2() -> Tensor {
        let y = map { Foundation.exp2($0) }
        return Tensor.record(y, [self]) { g in [Tensor.zipMap(g, y) { $0 * $1 * 0.693_147_2 }] }
    }

    /// Round half to even in the forward pass, identity in the backward pass (straight-through).
    public func roundedSTE() -> Tensor {
        Tensor.record(map { $0.rounded(.toNearestOrEven) }, [self]) { g in [g] }
    }

    public func relu() -> Tensor {
        // Written out (not through `map`) so the loops vectorise: relu runs on the largest
        // activations of every network.
        let p = storage.pointer
        let y = Tensor(shape: shape) { out in
            let po = out.baseAddress!
            Parallel.forRange(out.count) { r in for i in r { po[i] = Swift.max(p[i], 0) } }
        }
        return Tensor.record(y, [self]) { g in
            [Tensor(shape: y.shape) { out in
                let po = out.baseAddress!, pg = g.storage.pointer, py = y.storage.pointer
                Parallel.forRange(out.count) { r in
                    Vectorized.passWherePositive(po + r.lowerBound, pg + r.lowerBound, r.count) { py[r.lowerBound + $0] } simd: {
                        UnsafeRawPointer(py + r.lowerBound + $0).loadUnaligned(as: SIMD16<Float>.self)
                    }
                }
            }]
        }
    }

    public func sigmoid() -> Tensor {
        let y = map { 1 / (1 + Foundation.exp(-$0)) }
        return Tensor.record(y, [self]) { g in [Tensor.zipMap(g, y) { $0 * $1 * (1 - $1) }] }
    }

    public func tanh() -> Tensor {
        let y = map { Foundation.tanh($0) }
        return Tensor.record(y, [self]) { g in [Tensor.zipMap(g, y) { $0 * (1 - $1 * $1) }] }
    }

    // MARK: - Reductions

    /// Splits the shape around `axis` into (outer, axis length, inner).
    func around(_ axis: Int) -> (Int, Int, Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) out of range for shape \(shape)")
        return a
    }

    /// Sum over one axis, keeping it with length 1. No autodiff (building block).
    func sumAxisKeep(_ axis: Int) -> Tensor {
        let (outer, len, inner) = around(axis)
        var s = shape
        s[axis] = 1
        return Tensor(shape: s) { out in
            let p = storage.pointer, po = out.baseAddress!
            if inner == 1 {
                // Contiguous runs: accumulate in Double so long sums stay accurate.
                for o in 0..<outer {
                    var acc: Double = 0
                    for k in 0..<len { acc += Double(p[o * len + k]) }
                    po[o] = Float(acc)
                }
                return
            }
            po.initialize(repeating: 0, count: outer * inner)
            for o in 0..<outer {
                for k in 0..<len {
                    let src = p + (o * len + k) * inner, dst = po + o * inner
                    for i in 0..<inner { dst[i] += src[i] }
                }
            }
        }
    }

    /// Sum over the given axes (all when empty is not meant: pass every axis).
    public func sum(alongAxes axes: [Int], keepingDimensions keep: Bool = false) -> Tensor {
        let ax = Set(axes.map(normalizedAxis))
        var y = detached
        for a in ax.sorted() { y = y.sumAxisKeep(a) }
        let keptShape = y.shape
        if !keep { y = y.reshaped(to: shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)) }
        let inShape = shape
        return Tensor.record(y, [self]) { g in [g.reshaped(to: keptShape).broadcast(to: inShape)] }
    }

    /// Sum of every element, as a rank-0 tensor.
    public func sum() -> Tensor { sum(alongAxes: Array(0..<rank)) }

    public func mean(alongAxes axes: [Int], keepingDimensions keep: Bool = false) -> Tensor {
        let n = axes.map { shape[normalizedAxis($0)] }.reduce(1, *)
        return sum(alongAxes: axes, keepingDimensions: keep) * (1 / Float(n))
    }

    public func mean() -> Tensor { sum() * (1 / Float(Swift.max(count, 1))) }

    /// Max over one axis (no gradient; used for stable softmax and arg-max).
    public func max(alongAxis axis: Int) -> Tensor {
        let a = normalizedAxis(axis)
        let (outer, len, inner) = around(a)
        var s = shape
        s.remove(at: a)
        return Tensor(shape: s) { out in
            let p = storage.pointer
            for o in 0..<outer {
                for i in 0..<inner {
                    var m = -Float.infinity
                    for k in 0..<len { m = Swift.max(m, p[(o * len + k) * inner + i]) }
                    out[o * inner + i] = m
                }
            }
        }
    }

    /// Index of the largest value along the last axis, per row.
    public func argmax() -> [Int] {
        let len = shape.last ?? 1
        let rows = count / Swift.max(len, 1)
        let p = storage.pointer
        return (0..<rows).map { r in
            var best = 0
            for k in 1..<Swift.max(len, 1) where p[r * len + k] > p[r * len + best] { best = k }
            return best
        }
    }

    // MARK: - Shape

    public func reshaped(to newShape: [Int]) -> Tensor {
        var s = newShape
        if let infer = s.firstIndex(of: -1) {
            s[infer] = 1
            s[infer] = count / Swift.max(s.reduce(1, *), 1)
        }
        precondition(s.reduce(1, *) == count, "reshape: \(shape) (\(count) elements) cannot become \(newShape)")
        let inShape = shape
        var y = Tensor(shape: s, storage: storage)
        y.node = nil
        return Tensor.record(y, [self]) { g in [g.reshaped(to: inShape)] }
    }

    /// [N, ...] → [N, product of the rest].
    public func flattened() -> Tensor { reshaped(to: [shape.first ?? 1, -1]) }

    /// Broadcasts to a larger shape (copying).
    public func broadcast(to target: [Int]) -> Tensor {
        if shape == target { return self }
        precondition(broadcastShape(shape, target) == target, "cannot broadcast \(shape) to \(target)")
        let sa = broadcastStrides(shape, to: target)
        let y = Tensor(shape: target) { out in
            let p = storage.pointer, po = out.baseAddress!
            broadcastLoop(target, sa, sa) { o, ia, _, n, da, _ in
                for j in 0..<n { po[o + j] = p[ia + j * da] }
            }
        }
        let inShape = shape
        return Tensor.record(y, [self]) { g in [g.sumToShape(inShape)] }
    }

    /// Permutes the axes.
    public func transposed(_ perm: [Int]) -> Tensor {
        precondition(perm.sorted() == Array(0..<rank), "transpose: \(perm) is not a permutation of \(rank) axes")
        let outShape = perm.map { shape[$0] }
        let inStrides = stridesOf(shape)
        let permStrides = perm.map { inStrides[$0] }
        let y = Tensor(shape: outShape) { out in
            let p = storage.pointer, po = out.baseAddress!
            if rank == 2 {
                let rows = shape[0], cols = shape[1]
                let block = 32
                for i0 in stride(from: 0, to: rows, by: block) {
                    for j0 in stride(from: 0, to: cols, by: block) {
                        for i in i0..<Swift.min(i0 + block, rows) {
                            for j in j0..<Swift.min(j0 + block, cols) { po[j * rows + i] = p[i * cols + j] }
                        }
                    }
                }
                return
            }
            broadcastLoop(outShape, permStrides, permStrides) { o, ia, _, n, da, _ in
                for j in 0..<n { po[o + j] = p[ia + j * da] }
            }
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return Tensor.record(y, [self]) { g in [g.transposed(inverse)] }
    }

    /// Matrix transpose of a rank-2 tensor.
    public var T: Tensor { transposed([1, 0]) }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = normalizedAxis(axis)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a], "slice \(range) out of bounds for axis \(a) of \(shape)")
        let (outer, len, inner) = around(a)
        var s = shape
        s[a] = range.count
        let y = Tensor(shape: s) { out in
            let p = storage.pointer, po = out.baseAddress!
            for o in 0..<outer {
                (po + o * range.count * inner).update(from: p + (o * len + range.lowerBound) * inner, count: range.count * inner)
            }
        }
        let inShape = shape
        return Tensor.record(y, [self]) { g in
            [Tensor(shape: inShape) { out in
                let pg = g.storage.pointer, po = out.baseAddress!
                po.initialize(repeating: 0, count: out.count)
                for o in 0..<outer {
                    (po + (o * len + range.lowerBound) * inner).update(from: pg + o * range.count * inner, count: range.count * inner)
                }
            }]
        }
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of no tensors")
        let a = parts[0].normalizedAxis(axis)
        for p in parts {
            precondition(p.rank == parts[0].rank && (0..<p.rank).allSatisfy { $0 == a || p.shape[$0] == parts[0].shape[$0] },
                         "concat: shapes \(parts.map(\.shape)) differ outside axis \(a)")
        }
        var s = parts[0].shape
        s[a] = parts.map { $0.shape[a] }.reduce(0, +)
        let (outer, _, inner) = parts[0].around(a)
        let total = s[a]
        let y = Tensor(shape: s) { out in
            let po = out.baseAddress!
            var start = 0
            for p in parts {
                let len = p.shape[a]
                for o in 0..<outer {
                    (po + (o * total + start) * inner).update(from: p.storage.pointer + o * len * inner, count: len * inner)
                }
                start += len
            }
        }
        let offsets = parts.map { $0.shape[a] }.reduce(into: [0]) { $0.append($0.last! + $1) }
        return record(y, parts) { g in
            parts.indices.map { i in g.detached.slice(axis: a, offsets[i]..<offsets[i + 1]) }
        }
    }

    /// Picks `self[i, indices[i]]` from a rank-2 tensor: the label column of each row.
    public func gather(_ indices: IntTensor) -> Tensor {
        precondition(rank == 2 && indices.count == shape[0], "gather: needs [N, K] and N indices, got \(shape) and \(indices.count)")
        let k = shape[1]
        for v in indices.scalars { precondition(v >= 0 && v < k, "gather: index \(v) out of range 0..<\(k)") }
        let y = Tensor(shape: [shape[0]]) { out in
            for i in 0..<out.count { out[i] = storage.pointer[i * k + indices.scalars[i]] }
        }
        let inShape = shape
        return Tensor.record(y, [self]) { g in
            [Tensor(shape: inShape) { out in
                out.baseAddress!.initialize(repeating: 0, count: out.count)
                for i in 0..<inShape[0] { out[i * k + indices.scalars[i]] = g.storage.pointer[i] }
            }]
        }
    }
}
