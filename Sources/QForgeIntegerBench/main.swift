import Foundation
import QForgeInteger
import QForgeTensor

// Times the integer layer stacks of the `mlp` and `cnn` presets on random codes of their widths
// (weights −7…7, activations 0…15 from 15 thresholds per channel, first input 0…255), and
// float32 products of the same shapes. Release builds only:
//
//     swift run -c release QForgeIntegerBench [runs] [mlp batch] [cnn batch]
//     swift run -c release QForgeIntegerBench [runs] [batch] MODEL.int ...
//
// The second form times `IntegerModel.run` of integer model files (`qforge compile-int`) on
// random input codes of their input grid (the checksum printed with the rate is the first
// output's), then a checksum of every code and output of one pass (equal checksums across
// versions: same results).
//
// "end to end" is products, biases, MultiThreshold activations, max-pools and flattening;
// "products only" is the matmul / conv2d calls alone. Besides the median wall-clock rate,
// each line gives the rate per CPU-second times the core count: what the machine would do if
// no other process shared its cores (it assumes the work splits evenly over them).

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let modelFiles = CommandLine.arguments.dropFirst().filter { Int($0) == nil }
let runs = max(arguments.first ?? 7, 1)
let mlpBatch = arguments.count > 1 ? arguments[1] : 256
// Smaller: a convolution's Int64 outputs (100 KB per sample for conv1) then stay in cache.
let cnnBatch = arguments.count > 2 ? arguments[2] : 32
var batch = mlpBatch
let samples = 10_000

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

/// User plus system CPU seconds of this process so far.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) * 1e-6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// Prints the median samples/s of `runs` timed passes (after one warm-up pass) of `pass`,
/// which returns a checksum (so nothing is optimised away, and paths can be compared).
func measure(_ name: String, _ pass: () -> Int64) {
    var check = pass()
    var rates = [Double](), cpuRates = [Double]()
    for _ in 0..<runs {
        let start = now(), cpu = cpuSeconds()
        check = pass()
        rates.append(Double(samples) / (now() - start))
        cpuRates.append(Double(samples * Parallel.coreCount) / (cpuSeconds() - cpu))
    }
    let shown = rates.sorted().map { String(format: "%.0f", $0) }.joined(separator: " ")
    let label = name.padding(toLength: 46, withPad: " ", startingAt: 0)
    print(label + String(format: "%9.0f samples/s  (%.0f per CPU-s × %d; runs: %@; checksum %lld)", median(rates), median(cpuRates),
                         Parallel.coreCount, shown as NSString, check))
}

var rng = SeededRandom(seed: 2024)
func codes(_ shape: [Int], _ range: ClosedRange<Int32>) -> QTensor {
    QTensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Int32.random(in: range, using: &rng) })
}
func biases(_ count: Int, _ spread: Int64) -> [Int64] { (0..<count).map { _ in Int64.random(in: -spread...spread, using: &rng) } }

/// Fifteen ascending thresholds per channel spread over ±`spread`: a 4-bit unsigned activation.
func activation(channels: Int, spread: Int64) -> MultiThreshold {
    let list = (0..<15).map { i in -spread + Int64(i) * 2 * spread / 14 }
    return MultiThreshold(thresholds: Array(repeating: list, count: channels), grid: IntQuantGrid(bitWidth: 4, signed: false))
}

/// Rows lo..<hi of a [N, …] tensor.
func rows(_ x: QTensor, _ lo: Int, _ hi: Int) -> QTensor {
    let per = x.count / x.shape[0]
    return QTensor(shape: [hi - lo] + x.shape.dropFirst(), values: Array(x.values[(lo * per)..<(hi * per)]))
}

/// Runs `body` on consecutive batches of `x`, summing its checksums.
func batches(_ x: QTensor, _ body: (QTensor) -> Int64) -> Int64 {
    var sum: Int64 = 0
    for lo in stride(from: 0, to: x.shape[0], by: batch) { sum &+= body(rows(x, lo, min(lo + batch, x.shape[0]))) }
    return sum
}

func checksum(_ acc: AccTensor) -> Int64 { acc.values.reduce(0, &+) }

func floatCopy(_ q: QTensor) -> Tensor { Tensor(shape: q.shape, scalars: q.values.map(Float.init)) }

/// The batches of x as float32 tensors (made before timing).
func floatBatchesOf(_ x: QTensor) -> [Tensor] {
    stride(from: 0, to: x.shape[0], by: batch).map { lo in floatCopy(rows(x, lo, min(lo + batch, x.shape[0]))) }
}

/// Float32 copies of the first n rows.
func floatRows(_ t: Tensor, _ n: Int) -> Tensor {
    Tensor(shape: [n] + t.shape.dropFirst(), scalars: Array(t.scalars.prefix(n * t.count / t.shape[0])))
}

print("QForgeIntegerBench: \(samples) samples, batches mlp \(mlpBatch) / cnn \(cnnBatch), median of \(runs) runs; \(Parallel.coreCount) cores; "
      + "GEMM \(GEMM.backend.rawValue) (\(GEMM.openBLASCoreType ?? "default")); Int16 kernels \(IntegerOps.availableInt16Kernels.map(\.rawValue))")

/// A checksum of every value of a run (position-weighted, so reordered values change it).
func checksum(_ trace: IntegerModel.Trace) -> Int64 {
    var h: Int64 = 0
    for t in trace.codes { for v in t.values { h = h &* 1_000_003 &+ Int64(v) } }
    for v in trace.outputs.values { h = h &* 1_000_003 &+ v }
    return h
}

if !modelFiles.isEmpty {
    let modelBatch = arguments.count > 1 ? arguments[1] : 1000
    for path in modelFiles {
        let model: IntegerModel
        do { model = try IntegerModelFile.load(path) } catch { print("\(path): \(error)"); continue }
        let g = model.inputQuantizer.grid
        print("\(path): " + model.executionSummary.joined(separator: "; "))
        let x = codes([samples] + model.inputShape, Int32(g.minInt)...Int32(g.maxInt))
        let parts = stride(from: 0, to: samples, by: modelBatch).map { rows(x, $0, min($0 + modelBatch, samples)) }
        measure("\(path) run (batch \(modelBatch))") { parts.reduce(0) { $0 &+ model.run($1).outputs.values[0] } }
        measure("\(path) outputs (batch \(modelBatch))") { parts.reduce(0) { $0 &+ checksum(model.outputs($1)) } }
        let same = parts.allSatisfy { model.outputs($0) == model.run($0).outputs }
        print("  outputs equal run's: \(same)")
        print("  checksum of all codes and outputs: \(parts.reduce(0) { $0 &* 31 &+ checksum(model.run($1)) })")
    }
    exit(0)
}

/// A layer's path for inputs 0…bound, with its Int16 chunk (k-pairs per 16-bit sum) for any
/// inputs within ±bound and for unsigned ones.
func describe(_ name: String, _ weights: PackedWeights, _ bound: Int64) -> String {
    let symmetric = weights.int16Chunk(maxAbsInput: bound), unsigned = weights.int16Chunk(lo: 0, hi: bound, maxAbsInput: bound)
    let pairs = (weights.weight.count / max(weights.weight.shape[0], 1) + 1) / 2
    return "\(name) \(IntegerOps.productPath(weight: weights, maxAbsInput: bound))"
        + (symmetric.map { " (chunk \($0)/\(unsigned ?? $0) of \(pairs) pairs)" } ?? "")
}

/// Each timing once per available Int16 kernel (widest first).
let kernels = IntegerOps.availableInt16Kernels.reversed()

// MARK: - mlp: 784 → 256 → 256 → 10

do {
    let w1 = codes([256, 784], -7...7), w2 = codes([256, 256], -7...7), w3 = codes([10, 256], -7...7)
    let b1 = biases(256, 500), b2 = biases(256, 50), b3 = biases(10, 50)
    let p1 = PackedWeights(w1), p2 = PackedWeights(w2), p3 = PackedWeights(w3)
    let a1 = activation(channels: 256, spread: 20_000), a2 = activation(channels: 256, spread: 1_000)
    let x = codes([samples, 784], 0...255)
    print("mlp paths: " + zip(["fc1", "fc2", "fc3"], [(p1, Int64(255)), (p2, Int64(15)), (p3, Int64(15))]).map { describe($0, $1.0, $1.1) }.joined(separator: ", "))
    let h = codes([batch, 256], 0...15)
    for kernel in kernels {
        IntegerOps.int16Kernel = kernel
        measure("mlp integer end to end (\(kernel.rawValue))") {
            batches(x) { xb in
                let h1 = a1.apply(IntegerOps.matmul(xb, weight: p1, bias: b1, maxAbsInput: 255))
                let h2 = a2.apply(IntegerOps.matmul(h1, weight: p2, bias: b2, maxAbsInput: 15))
                return checksum(IntegerOps.matmul(h2, weight: p3, bias: b3, maxAbsInput: 15))
            }
        }
        measure("mlp integer products only (\(kernel.rawValue))") {
            batches(x) { xb in
                let hb = rows(h, 0, xb.shape[0])
                return checksum(IntegerOps.matmul(xb, weight: p1, maxAbsInput: 255)) &+ checksum(IntegerOps.matmul(hb, weight: p2, maxAbsInput: 15))
                    &+ checksum(IntegerOps.matmul(hb, weight: p3, maxAbsInput: 15))
            }
        }
    }
    measure("mlp integer end to end (float32 path)") {
        batches(x) { xb in
            let h1 = a1.apply(IntegerOps.matmul(xb, weight: p1, bias: b1, maxAbsInput: 255, path: .float32))
            let h2 = a2.apply(IntegerOps.matmul(h1, weight: p2, bias: b2, maxAbsInput: 15, path: .float32))
            return checksum(IntegerOps.matmul(h2, weight: p3, bias: b3, maxAbsInput: 15, path: .float32))
        }
    }
    let f1 = floatCopy(w1), f2 = floatCopy(w2), f3 = floatCopy(w3)
    let floatBatches = floatBatchesOf(x), fh = floatCopy(h)
    measure("mlp float32 sgemm, products only") {
        var sum: Int64 = 0
        for xb in floatBatches {
            let hb = floatRows(fh, xb.shape[0])
            let y1 = Tensor.linear(xb, weight: f1, bias: nil), y2 = Tensor.linear(hb, weight: f2, bias: nil)
            let y3 = Tensor.linear(hb, weight: f3, bias: nil)
            sum &+= Int64(y1.scalars[0] + y2.scalars[0] + y3.scalars[0])
        }
        return sum
    }
}

// MARK: - cnn: conv 1→16, 16→32, 32→64 (3×3, padding 1), 2×2 max-pools, 3136 → 128 → 10

do {
    batch = cnnBatch
    let k1 = codes([16, 1, 3, 3], -7...7), k2 = codes([32, 16, 3, 3], -7...7), k3 = codes([64, 32, 3, 3], -7...7)
    let w4 = codes([128, 3136], -7...7), w5 = codes([10, 128], -7...7)
    let p1 = PackedWeights(k1), p2 = PackedWeights(k2), p3 = PackedWeights(k3), p4 = PackedWeights(w4), p5 = PackedWeights(w5)
    let b1 = biases(16, 100), b2 = biases(32, 50), b3 = biases(64, 50), b4 = biases(128, 50), b5 = biases(10, 50)
    let a1 = activation(channels: 16, spread: 3_000), a2 = activation(channels: 32, spread: 1_000)
    let a3 = activation(channels: 64, spread: 1_000), a4 = activation(channels: 128, spread: 5_000)
    let x = codes([samples, 1, 28, 28], 0...255)
    let inputBounds: [Int64] = [255, 15, 15, 15, 15]
    print("cnn paths: " + zip(["conv1", "conv2", "conv3", "fc1", "fc2"], zip([p1, p2, p3, p4, p5], inputBounds)).map { describe($0, $1.0, $1.1) }
        .joined(separator: ", "))
    func forward(_ xb: QTensor, _ path: IntegerOps.ProductPath?) -> Int64 {
        var h = a1.apply(IntegerOps.conv2d(xb, weight: p1, bias: b1, padding: (1, 1), maxAbsInput: 255, path: path))
        h = IntegerOps.maxPool2d(h, kernel: (2, 2))
        h = IntegerOps.maxPool2d(a2.apply(IntegerOps.conv2d(h, weight: p2, bias: b2, padding: (1, 1), maxAbsInput: 15, path: path)), kernel: (2, 2))
        h = a3.apply(IntegerOps.conv2d(h, weight: p3, bias: b3, padding: (1, 1), maxAbsInput: 15, path: path)).flattened()
        h = a4.apply(IntegerOps.matmul(h, weight: p4, bias: b4, maxAbsInput: 15, path: path))
        return checksum(IntegerOps.matmul(h, weight: p5, bias: b5, maxAbsInput: 15, path: path))
    }
    let h2 = codes([batch, 16, 14, 14], 0...15), h3 = codes([batch, 32, 7, 7], 0...15)
    let h4 = codes([batch, 3136], 0...15), h5 = codes([batch, 128], 0...15)
    for kernel in kernels {
        IntegerOps.int16Kernel = kernel
        measure("cnn integer end to end (\(kernel.rawValue))") { batches(x) { forward($0, nil) } }
        measure("cnn integer products only (\(kernel.rawValue))") {
            batches(x) { xb in
                let n = xb.shape[0]
                return checksum(IntegerOps.conv2d(xb, weight: p1, padding: (1, 1), maxAbsInput: 255))
                    &+ checksum(IntegerOps.conv2d(rows(h2, 0, n), weight: p2, padding: (1, 1), maxAbsInput: 15))
                    &+ checksum(IntegerOps.conv2d(rows(h3, 0, n), weight: p3, padding: (1, 1), maxAbsInput: 15))
                    &+ checksum(IntegerOps.matmul(rows(h4, 0, n), weight: p4, maxAbsInput: 15))
                    &+ checksum(IntegerOps.matmul(rows(h5, 0, n), weight: p5, maxAbsInput: 15))
            }
        }
    }
    measure("cnn integer end to end (float32 path)") { batches(x) { forward($0, .float32) } }
    let fk1 = floatCopy(k1), fk2 = floatCopy(k2), fk3 = floatCopy(k3), f4 = floatCopy(w4), f5 = floatCopy(w5)
    let floatBatches = floatBatchesOf(x), fh2 = floatCopy(h2), fh3 = floatCopy(h3), fh4 = floatCopy(h4), fh5 = floatCopy(h5)
    measure("cnn float32 im2col + sgemm, products only") {
        var sum: Int64 = 0
        for xb in floatBatches {
            let n = xb.shape[0]
            let y1 = Tensor.conv2d(xb, weight: fk1, padding: (1, 1))
            let y2 = Tensor.conv2d(floatRows(fh2, n), weight: fk2, padding: (1, 1))
            let y3 = Tensor.conv2d(floatRows(fh3, n), weight: fk3, padding: (1, 1))
            let y4 = Tensor.linear(floatRows(fh4, n), weight: f4, bias: nil), y5 = Tensor.linear(floatRows(fh5, n), weight: f5, bias: nil)
            sum &+= Int64(y1.scalars[0] + y2.scalars[0] + y3.scalars[0] + y4.scalars[0] + y5.scalars[0])
        }
        return sum
    }
}
