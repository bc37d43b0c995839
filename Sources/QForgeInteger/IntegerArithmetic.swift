import CQForgeKernels
import QForgeTensor

/// The integer arithmetic of QForge: the specification of every number the hardware computes.
///
/// The streamlined model, the Verilog generator and its testbench all follow these
/// definitions; a mismatch anywhere is a failing test, never a tolerance. Values are
/// mathematical integers: codes are `QTensor` (Int32), accumulators `AccTensor` (Int64), and
/// every result below is exact unless it says clamp, wrap or round.
///
/// Notation: ⌊·⌋ floor; `v >>> s` = ⌊v / 2^s⌋ (arithmetic shift right); clamp(v, a, b) =
/// min(max(v, a), b). An output grid G (`IntQuantGrid`) has codes G.min…G.max: signed b bits
/// −2^(b−1) (+1 if narrow) … 2^(b−1)−1, unsigned 0 … 2^b−1 (−1 if narrow), and a rounding mode
/// R. The channel of an element is its index on axis 1 of [N, C, …] and [N, M] tensors (axis
/// 0 of a rank-1 tensor); a per-channel parameter list of one entry applies to every channel.
///
/// | op | result |
/// | --- | --- |
/// | `matmul` x [N,K], w [M,K], bias b [M] | y[n,m] = b[m] + Σ_k x[n,k]·w[m,k] |
/// | `conv2d` x [N,C,H,W], w [M,C,kh,kw], b, stride (sh,sw), padding (ph,pw) | y[n,m,i,j] = b[m] + Σ_{c,di,dj} w[m,c,di,dj]·x̂[n,c,i·sh+di−ph, j·sw+dj−pw], x̂ = x inside the image and 0 in the padding; OH = ⌊(H+2ph−kh)/sh⌋+1, OW likewise |
/// | `add` a, b (same shape) | a + b |
/// | `AccumulatorCap` b bits (2…64), wrap | the v′ ≡ v (mod 2^b) with −2^(b−1) ≤ v′ ≤ 2^(b−1)−1 (two's complement; any summation order gives the same v′) |
/// | `AccumulatorCap` b bits, saturate | clamp(v, −2^(b−1), 2^(b−1)−1), applied to the exact final sum |
/// | `OutputTruncation` of a w-bit v: full | v |
/// | keepMSBs(n), 1 ≤ n ≤ w | v >>> (w−n) |
/// | keepLSBs(n), 1 ≤ n ≤ 64 | clamp(v, −2^(n−1), 2^(n−1)−1) (saturating) |
/// | `MultiThreshold` T[c] ascending, outBias β | clamp(β + #{i : acc ≥ T[c][i]}, G.min, G.max) |
/// | `MultiplyShift` multiplier m[c] (Int32), shift s[c] ∈ 0…62, offset z[c], lowest code L (default G.min) | clamp(R(acc·m/2^s + z), max(G.min, L), G.max) |
/// | `MultiplyShift.shifting` (m = 1), s ∈ −62…62 | s ≥ 0: as above; s < 0: clamp(acc·2^(−s) + z, max(G.min, L), G.max) |
/// | `LookupTable` lo, table t[0…L−1], hi = lo+L−1 | t[clamp(v, lo, hi) − lo] (inputs outside lo…hi take the end entries) |
/// | `maxPool2d` kernel, stride, padding p < kernel | max over the window's inputs; padding is −∞ (never chosen); output size as conv2d |
/// | `argmax` along the last axis | the lowest index holding the maximum |
/// | `flattened` | [N, d1, …] → [N, d1·…], values unchanged |
///
/// Rounding R of v = acc·m/2^s + z (s ≥ 0), exactly, as a circuit computes it: with the full
/// product p = acc·m (up to 95 bits), f = (p >>> s) + z = ⌊v⌋, the remainder r = p − (p >>> s)·2^s
/// (the low s bits of p, 0 ≤ r < 2^s) and h = 2^(s−1), R(v) = f + u with u ∈ {0, 1}:
///
/// | mode | u = 1 when |
/// | --- | --- |
/// | ROUND (nearest, ties to even) | r > h, or r = h and f odd |
/// | HALF_UP (nearest, ties away from 0) | r > h, or r = h and f ≥ 0 |
/// | HALF_DOWN (nearest, ties toward 0) | r > h, or r = h and f < 0 |
/// | FLOOR | never |
/// | CEIL | r ≠ 0 |
/// | DOWN (toward 0) | r ≠ 0 and f < 0 |
/// | UP (away from 0) | r ≠ 0 and f ≥ 0 |
///
/// For s = 0, r = 0 and u = 0 in every mode. The offset z (a zero point, in output codes) is
/// added before rounding, so ROUND's ties go to the even *output* code.
///
/// Accumulator ranges, for weight rows w[m, ·] (conv weights flattened to [M, C·kh·kw]),
/// inputs in lo…hi (with zero padding: min(lo, 0)…max(hi, 0)) and bias b:
/// max[m] = b[m] + Σ_k max(w[m,k]·lo, w[m,k]·hi) and min[m] = b[m] + Σ_k min(w[m,k]·lo, w[m,k]·hi).
/// Without padding the maximum is reached by x_k = hi where w[m,k] > 0, else lo, and the
/// minimum by the reverse; with padding the range is a bound that border windows may not reach.
/// `signedBitsNeeded(min, max)` is the smallest b ≥ 1 with −2^(b−1) ≤ min and max ≤ 2^(b−1)−1
/// (1 for 0…0).
///
/// How a product is computed is not part of the specification; every path returns the same
/// values, and the path is chosen from bounds proven for the weights and the input bound
/// maxAbsInput (`productPath`), never from the data's luck:
///
/// | path | exact when | how |
/// | --- | --- | --- |
/// | `int16` | a·Σ\|w\| over each 16-bit lane's chunk ≤ 2^15 − 1 and a·max_m Σ_k \|w[m,k]\| ≤ 2^31 − 1 (a = maxAbsInput; `PackedWeights.int16Chunk`) | codes as Int16, wrapping 16-bit multiply-adds, widened into wrapping Int32 sums every chunk (`Int16GEMM`) |
/// | `float32` | a·max_m Σ_k \|w[m,k]\| ≤ 2^24 | float32 GEMM: every partial sum is a representable integer, in any order |
/// | `int64` | the sums fit Int64 (always required) | Int64 multiply-adds |
///
/// Wrapping sums are exact modulo 2^16 or 2^32 in any order, so they equal the true integers
/// whenever the true values fit; the bounds prove that. A 16-bit lane sums, for one output,
/// the products of one parity of k (2q or 2q + 1) over a chunk of consecutive k-pairs q; the
/// chunk may be lengthened for a batch whose inputs keep one sign (only the positive or only
/// the negative weights can then push a lane outward). The Int16 path is preferred when its
/// chunks are long enough to pay (`minimumInt16Chunk` pairs, or all of k), then float32, then
/// Int64; the choice depends on the weights and maxAbsInput only. Programmer errors (shapes,
/// parameters out of range, sums beyond 64 bits) are precondition failures.
///
/// `IntegerModel.run` gives every layer's `accumulate` then `requantize` results, and computes
/// some layers faster (`LayerPlan`), again chosen from the weights and the input grid only:
///
/// | fast path | exact when | how |
/// | --- | --- | --- |
/// | fused Int32 epilogue | the layer takes the `int16` path and a·max_m Σ_k \|w[m,k]\| + max \|bias\| ≤ 2^31 − 2; thresholds with codes ± (list length + 1) inside Int32, or multiplier and shift | the Int16 product's Int32 sums go through bias, cap, dropped bits and requantization in Int32 lanes per block of samples (`Int32Epilogue` says why each step equals its Int64 definition) |
/// | direct convolution | as above, stride 1, and the `int16` chunk condition holds for the weights with an odd channel count padded by a zero channel | the product reads the zero-bordered image directly, channel pairs as 32-bit words (`Int16GEMM.directLoop`): the same 16-bit lanes and chunks as the `int16` path, no im2col, sums already channel-major |
public enum IntegerOps {
    /// How `matmul` and `conv2d` compute their products (the results are identical).
    public enum ProductPath: String, CaseIterable, Sendable {
        /// Int16 lanes widened into Int32 (`Int16GEMM`), exact under `PackedWeights.int16Chunk`.
        case int16
        /// Float32 GEMM (OpenBLAS or the portable kernel), exact while partial sums stay ≤ 2^24.
        case float32
        /// Int64 multiply-adds, exact up to 2^63 − 1.
        case int64
    }

    /// Float32 holds every integer of magnitude ≤ 2^24 exactly.
    public static let float32ExactLimit: Int64 = 1 << 24

    /// The Int16 path is chosen automatically when its 16-bit chunks span at least this many
    /// k-pairs (or all of k): shorter chunks spend more on widening than they save.
    public static let minimumInt16Chunk = 4

    /// The instruction sets of the Int16 kernels.
    public enum Int16Kernel: String, CaseIterable, Sendable {
        /// 256-bit vectors (AVX2 on x86-64, the package's baseline there; NEON pairs elsewhere).
        case vector256
        /// 512-bit vectors (`QForgeAVX512`): x86-64 CPUs with AVX-512 F, BW, CD, DQ and VL.
        case vector512
        /// 512-bit VNNI dot products (`vpdpwssd`, the C target `CQForgeKernels`): each lane adds
        /// a pair of Int16 products straight into its Int32 sum, half the instructions of
        /// `vector512`'s multiply and add, and no 16-bit chunks (exact whenever the sums fit
        /// Int32, which the Int16 path's conditions imply). CPUs with AVX-512 F, BW and VNNI.
        case vnni512
    }

    /// The Int16 kernels this CPU runs (on Linux the CPU flags decide; elsewhere 256-bit only),
    /// slowest first.
    public static let availableInt16Kernels: [Int16Kernel] = {
        #if arch(x86_64)
        let flags = GEMM.cpuFlags()
        if ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"].allSatisfy(flags.contains) {
            return qf_cpu_has_avx512_vnni() != 0 ? [.vector256, .vector512, .vnni512] : [.vector256, .vector512]
        }
        #endif
        return [.vector256]
    }()

    /// The Int16 kernel in use: the widest available. Set it to compare them (same results);
    /// it must be one of `availableInt16Kernels`.
    nonisolated(unsafe) public static var int16Kernel: Int16Kernel = availableInt16Kernels.last! {
        didSet {
            precondition(availableInt16Kernels.contains(int16Kernel), "int16Kernel: \(int16Kernel) needs AVX-512 (VNNI), which this CPU lacks")
        }
    }

    /// The largest |partial sum| of x·wᵀ over any summation order: maxAbsInput · max_m Σ_k |w[m,k]|
    /// (rows are weight.shape[0]; the other axes are the sum). Nil when it exceeds Int64.
    public static func partialSumBound(weight: QTensor, maxAbsInput: Int64) -> Int64? {
        precondition(weight.rank >= 1 && maxAbsInput >= 0, "partialSumBound: weight \(weight.shape), bound \(maxAbsInput)")
        let rows = weight.shape[0], k = rows == 0 ? 0 : weight.count / rows
        var widest: Int64 = 0
        weight.values.withUnsafeBufferPointer { w in
            for m in 0..<rows {
                var sum: Int64 = 0
                for j in 0..<k { sum += Int64(w[m * k + j].magnitude) }  // ≤ 2^31 · K: no overflow
                widest = max(widest, sum)
            }
        }
        let (bound, overflow) = widest.multipliedReportingOverflow(by: maxAbsInput)
        return overflow ? nil : bound
    }

    /// The path `matmul` and `conv2d` choose for this weight and input bound.
    public static func productPath(weight: QTensor, maxAbsInput: Int64) -> ProductPath {
        productPath(weight: PackedWeights(weight, pack: false), maxAbsInput: maxAbsInput)
    }

    /// The path `matmul` and `conv2d` choose for these weights and input bound.
    public static func productPath(weight: PackedWeights, maxAbsInput: Int64) -> ProductPath {
        precondition(maxAbsInput >= 0, "productPath: input bound \(maxAbsInput) is negative")
        if let chunk = weight.int16Chunk(maxAbsInput: maxAbsInput), chunk >= min(minimumInt16Chunk, weight.pairs) { return .int16 }
        guard let bound = weight.partialSumBound(maxAbsInput: maxAbsInput) else { return .int64 }
        return bound <= float32ExactLimit ? .float32 : .int64
    }

    /// Exact y = x·wᵀ + bias: x [N, K] codes, weight [M, K] codes, bias [M] → [N, M].
    ///
    /// `maxAbsInput` fixes the input bound the path is chosen from (for example 2^(b−1) for
    /// b-bit signed inputs, so one layer always takes the same path); by default it is
    /// max|x| of this batch. `path` forces a path, which must be exact for the bound.
    public static func matmul(_ x: QTensor, weight: QTensor, bias: [Int64]? = nil,
                              maxAbsInput: Int64? = nil, path: ProductPath? = nil) -> AccTensor {
        precondition(weight.rank == 2, "matmul: weight \(weight.shape) must be [M, K]")
        return matmul(x, weight: PackedWeights(weight, pack: false), bias: bias, maxAbsInput: maxAbsInput, path: path)
    }

    /// `matmul` with weights packed once (`PackedWeights`), for one layer over many batches.
    public static func matmul(_ x: QTensor, weight packed: PackedWeights, bias: [Int64]? = nil,
                              maxAbsInput: Int64? = nil, path: ProductPath? = nil) -> AccTensor {
        let weight = packed.weight
        precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                     "matmul: input \(x.shape) ([N, K]) does not match weight \(weight.shape) ([M, K])")
        let n = x.shape[0], k = x.shape[1], m = weight.shape[0]
        if let bias { precondition(bias.count == m, "matmul: bias has \(bias.count) values, weight \(weight.shape) has \(m) rows") }
        let (chosen, chunk) = choosePath("matmul", x, packed, bias, maxAbsInput, path)
        if chosen == .int16 && k > 0 && n * m > 0 {
            let ready = packed.packed()
            let out = [Int64](unsafeUninitializedCapacity: n * m) { buf, initialized in
                x.values.withUnsafeBufferPointer { xp in
                    withOptionalPointer(bias) { bp in
                        IntegerKernels.int16Matmul(xp.baseAddress!, n: n, weights: ready, chunk: chunk, bias: bp, out: buf.baseAddress!)
                    }
                }
                initialized = n * m
            }
            return AccTensor(shape: [n, m], values: out)
        }
        let out = [Int64](unsafeUninitializedCapacity: n * m) { buf, initialized in
            if k == 0 {
                buf.initialize(repeating: 0)
            } else if n * m > 0 {
                x.values.withUnsafeBufferPointer { xp in
                    weight.values.withUnsafeBufferPointer { wp in
                        IntegerKernels.product(chosen, a: xp.baseAddress!, b: wp.baseAddress!, transB: true,
                                               m: n, n: m, k: k, c: buf.baseAddress!, parallel: true)
                    }
                }
            }
            if let bias {
                for r in 0..<n { for j in 0..<m { buf[r * m + j] &+= bias[j] } }  // bounded by choosePath
            }
            initialized = n * m
        }
        return AccTensor(shape: [n, m], values: out)
    }

    /// Exact 2-d convolution (cross-correlation, as PyTorch and ONNX): x [N, C, H, W] codes,
    /// weight [M, C, kh, kw] codes, bias [M], stride, zero padding → [N, M, OH, OW].
    /// im2col per sample and one product; samples are spread over the cores.
    public static func conv2d(_ x: QTensor, weight: QTensor, bias: [Int64]? = nil,
                              stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                              maxAbsInput: Int64? = nil, path: ProductPath? = nil) -> AccTensor {
        precondition(weight.rank == 4, "conv2d: weight \(weight.shape) must be [M, C, kh, kw]")
        return conv2d(x, weight: PackedWeights(weight, pack: false), bias: bias, stride: stride, padding: padding,
                      maxAbsInput: maxAbsInput, path: path)
    }

    /// `conv2d` with weights packed once (`PackedWeights`), for one layer over many batches.
    public static func conv2d(_ x: QTensor, weight packed: PackedWeights, bias: [Int64]? = nil,
                              stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
                              maxAbsInput: Int64? = nil, path: ProductPath? = nil) -> AccTensor {
        let weight = packed.weight
        precondition(x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[1],
                     "conv2d: input \(x.shape) ([N, C, H, W]) does not match weight \(weight.shape) ([M, C, kh, kw])")
        let g = ConvShape("conv2d", input: x.shape, kernel: (weight.shape[2], weight.shape[3]), stride: stride, padding: padding)
        let m = weight.shape[0], ck = g.c * g.kh * g.kw, hw = g.ho * g.wo
        if let bias { precondition(bias.count == m, "conv2d: bias has \(bias.count) values, weight \(weight.shape) has \(m) output channels") }
        let (chosen, chunk) = choosePath("conv2d", x, packed, bias, maxAbsInput, path)
        let total = g.n * m * hw
        if chosen == .int16 && ck > 0 && total > 0 {
            let ready = packed.packed()
            let out = [Int64](unsafeUninitializedCapacity: total) { buf, initialized in
                x.values.withUnsafeBufferPointer { xp in
                    withOptionalPointer(bias) { bp in
                        IntegerKernels.int16Conv(xp.baseAddress!, g, weights: ready, chunk: chunk, bias: bp, out: buf.baseAddress!)
                    }
                }
                initialized = total
            }
            return AccTensor(shape: [g.n, m, g.ho, g.wo], values: out)
        }
        let out = [Int64](unsafeUninitializedCapacity: total) { buf, initialized in
            buf.initialize(repeating: 0)
            initialized = total
            guard total > 0, ck > 0 else { return }
            let po = buf.baseAddress!
            x.values.withUnsafeBufferPointer { xp in
                weight.values.withUnsafeBufferPointer { wp in
                    let big = g.n * m * hw * ck >= GEMM.parallelThreshold
                    let workers = big ? min(Parallel.coreCount, g.n) : 1
                    Parallel.forEach(workers) { wk in
                        let cols = UnsafeMutablePointer<Int32>.allocate(capacity: ck * hw)
                        defer { cols.deallocate() }
                        for s in (g.n * wk / workers)..<(g.n * (wk + 1) / workers) {
                            IntegerKernels.im2col(xp.baseAddress! + s * g.c * g.h * g.w, cols, g)
                            IntegerKernels.product(chosen, a: wp.baseAddress!, b: cols, transB: false, m: m, n: hw, k: ck,
                                                   c: po + s * m * hw, parallel: workers == 1 && big)
                        }
                    }
                }
            }
        }
        guard let bias else { return AccTensor(shape: [g.n, m, g.ho, g.wo], values: out) }
        var biased = out
        for s in 0..<g.n {
            for oc in 0..<m {
                let base = (s * m + oc) * hw, b = bias[oc]
                for i in 0..<hw { biased[base + i] &+= b }  // bounded by choosePath
            }
        }
        return AccTensor(shape: [g.n, m, g.ho, g.wo], values: biased)
    }

    /// Checks the bound (given or measured) and the bias against 64 bits and picks the path,
    /// with the Int16 chunk length when that path runs.
    static func choosePath(_ op: String, _ x: QTensor, _ weight: PackedWeights, _ bias: [Int64]?,
                           _ maxAbsInput: Int64?, _ forced: ProductPath?) -> (path: ProductPath, chunk: Int) {
        var low = Int32.max, high = Int32.min
        x.values.withUnsafeBufferPointer { p in
            for v in p {
                low = min(low, v)
                high = max(high, v)
            }
        }
        let measured = x.count == 0 ? 0 : max(Int64(high), -Int64(low))
        if let given = maxAbsInput {
            precondition(measured <= given, "\(op): input holds |x| = \(measured), above the given bound \(given)")
        }
        let inputBound = maxAbsInput ?? measured
        let biasBound = bias?.map { $0.magnitude }.max() ?? 0
        guard let bound = weight.partialSumBound(maxAbsInput: inputBound),
              UInt64(bound) + biasBound <= UInt64(Int64.max) else {
            preconditionFailure("\(op): sums of products with |x| ≤ \(inputBound), weight \(weight.weight.shape) and the bias may exceed 64 bits")
        }
        // The path follows the bound; the chunk may use this batch's actual range (same results).
        let chunk = x.count == 0 ? weight.int16Chunk(maxAbsInput: inputBound)
            : weight.int16Chunk(lo: Int64(low), hi: Int64(high), maxAbsInput: inputBound)
        let chosen = forced ?? productPath(weight: weight, maxAbsInput: inputBound)
        switch chosen {
        case .int16:
            guard let chunk else {
                preconditionFailure("\(op): the int16 path is not exact for |x| ≤ \(inputBound) and weight \(weight.weight.shape) (see PackedWeights.int16Chunk)")
            }
            return (.int16, chunk)
        case .float32:
            precondition(bound <= float32ExactLimit, "\(op): the float32 path is not exact for partial sums up to \(bound) (limit 2^24)")
        case .int64:
            break
        }
        return (chosen, 0)
    }

    // MARK: - Pooling, residual add, arg-max

    /// Max pooling of x [N, C, H, W] codes; stride defaults to the kernel. Padded positions
    /// count as −∞, so every output is the maximum of real inputs (padding < kernel guarantees
    /// each window holds one).
    public static func maxPool2d(_ x: QTensor, kernel: (Int, Int), stride: (Int, Int)? = nil,
                                 padding: (Int, Int) = (0, 0)) -> QTensor {
        let g = ConvShape("maxPool2d", input: x.shape, kernel: kernel, stride: stride ?? kernel, padding: padding)
        precondition(g.ph < g.kh && g.pw < g.kw, "maxPool2d: padding \(padding) must be smaller than the kernel \(kernel)")
        precondition(g.h > 0 && g.w > 0, "maxPool2d: empty image \(x.shape)")
        let planes = g.n * g.c, per = g.ho * g.wo
        let halving = g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0  // the common case, vectorised
        let out = [Int32](unsafeUninitializedCapacity: planes * per) { buf, initialized in
            let po = buf.baseAddress
            x.values.withUnsafeBufferPointer { xp in
                Parallel.forRange(planes, cost: per * g.kh * g.kw) { r in
                    for plane in r {
                        let src = xp.baseAddress! + plane * g.h * g.w, dst = po! + plane * per
                        if halving {
                            for i in 0..<g.ho {
                                let top = src + 2 * i * g.w, bottom = top + g.w, d = dst + i * g.wo
                                for j in 0..<g.wo { d[j] = max(max(top[2 * j], top[2 * j + 1]), max(bottom[2 * j], bottom[2 * j + 1])) }
                            }
                            continue
                        }
                        for i in 0..<g.ho {
                            let y0 = i * g.sh - g.ph, ylo = max(y0, 0), yhi = min(y0 + g.kh, g.h)
                            for j in 0..<g.wo {
                                let x0 = j * g.sw - g.pw, xlo = max(x0, 0), xhi = min(x0 + g.kw, g.w)
                                var best = Int32.min
                                for y in ylo..<yhi { for xx in xlo..<xhi { best = max(best, src[y * g.w + xx]) } }
                                dst[i * g.wo + j] = best
                            }
                        }
                    }
                }
            }
            initialized = planes * per
        }
        return QTensor(shape: [g.n, g.c, g.ho, g.wo], values: out)
    }

    /// Elementwise a + b of two same-shaped code tensors (a residual join), exact.
    public static func add(_ a: QTensor, _ b: QTensor) -> AccTensor {
        precondition(a.shape == b.shape, "add: shapes \(a.shape) and \(b.shape) differ")
        let out = [Int64](unsafeUninitializedCapacity: a.count) { buf, initialized in
            for i in 0..<a.count { buf[i] = Int64(a.values[i]) + Int64(b.values[i]) }
            initialized = a.count
        }
        return AccTensor(shape: a.shape, values: out)
    }

    /// Elementwise a + b of two same-shaped accumulator tensors; the sum must fit Int64.
    public static func add(_ a: AccTensor, _ b: AccTensor) -> AccTensor {
        precondition(a.shape == b.shape, "add: shapes \(a.shape) and \(b.shape) differ")
        let out = (0..<a.count).map { i -> Int64 in
            let (sum, overflow) = a.values[i].addingReportingOverflow(b.values[i])
            precondition(!overflow, "add: \(a.values[i]) + \(b.values[i]) exceeds 64 bits")
            return sum
        }
        return AccTensor(shape: a.shape, values: out)
    }

    /// Index of the maximum along the last axis, per row; ties go to the lowest index.
    public static func argmax(_ x: QTensor) -> [Int] { argmaxRows(x) }

    /// Index of the maximum along the last axis, per row; ties go to the lowest index.
    public static func argmax(_ x: AccTensor) -> [Int] { argmaxRows(x) }

    static func argmaxRows<T>(_ x: IntegerTensor<T>) -> [Int] {
        precondition(x.rank >= 1 && x.shape[x.rank - 1] > 0, "argmax: needs a non-empty last axis, shape is \(x.shape)")
        let len = x.shape[x.rank - 1]
        return (0..<(x.count / len)).map { r in
            var best = 0
            for k in 1..<len where x.values[r * len + k] > x.values[r * len + best] { best = k }
            return best
        }
    }

    // MARK: - Interval analysis

    /// The exact range of each output channel's accumulator (see the table above): weight
    /// [M, …] (dense [M, K] or conv [M, C, kh, kw]), every input in `inputs` (with
    /// `zeroPadded`, inputs may also be the padding's 0), optional bias [M].
    public static func accumulatorRanges(weight: QTensor, inputs: ClosedRange<Int32>, bias: [Int64]? = nil,
                                         zeroPadded: Bool = false) -> [ClosedRange<Int64>] {
        precondition(weight.rank >= 1, "accumulatorRanges: weight needs a channel axis, shape is \(weight.shape)")
        let rows = weight.shape[0], k = rows == 0 ? 0 : weight.count / rows
        if let bias { precondition(bias.count == rows, "accumulatorRanges: bias has \(bias.count) values, weight \(weight.shape) has \(rows) rows") }
        let lo = Int64(zeroPadded ? min(inputs.lowerBound, 0) : inputs.lowerBound)
        let hi = Int64(zeroPadded ? max(inputs.upperBound, 0) : inputs.upperBound)
        return (0..<rows).map { m in
            var low = bias?[m] ?? 0, high = low
            for j in 0..<k {
                let w = Int64(weight.values[m * k + j])
                let a = w * lo, b = w * hi  // |·| ≤ 2^62
                var overflow = false, o = false
                (low, o) = low.addingReportingOverflow(min(a, b)); overflow = overflow || o
                (high, o) = high.addingReportingOverflow(max(a, b)); overflow = overflow || o
                precondition(!overflow, "accumulatorRanges: channel \(m) of weight \(weight.shape) with inputs \(inputs) exceeds 64 bits")
            }
            return low...high
        }
    }

    /// Per output channel m, the inputs (rows of [M, K], K = the weight's elements per
    /// channel) that reach that channel's minimum and maximum accumulator over `inputs`:
    /// maximizing x_k = hi where w[m,k] > 0, else lo; minimizing the reverse.
    public static func extremeInputs(weight: QTensor, inputs: ClosedRange<Int32>) -> (minimizing: QTensor, maximizing: QTensor) {
        precondition(weight.rank >= 1, "extremeInputs: weight needs a channel axis, shape is \(weight.shape)")
        let rows = weight.shape[0], k = rows == 0 ? 0 : weight.count / rows
        let lo = inputs.lowerBound, hi = inputs.upperBound
        let maximizing = weight.values.map { $0 > 0 ? hi : lo }, minimizing = weight.values.map { $0 > 0 ? lo : hi }
        return (QTensor(shape: [rows, k], values: minimizing), QTensor(shape: [rows, k], values: maximizing))
    }

    /// The smallest b ≥ 1 with −2^(b−1) ≤ min and max ≤ 2^(b−1)−1 (1 for 0…0).
    public static func signedBitsNeeded(min: Int64, max: Int64) -> Int {
        precondition(min <= max, "signedBitsNeeded: min \(min) above max \(max)")
        // A value v needs 65 − (leading zeros of v, or of ¬v when v < 0) bits.
        func bits(_ v: Int64) -> Int { 65 - (v < 0 ? ~v : v).leadingZeroBitCount }
        return Swift.max(bits(min), bits(max))
    }
}

// MARK: - Accumulator width and output truncation

/// What happens when the exact sum leaves a b-bit accumulator.
public enum OverflowMode: String, CaseIterable, Sendable {
    /// Two's complement modulo 2^b (what an adder of b bits does, in any order).
    case wrap
    /// Clamp the exact final sum to −2^(b−1)…2^(b−1)−1.
    case saturate
}

/// A b-bit signed accumulator (2…64 bits) and its overflow mode, applied to exact sums.
public struct AccumulatorCap: Equatable, Sendable {
    public let bits: Int
    public let overflow: OverflowMode

    public init(bits: Int, overflow: OverflowMode) {
        precondition((2...64).contains(bits), "AccumulatorCap: width \(bits) outside 2...64")
        self.bits = bits
        self.overflow = overflow
    }

    /// −2^(b−1)…2^(b−1)−1.
    public var range: ClosedRange<Int64> { signedRange(bits) }

    public func apply(_ v: Int64) -> Int64 {
        switch overflow {
        case .wrap:
            let unused = 64 - bits
            return (v << unused) >> unused  // keeps the low b bits, sign-extended
        case .saturate:
            return Swift.min(Swift.max(v, range.lowerBound), range.upperBound)
        }
    }

    public func apply(_ acc: AccTensor) -> AccTensor {
        AccTensor(shape: acc.shape, values: acc.values.map(apply))
    }
}

/// How a w-bit value is narrowed at a layer's output.
public enum OutputTruncation: Equatable, Sendable {
    /// All w bits.
    case full
    /// The n most significant bits: v >>> (w − n) (floor), n in 1…w.
    case keepMSBs(Int)
    /// The n least significant bits with saturation: clamp to the n-bit signed range.
    case keepLSBs(Int)

    /// The width of the result for a `width`-bit input.
    public func outputBits(width: Int) -> Int {
        switch self {
        case .full: return width
        case .keepMSBs(let n), .keepLSBs(let n): return n
        }
    }

    /// Narrows `v`, which must fit `width` signed bits (1…64).
    public func apply(_ v: Int64, width: Int) -> Int64 {
        precondition((1...64).contains(width) && signedRange(width).contains(v),
                     "OutputTruncation: \(v) is not a \(width)-bit signed value")
        switch self {
        case .full:
            return v
        case .keepMSBs(let n):
            precondition((1...width).contains(n), "OutputTruncation: keepMSBs(\(n)) of a \(width)-bit value")
            return v >> (width - n)
        case .keepLSBs(let n):
            precondition((1...64).contains(n), "OutputTruncation: keepLSBs(\(n)) outside 1...64")
            let r = signedRange(n)
            return Swift.min(Swift.max(v, r.lowerBound), r.upperBound)
        }
    }

    public func apply(_ acc: AccTensor, width: Int) -> AccTensor {
        AccTensor(shape: acc.shape, values: acc.values.map { apply($0, width: width) })
    }
}

/// `body` with the array's base address, or nil for a nil or empty array.
func withOptionalPointer<R>(_ values: [Int64]?, _ body: (UnsafePointer<Int64>?) -> R) -> R {
    guard let values else { return body(nil) }
    return values.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// −2^(b−1)…2^(b−1)−1 for 1 ≤ b ≤ 64.
func signedRange(_ bits: Int) -> ClosedRange<Int64> {
    let top = Int64.max >> (64 - bits)
    return (-top - 1)...top
}

// MARK: - Requantization

/// Calls `body(channel, indices)` for every contiguous run of one channel of a tensor of
/// `shape` (channel axis 1, or 0 for rank 1), spread over the cores when large.
func forChannelRuns(_ shape: [Int], _ body: (Int, Range<Int>) -> Void) {
    let channels = channelCount(shape)
    let inner = shape.count >= 2 ? shape.dropFirst(2).reduce(1, *) : 1
    let count = shape.reduce(1, *)
    guard count > 0 else { return }
    Parallel.forRange(count / inner, cost: inner) { runs in
        for run in runs { body(run % channels, (run * inner)..<((run + 1) * inner)) }
    }
}

/// Channels of a tensor: shape[1], or shape[0] for rank 1, or 1 for a scalar.
func channelCount(_ shape: [Int]) -> Int {
    shape.count >= 2 ? shape[1] : (shape.first ?? 1)
}

/// FINN's MultiThreshold with integer thresholds: per channel c an ascending list T[c],
/// output clamp(outBias + #{i : acc ≥ T[c][i]}, grid.minInt, grid.maxInt). An empty list
/// gives outBias; a single list applies to every channel.
public struct MultiThreshold: Equatable, Sendable {
    /// The most levels (thresholds per channel) streamlining builds: 16-bit output grids.
    public static let maxLevels = (1 << 16) - 1

    public let thresholds: [[Int64]]
    public let outBias: Int64
    public let grid: IntQuantGrid

    /// `outBias` defaults to the grid's smallest code (0 unsigned, −2^(b−1) signed).
    public init(thresholds: [[Int64]], outBias: Int64? = nil, grid: IntQuantGrid) {
        precondition(!thresholds.isEmpty, "MultiThreshold: needs one threshold list, or one per channel")
        for (c, t) in thresholds.enumerated() {
            precondition(zip(t, t.dropFirst()).allSatisfy { $0 <= $1 }, "MultiThreshold: thresholds of channel \(c) are not ascending: \(t)")
        }
        self.thresholds = thresholds
        self.outBias = outBias ?? Int64(grid.minInt)
        self.grid = grid
    }

    /// The output code of `acc` in channel `channel`.
    public func apply(_ acc: Int64, channel: Int) -> Int32 {
        thresholds[thresholds.count == 1 ? 0 : channel].withUnsafeBufferPointer { t in
            code(MultiThreshold.count(acc, t.baseAddress, t.count))
        }
    }

    public func apply(_ acc: AccTensor) -> QTensor {
        let channels = channelCount(acc.shape)
        precondition(thresholds.count == 1 || thresholds.count == channels,
                     "MultiThreshold: \(thresholds.count) threshold lists for \(channels) channels of \(acc.shape)")
        let length = thresholds[0].count
        // Narrow lanes need lists of one length and codes ± length inside Int32 (every grid up to 31 bits).
        if acc.count > 0, (1...32767).contains(length), thresholds.allSatisfy({ $0.count == length }),
           grid.minInt - length - 1 >= Int(Int32.min), grid.maxInt + length + 1 <= Int(Int32.max) {
            let inner = acc.rank >= 2 ? acc.shape.dropFirst(2).reduce(1, *) : 1
            guard acc.rank >= 2 && inner == 1 else { return countRuns(acc) }
            // [N, C]: the span of the whole tensor picks the lanes.
            let (lo, hi) = acc.values.withUnsafeBufferPointer { IntegerKernels.extremes($0.baseAddress!, $0.count) }
            let (span, overflow) = hi.subtractingReportingOverflow(lo)
            if !overflow && span <= 65534 {
                return countRows(acc, Int16.self, lo: lo, hi: hi, offset: lo &+ 32768, channels: channels)
            }
            if lo >= Int64(Int32.min) && hi < Int64(Int32.max) {
                return countRows(acc, Int32.self, lo: lo, hi: hi, offset: 0, channels: channels)
            }
        }
        // All lists in one buffer, so the loops touch no Swift arrays.
        let flat = thresholds.flatMap { $0 }
        let starts = thresholds.reduce(into: [0]) { $0.append($0.last! + $1.count) }
        return flat.withUnsafeBufferPointer { t in
            mapChannelRuns(acc) { c, src, dst, n in
                let list = thresholds.count == 1 ? 0 : c
                let first = t.baseAddress.map { $0 + starts[list] }, length = starts[list + 1] - starts[list]
                guard n >= 16, length <= 64, let first else {
                    for i in 0..<n { dst[i] = code(MultiThreshold.count(src[i], first, length)) }
                    return
                }
                // Long runs: one vectorised pass per threshold, counting in the output buffer.
                dst.initialize(repeating: 0, count: n)
                for j in 0..<length {
                    let th = first[j]
                    for i in 0..<n { dst[i] &+= src[i] >= th ? 1 : 0 }
                }
                for i in 0..<n { dst[i] = code(Int(dst[i])) }
            }
        }
    }

    @inline(__always)
    func code(_ count: Int) -> Int32 {
        Int32(Swift.min(Swift.max(outBias + Int64(count), Int64(grid.minInt)), Int64(grid.maxInt)))
    }

    // Counting on narrow lanes, for equally long lists and accumulators all in lo…hi: each
    // value v becomes v − offset in T, each threshold t becomes clamp(t, lo, hi + 1) − offset,
    // which decides v ≥ t exactly as before for every v in lo…hi (a threshold below lo counts
    // for all of them, one above hi for none). T and offset are picked so that these fit T:
    // Int16 with offset lo + 2^15 when hi − lo ≤ 65534, else Int32 with offset 0 inside Int32.
    // Blocks of up to 256 accumulators go through three plain loops (narrow, count 16 at a
    // time in registers, clamp to codes), shapes the compiler reliably turns into vector code.

    /// A threshold narrowed for accumulators in lo…hi.
    @inline(__always)
    static func narrow<T: FixedWidthInteger>(_ t: Int64, lo: Int64, hi: Int64, offset: Int64) -> T {
        T(truncatingIfNeeded: t < lo ? lo &- offset : (t > hi ? (hi &- offset) &+ 1 : t &- offset))
    }

    /// clamp(outBias + count, min, max) for counts 0…length is clamp(base + count, min, max)
    /// with outBias clamped to min − length − 1 … max + 1, which stays in Int32 (`apply` checks
    /// the grid).
    var codeBase: Int32 {
        Int32(Swift.min(Swift.max(outBias, Int64(grid.minInt) - Int64(thresholds[0].count) - 1), Int64(grid.maxInt) + 1))
    }

    /// Counts n ≤ 256 narrowed values v against `thresholds(i)` (one T per lane, or the same
    /// for all), then writes their codes.
    @inline(__always)
    func countBlock<T: FixedWidthInteger & SignedInteger & SIMDScalar>(_ v: UnsafeMutablePointer<T>, _ count: UnsafeMutablePointer<T>, _ n: Int,
                                                                       into dst: UnsafeMutablePointer<Int32>, base: Int32,
                                                                       _ threshold: (Int, Int) -> SIMD16<T>) {
        let length = thresholds[0].count
        for start in stride(from: 0, to: n, by: 16) {
            let x = UnsafeRawPointer(v + start).loadUnaligned(as: SIMD16<T>.self)
            var c = SIMD16<T>()
            for i in 0..<length {
                let t = threshold(i, start)
                for e in 0..<16 { c[e] &+= x[e] >= t[e] ? 1 : 0 }
            }
            UnsafeMutableRawPointer(count + start).storeBytes(of: c, as: SIMD16<T>.self)
        }
        let gmin = Int32(grid.minInt), gmax = Int32(grid.maxInt)
        for i in 0..<n { dst[i] = Swift.min(Swift.max(Int32(truncatingIfNeeded: count[i]) &+ base, gmin), gmax) }
    }

    /// [N, C] accumulators, all in lo…hi: per row, 16 channels at a time against the lists
    /// transposed to [index][channel] (channels padded to 16).
    func countRows<T: FixedWidthInteger & SignedInteger & SIMDScalar>(_ acc: AccTensor, _: T.Type, lo: Int64, hi: Int64, offset: Int64,
                                                                      channels: Int) -> QTensor {
        let length = thresholds[0].count, base = codeBase, padded = (channels + 15) / 16 * 16
        let table: [T] = (0..<length).flatMap { i in
            (0..<padded).map { c in c < channels ? MultiThreshold.narrow(thresholds[thresholds.count == 1 ? 0 : c][i], lo: lo, hi: hi, offset: offset) : 0 }
        }
        let out = [Int32](unsafeUninitializedCapacity: acc.count) { buf, initialized in
            let dst = buf.baseAddress!
            acc.values.withUnsafeBufferPointer { sp in
                table.withUnsafeBufferPointer { tp in
                    Parallel.forRange(acc.count / channels, cost: channels * length) { rows in
                        let scratch = UnsafeMutablePointer<T>.allocate(capacity: 2 * 256)
                        defer { scratch.deallocate() }
                        for r in rows {
                            for c0 in stride(from: 0, to: channels, by: 256) {
                                let n = Swift.min(256, channels - c0), s = sp.baseAddress! + r * channels + c0
                                for i in 0..<n { scratch[i] = T(truncatingIfNeeded: s[i] &- offset) }
                                countBlock(scratch, scratch + 256, n, into: dst + r * channels + c0, base: base) { i, start in
                                    UnsafeRawPointer(tp.baseAddress! + i * padded + c0 + start).loadUnaligned(as: SIMD16<T>.self)
                                }
                            }
                        }
                    }
                }
            }
            initialized = acc.count
        }
        return QTensor(shape: acc.shape, values: out)
    }

    /// Runs of one channel ([N, C, H, W] and the like), in blocks of up to 256 accumulators:
    /// each block's own span picks its lanes (the block is read twice while it is in cache),
    /// falling back to Int64 comparisons.
    func countRuns(_ acc: AccTensor) -> QTensor {
        let length = thresholds[0].count, base = codeBase, channels = channelCount(acc.shape)
        let inner = acc.rank >= 2 ? acc.shape.dropFirst(2).reduce(1, *) : 1
        let flat = thresholds.flatMap { $0 }
        let out = [Int32](unsafeUninitializedCapacity: acc.count) { buf, initialized in
            let dst = buf.baseAddress!
            acc.values.withUnsafeBufferPointer { sp in
                flat.withUnsafeBufferPointer { tp in
                    Parallel.forRange(acc.count / inner, cost: inner * length) { runs in
                        let short = UnsafeMutablePointer<Int16>.allocate(capacity: 2 * 256 + length)
                        let wide = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * 256 + length)
                        defer { short.deallocate(); wide.deallocate() }
                        for run in runs {
                            let t = tp.baseAddress! + (thresholds.count == 1 ? 0 : run % channels) * length
                            for start in stride(from: run * inner, to: (run + 1) * inner, by: 256) {
                                let n = Swift.min(256, (run + 1) * inner - start), src = sp.baseAddress! + start, d = dst + start
                                let (lo, hi) = IntegerKernels.extremes(src, n)
                                let (span, overflow) = hi.subtractingReportingOverflow(lo)
                                if !overflow && span <= 65534 {
                                    countRun(src, n, t, short, lo: lo, hi: hi, offset: lo &+ 32768, base: base, into: d)
                                } else if lo >= Int64(Int32.min) && hi < Int64(Int32.max) {
                                    countRun(src, n, t, wide, lo: lo, hi: hi, offset: 0, base: base, into: d)
                                } else {
                                    for i in 0..<n { d[i] = code(MultiThreshold.count(src[i], t, length)) }
                                }
                            }
                        }
                    }
                }
            }
            initialized = acc.count
        }
        return QTensor(shape: acc.shape, values: out)
    }

    /// n ≤ 256 accumulators in lo…hi against the list t, on T lanes (`scratch`: 512 + length values).
    @inline(__always)
    func countRun<T: FixedWidthInteger & SignedInteger & SIMDScalar>(_ src: UnsafePointer<Int64>, _ n: Int, _ t: UnsafePointer<Int64>,
                                                                     _ scratch: UnsafeMutablePointer<T>, lo: Int64, hi: Int64, offset: Int64,
                                                                     base: Int32, into dst: UnsafeMutablePointer<Int32>) {
        let length = thresholds[0].count, v = scratch, narrowed = scratch + 2 * 256
        for i in 0..<n { v[i] = T(truncatingIfNeeded: src[i] &- offset) }
        for i in 0..<length { narrowed[i] = MultiThreshold.narrow(t[i], lo: lo, hi: hi, offset: offset) }
        countBlock(v, v + 256, n, into: dst, base: base) { i, _ in SIMD16(repeating: narrowed[i]) }
    }

    /// The number of thresholds t[0..<n] (ascending) at or below `acc`.
    @inline(__always)
    static func count(_ acc: Int64, _ t: UnsafePointer<Int64>?, _ n: Int) -> Int {
        guard let t else { return 0 }
        if n <= 16 {
            var below = 0
            for i in 0..<n { below += acc >= t[i] ? 1 : 0 }
            return below
        }
        var lo = 0, hi = n
        while lo < hi {
            let mid = (lo + hi) / 2
            if t[mid] <= acc { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// Requantization by an integer multiplier and a right shift (a fixed-point scale):
/// clamp(R(acc·m/2^s + z), grid.minInt, grid.maxInt), R the grid's rounding mode, computed
/// exactly (see the rounding table at `IntegerOps`). Multipliers, shifts and offsets are
/// each one value or one per channel.
public struct MultiplyShift: Equatable, Sendable {
    public let multipliers: [Int32]
    /// Right shifts 0…62; with multiplier 1, −62…−1 mean a left shift.
    public let shifts: [Int]
    /// Added before rounding, in output codes (a zero point).
    public let offsets: [Int64]
    public let grid: IntQuantGrid
    /// A lowest code above the grid's: the code of 0 when a ReLU comes before the output
    /// quantizer and the grid reaches below it (signed 32-bit activations, zero points).
    public let lowest: Int64?

    public init(multipliers: [Int32], shifts: [Int], offsets: [Int64] = [0], grid: IntQuantGrid, lowest: Int64? = nil) {
        let lengths = Set([multipliers.count, shifts.count, offsets.count].filter { $0 != 1 })
        precondition(!multipliers.isEmpty && !shifts.isEmpty && !offsets.isEmpty && lengths.count <= 1,
                     "MultiplyShift: \(multipliers.count) multipliers, \(shifts.count) shifts, \(offsets.count) offsets (each 1 or one per channel)")
        for c in 0..<max(multipliers.count, shifts.count) {
            let m = multipliers[multipliers.count == 1 ? 0 : c], s = shifts[shifts.count == 1 ? 0 : c]
            precondition((0...62).contains(s) || (m == 1 && (-62...(-1)).contains(s)),
                         "MultiplyShift: channel \(c): shift \(s) outside 0...62 (negative shifts need multiplier 1, got \(m))")
        }
        self.multipliers = multipliers
        self.shifts = shifts
        self.offsets = offsets
        self.grid = grid
        self.lowest = lowest
    }

    /// The clamp bounds: max(G.min, L) … G.max.
    var bounds: (lo: Int64, hi: Int64) { (Swift.max(Int64(grid.minInt), lowest ?? Int64.min), Int64(grid.maxInt)) }

    /// Shift-only requantization (multiplier 1): shift s > 0 divides by 2^s and rounds, s < 0
    /// multiplies by 2^(−s) exactly.
    public static func shifting(by shifts: [Int], offsets: [Int64] = [0], grid: IntQuantGrid, lowest: Int64? = nil) -> MultiplyShift {
        MultiplyShift(multipliers: [1], shifts: shifts, offsets: offsets, grid: grid, lowest: lowest)
    }

    /// The (m, s) with m/2^s closest to a positive `factor` at `bits` bits of precision:
    /// 2^(bits−1) ≤ m < 2^bits (bits in 2…31), m = round-half-even(factor·2^s). When the
    /// normalised shift would leave 0…62 it is clamped there and m loses precision; m must
    /// stay in 1…2^bits − 1.
    public static func approximating(_ factor: Double, bits: Int) -> (multiplier: Int32, shift: Int) {
        precondition(factor > 0 && factor.isFinite, "MultiplyShift.approximating: factor \(factor) must be positive and finite")
        precondition((2...31).contains(bits), "MultiplyShift.approximating: \(bits) bits outside 2...31")
        func scaled(_ s: Int) -> Double { (factor * Double(sign: .plus, exponent: s, significand: 1)).rounded(.toNearestOrEven) }
        // factor = 1.f · 2^e, so factor · 2^(bits−1−e) lies in [2^(bits−1), 2^bits).
        var s = min(max(bits - 1 - Int(factor.exponent), 0), 62)
        var m = scaled(s)
        if m >= Double(1 << bits) && s > 0 {  // rounded up to 2^bits: one bit less
            s -= 1
            m = scaled(s)
        }
        precondition(m >= 1 && m < Double(1 << bits),
                     "MultiplyShift.approximating: factor \(factor) needs a multiplier \(m) outside 1...\((1 << bits) - 1) with shift \(s)")
        return (Int32(m), s)
    }

    /// The output code of `acc` in channel `channel`.
    public func apply(_ acc: Int64, channel: Int) -> Int32 {
        let (multiplier, shift, offset) = parameters(channel)
        return Int32(MultiplyShift.rescale(acc, multiplier: multiplier, shift: shift, offset: offset, mode: grid.rounding,
                                           lo: bounds.lo, hi: bounds.hi))
    }

    public func apply(_ acc: AccTensor) -> QTensor {
        let channels = channelCount(acc.shape)
        for n in [multipliers.count, shifts.count, offsets.count] {
            precondition(n == 1 || n == channels, "MultiplyShift: \(n) parameters for \(channels) channels of \(acc.shape)")
        }
        let perChannel = (0..<max(multipliers.count, shifts.count, offsets.count)).map(parameters)
        let mode = grid.rounding, (lo, hi) = bounds
        return mapChannelRuns(acc) { c, src, dst, n in
            let (multiplier, shift, offset) = perChannel[perChannel.count == 1 ? 0 : c]
            for i in 0..<n {
                dst[i] = Int32(MultiplyShift.rescale(src[i], multiplier: multiplier, shift: shift, offset: offset, mode: mode, lo: lo, hi: hi))
            }
        }
    }

    /// Channel c's multiplier, right shift ≥ 0 and offset; a left shift becomes the multiplier 2^(−s).
    func parameters(_ c: Int) -> (multiplier: Int64, shift: Int, offset: Int64) {
        let m = multipliers[multipliers.count == 1 ? 0 : c], s = shifts[shifts.count == 1 ? 0 : c]
        let z = offsets[offsets.count == 1 ? 0 : c]
        return s >= 0 ? (Int64(m), s, z) : (Int64(1) << -s, 0, z)
    }

    /// clamp(R(acc·multiplier/2^shift + offset), lo, hi) exactly, with the 128-bit product
    /// (|multiplier| ≤ 2^62, shift 0…62; lo, hi within ±2^62).
    @inline(__always)
    static func rescale(_ acc: Int64, multiplier: Int64, shift s: Int, offset: Int64, mode: RoundingMode,
                        lo: Int64, hi: Int64) -> Int64 {
        let (high, low) = acc.multipliedFullWidth(by: multiplier)
        // p >>> s as a 128-bit value (top, bottom), and the remainder r = low s bits of p.
        let bottom = s == 0 ? low : (low >> UInt64(s)) | (UInt64(bitPattern: high) << UInt64(64 - s))
        let top = high >> Int64(s)
        let r = s == 0 ? 0 : low & ((UInt64(1) << UInt64(s)) - 1)
        guard top == Int64(bitPattern: bottom) >> 63 else { return top < 0 ? lo : hi }  // ⌊p/2^s⌋ beyond 64 bits
        let (f, overflow) = Int64(bitPattern: bottom).addingReportingOverflow(offset)
        if overflow { return offset < 0 ? lo : hi }
        // Rounding adds 0 or 1, so f above hi or below lo − 1 decides the clamp already.
        if f > hi { return hi }
        if f < lo - 1 { return lo }
        let half: UInt64 = s == 0 ? 1 : UInt64(1) << UInt64(s - 1)  // for s = 0, r = 0 is below any tie
        let up: Bool
        switch mode {
        case .round: up = r > half || (r == half && f & 1 != 0)
        case .halfUp: up = r > half || (r == half && f >= 0)
        case .halfDown: up = r > half || (r == half && f < 0)
        case .floor: up = false
        case .ceil: up = r != 0
        case .down: up = r != 0 && f < 0
        case .up: up = r != 0 && f >= 0
        }
        return Swift.min(Swift.max(f + (up ? 1 : 0), lo), hi)
    }
}

/// A lookup-table activation: one output code per integer input lo…hi. Inputs below lo use
/// the first entry, inputs above hi the last (they are clamped to lo…hi first).
public struct LookupTable: Equatable, Sendable {
    public let lo: Int64
    public let codes: [Int32]

    public init(lo: Int64, codes: [Int32]) {
        precondition(!codes.isEmpty, "LookupTable: needs at least one entry")
        precondition(!lo.addingReportingOverflow(Int64(codes.count - 1)).overflow, "LookupTable: lo \(lo) + \(codes.count) entries exceeds 64 bits")
        self.lo = lo
        self.codes = codes
    }

    /// The table of `f` over `inputs`.
    public init(inputs: ClosedRange<Int64>, _ f: (Int64) -> Int32) {
        precondition(inputs.upperBound - inputs.lowerBound < 1 << 24, "LookupTable: \(inputs) is too large for a table")
        self.init(lo: inputs.lowerBound, codes: inputs.map(f))
    }

    /// The last input with its own entry.
    public var hi: Int64 { lo + Int64(codes.count - 1) }

    public func apply(_ v: Int64) -> Int32 {
        codes[Int(Swift.min(Swift.max(v, lo), hi) - lo)]
    }

    public func apply(_ x: AccTensor) -> QTensor {
        QTensor(shape: x.shape, values: x.values.map(apply))
    }

    public func apply(_ x: QTensor) -> QTensor {
        QTensor(shape: x.shape, values: x.values.map { apply(Int64($0)) })
    }
}

/// Requantizes accumulators run by run: `body(channel, src, dst, n)` maps the n accumulators
/// at src (all of one channel) to codes at dst. Runs are spread over the cores when large.
func mapChannelRuns(_ acc: AccTensor,
                    _ body: (Int, UnsafePointer<Int64>, UnsafeMutablePointer<Int32>, Int) -> Void) -> QTensor {
    let out = [Int32](unsafeUninitializedCapacity: acc.count) { buf, initialized in
        if let dst = buf.baseAddress {
            acc.values.withUnsafeBufferPointer { src in
                forChannelRuns(acc.shape) { c, run in
                    body(c, src.baseAddress! + run.lowerBound, dst + run.lowerBound, run.count)
                }
            }
        }
        initialized = acc.count
    }
    return QTensor(shape: acc.shape, values: out)
}
