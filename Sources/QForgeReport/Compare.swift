import Foundation
import QForgeData
import QForgeInteger
import QForgeNN
import QForgeQuant
import QForgeTensor

/// Per-layer agreement between the float model, the fake-quantized model (Float32, as trained)
/// and the integer model (seed 001's Table 1, for every layer).
public struct LayerComparison: Sendable {
    public var name: String
    public var requantization: String
    public var accumulatorBits: Int
    /// Max and mean |a − b| over every activation of the layer, in the float model's units.
    public var floatVsFakeQuant: (max: Double, mean: Double)
    public var fakeQuantVsInteger: (max: Double, mean: Double)
    public var floatVsInteger: (max: Double, mean: Double)
    /// Integer codes that differ from the fake-quantized model evaluated in Double (exact dot
    /// products, Double epilogue) on the same layer input.
    public var mismatches: Int
    /// Largest such difference in code steps.
    public var maxStepDifference: Int
    /// Codes where the Float32 fake-quantized model and the integer layer, given the same
    /// input codes (the Float32 model's), differ and the Double value sits within
    /// `tieTolerance` steps of a rounding tie (x.5): Float32 arithmetic decides those.
    public var float32TieFlips: Int
    /// Codes where the Float32 model differs farther from a tie, but by no more than the
    /// Float32 error bound of its own dot product allows: grids wider than Float32's 24-bit
    /// significand (seed 000's 32-bit activations), whose codes Float32 cannot compute exactly.
    public var float32BoundedDifferences: Int
    /// The largest such difference, in code steps.
    public var maxBoundedDifference: Int
    /// Integer codes that differ from the Float32 model beyond both (should be 0).
    public var float32OtherMismatches: Int
    /// The largest distance from a tie (in code steps) among the Float32 mismatches.
    public var maxTieDistance: Double
    public var values: Int
}

public struct ComparisonReport: Sendable {
    public var layers: [LayerComparison]
    public var samples: Int
    /// Σ mismatches over layers: integer vs Double fake-quantized reference.
    public var outputMismatches: Int { layers.reduce(0) { $0 + $1.mismatches } }
    public var float32TieFlips: Int { layers.reduce(0) { $0 + $1.float32TieFlips } }
    /// Share of samples where the integer and the Float32 fake-quantized model pick the same class.
    public var top1Agreement: Double?
    public var floatAccuracy: Double?
    public var fakeQuantAccuracy: Double?
    public var integerAccuracy: Double?
}

/// Accumulates max/mean |a − b|.
struct DifferenceStats {
    var max = 0.0, sum = 0.0, count = 0
    mutating func add(_ a: Double, _ b: Double) { let d = abs(a - b); max = Swift.max(max, d); sum += d; count += 1 }
    var result: (max: Double, mean: Double) { (max, count == 0 ? 0 : sum / Double(count)) }
}

/// Compares a quantized model with its integer model on `data` (raw inputs), in batches.
///
/// A Float32 mismatch counts as a tie flip when the Double value lies within `tieTolerance`
/// code steps of x.5 (Float32 sums of a few hundred products are off by ~1e-5 steps;
/// within that distance the order of additions decides the rounding).
public func compare(_ model: Model, integer: IntegerModel, on data: Dataset, batchSize: Int = 500,
                    tieTolerance: Double = 1e-3) throws -> ComparisonReport {
    let layerIndex: [Int] = try integer.layers.map { l in
        let path = String(l.name.split(separator: "/").first ?? "")
        guard path.hasPrefix("layers."), let i = Int(path.dropFirst(7)), i < model.network.layers.count else {
            throw StreamlineError.unmapped(l.name)
        }
        return i
    }
    let quantizers = model.network.layers.flatMap { ($0 as? QuantizedLayer)?.quantizers.map(\.1) ?? [] }
    var stats = integer.layers.map { _ in (fvq: DifferenceStats(), qvi: DifferenceStats(), fvi: DifferenceStats()) }
    var mismatches = [Int](repeating: 0, count: integer.layers.count), maxSteps = mismatches, ties = mismatches, others = mismatches
    var tieDistance = [Double](repeating: 0, count: integer.layers.count), bounded = mismatches, boundedSteps = mismatches
    var agree = 0, correct = (float: 0, fake: 0, integer: 0), seen = 0
    let labels = data.targets.labels
    var start = 0
    while start < data.count {
        let end = Swift.min(data.count, start + batchSize)
        let x = model.prepareInputs(data.inputs.slice(axis: 0, start..<end))
        let n = end - start
        func taps() -> [Tensor] {
            withoutGradients {
                LayerContext.with(.inference) {
                    var h = x, out: [Tensor] = []
                    for layer in model.network.layers { h = layer(h); out.append(h) }
                    return out
                }
            }
        }
        let fake = taps()
        for q in quantizers { q.observer = { _ in } }
        let float = taps()
        for q in quantizers { q.observer = nil }
        var codes = integer.quantizeInput(x)
        // The Float32 model's own input codes of each layer: its mismatches are judged locally,
        // so a tie flip in one layer does not count again in the layers after it.
        var floatChainCodes = codes
        for (k, layer) in integer.layers.enumerated() {
            let f = float[layerIndex[k]].scalars, fq = fake[layerIndex[k]].scalars
            let acc = layer.accumulate(codes)
            if let out = layer.output {
                let next = layer.requantize(acc)
                // Products are the cost here: reuse `acc` where the exact or the Float32 chain's
                // input gives the same accumulators.
                let uncapped = layer.accumulatorCap == nil && layer.droppedBits == 0
                let reference = layer.referenceCodes(uncapped ? acc : layer.accumulate(codes, capped: false))
                let sameInput = floatChainCodes == codes
                let local = sameInput ? acc : layer.accumulate(floatChainCodes)
                let localNext = sameInput ? next : layer.requantize(local)
                let channels = acc.shape[1], per = acc.count / Swift.max(n * channels, 1)
                var fakeCodes = [Int32](repeating: 0, count: next.count)
                var farFromTie: [Int] = []
                for i in 0..<next.count {
                    let code = next.values[i], dq = out.value(code)
                    stats[k].fvq.add(Double(f[i]), Double(fq[i]))
                    stats[k].qvi.add(Double(fq[i]), dq)
                    stats[k].fvi.add(Double(f[i]), dq)
                    let step = abs(Int(code) - Int(reference.values[i]))
                    if step != 0 { mismatches[k] += 1; maxSteps[k] = Swift.max(maxSteps[k], step) }
                    // (Clamped: Float32 holds a 32-bit grid's top code 2^31 − 1 as 2^31.)
                    let fqCode = (Double(fq[i]) / out.scale).rounded() + Double(out.zeroPoint)
                    fakeCodes[i] = Int32(Swift.min(Swift.max(fqCode, Double(out.grid.minInt)), Double(out.grid.maxInt)))
                    if fakeCodes[i] != localNext.values[i] {
                        let c = (i / per) % channels
                        let distance = tieDistanceOf(layer, local.values[i], channel: c)
                        if distance < tieTolerance { ties[k] += 1; tieDistance[k] = Swift.max(tieDistance[k], distance) } else { farFromTie.append(i) }
                    }
                }
                if !farFromTie.isEmpty {
                    // Judge the rest by the Float32 error bound of the float model's own sums.
                    let magnitudes = absoluteProducts(layer, floatChainCodes)
                    for i in farFromTie {
                        let c = (i / per) % channels
                        let (steps, bound) = float32Difference(layer, exact: local.values[i], magnitude: magnitudes.values[i], channel: c,
                                                               float32Code: fakeCodes[i])
                        if steps <= 0.5 + tieTolerance + bound {
                            bounded[k] += 1
                            boundedSteps[k] = Swift.max(boundedSteps[k], abs(Int(fakeCodes[i]) - Int(localNext.values[i])))
                        } else {
                            others[k] += 1
                        }
                    }
                }
                floatChainCodes = QTensor(shape: next.shape, values: fakeCodes)
                codes = next
            } else {
                let logits = integer.dequantized(acc)
                for i in 0..<logits.count {
                    stats[k].fvq.add(Double(f[i]), Double(fq[i]))
                    stats[k].qvi.add(Double(fq[i]), logits[i])
                    stats[k].fvi.add(Double(f[i]), logits[i])
                }
                if model.task == .classification {
                    let m = acc.shape[1]
                    for r in 0..<n {
                        func argmax<T: Comparable>(_ v: ArraySlice<T>) -> Int { v.indices.max { v[$0] < v[$1] || (v[$0] == v[$1] && $0 > $1) }! - v.startIndex }
                        let ai = argmax(logits[(r * m)..<((r + 1) * m)]), aq = argmax(fq[(r * m)..<((r + 1) * m)])
                        let af = argmax(f[(r * m)..<((r + 1) * m)])
                        if ai == aq { agree += 1 }
                        if let labels {
                            let y = labels.scalars[start + r]
                            if ai == y { correct.integer += 1 }
                            if aq == y { correct.fake += 1 }
                            if af == y { correct.float += 1 }
                        }
                    }
                }
            }
        }
        seen += n
        start = end
    }
    let rows = integer.layers.enumerated().map { k, l in
        LayerComparison(name: l.name, requantization: l.requantization.formName + (l.lookup.map { " + \($0.function) table" } ?? ""), accumulatorBits: l.accumulatorBits,
                        floatVsFakeQuant: stats[k].fvq.result, fakeQuantVsInteger: stats[k].qvi.result, floatVsInteger: stats[k].fvi.result,
                        mismatches: mismatches[k], maxStepDifference: maxSteps[k], float32TieFlips: ties[k],
                        float32BoundedDifferences: bounded[k], maxBoundedDifference: boundedSteps[k], float32OtherMismatches: others[k],
                        maxTieDistance: tieDistance[k],
                        values: stats[k].fvq.count)
    }
    let classify = model.task == .classification
    let hasLabels = classify && labels != nil
    func share(_ v: Int) -> Double? { hasLabels ? Double(v) / Double(Swift.max(seen, 1)) : nil }
    return ComparisonReport(layers: rows, samples: seen, top1Agreement: classify ? Double(agree) / Double(Swift.max(seen, 1)) : nil,
                            floatAccuracy: share(correct.float), fakeQuantAccuracy: share(correct.fake), integerAccuracy: share(correct.integer))
}

/// How far (in code steps) from a rounding tie the layer's Double value of `acc` lies: at the
/// requantized grid, and for a lookup activation also at the output grid (its function's
/// Float32 value may round either way there); the nearer of the two.
func tieDistanceOf(_ layer: IntegerLayer, _ acc: Int64, channel c: Int) -> Double {
    func distance(_ v: Double) -> Double { abs(abs(v - v.rounded(.down)) - 0.5) }
    let grid = layer.requantizedGrid!
    let pre = distance(layer.epilogueValue(acc, channel: c) / grid.scale)
    guard let lookup = layer.lookup, let out = layer.output else { return pre }
    let q = layer.requantizedCode(acc, channel: c)
    return Swift.min(pre, distance(lookup.function.apply(grid.value(q), c) / out.scale))
}

/// Σ_k |x_k|·|w[m,k]| for every output of the layer (x = code − zero point after the code
/// ops): the magnitude that bounds the rounding error of a float sum of the same products.
func absoluteProducts(_ layer: IntegerLayer, _ codes: QTensor) -> AccTensor {
    let x = layer.applyingCodeOps(codes)
    let z = Int32(layer.input.zeroPoint)
    let ax = QTensor(shape: x.shape, values: x.values.map { abs($0 - z) })
    let aw = QTensor(shape: layer.product.weights.shape, values: layer.product.weights.values.map { abs($0) })
    switch layer.product.kind {
    case .gemm: return IntegerOps.matmul(ax.rank == 2 ? ax : ax.flattened(), weight: aw)
    case let .conv(stride, padding): return IntegerOps.conv2d(ax, weight: aw, stride: (stride, stride), padding: (padding, padding))
    }
}

/// How far (in steps of the requantized grid) the Float32 model's code lies from the exact
/// value of accumulator `exact`, and the bound Float32 arithmetic allows: a float sum of K
/// products of rounded inputs errs by at most (K + 1)·u·Σ|x||w| (u = 2^−24), and the epilogue
/// (bias, BatchNorm, scale) adds a few u of the value; (K + 8)·u·(Σ|x||w|·|slope| + |v|) covers both.
func float32Difference(_ layer: IntegerLayer, exact: Int64, magnitude: Int64, channel c: Int, float32Code: Int32) -> (steps: Double, bound: Double) {
    // A lookup layer's codes lie on its output grid, past the function: ties are its only excuse.
    guard layer.lookup == nil, let grid = layer.output else { return (.infinity, 0) }
    var slope = 1 / grid.scale  // accumulator → output steps
    for op in layer.epilogue {
        switch op {
        case .scale(let f): slope *= abs(f[f.count == 1 ? 0 : c])
        case let .batchNorm(_, factor, _): slope *= abs(factor[factor.count == 1 ? 0 : c])
        default: break
        }
    }
    let v = layer.epilogueValue(exact, channel: c) / grid.scale + Double(grid.zeroPoint)
    let k = Double(layer.product.weights.count / Swift.max(layer.product.weights.shape[0], 1))
    return (abs(v - Double(float32Code)), (k + 8) * 0x1p-24 * (Double(magnitude) * slope + abs(v)))
}

extension StreamlineError {
    static func unmapped(_ name: String) -> StreamlineError {
        StreamlineError(name, "no QForge layer path (layers.N) to compare with")
    }
}

/// The integer model's outputs for raw inputs, in the float model's output units (logits, or
/// predictions in target units for regression), in batches over both cores.
public func integerPredictions(_ model: Model, integer: IntegerModel, inputs: Tensor, batchSize: Int = 1000) -> Tensor {
    var parts: [Tensor] = []
    var start = 0
    while start < inputs.shape[0] {
        let end = Swift.min(inputs.shape[0], start + batchSize)
        let codes = integer.quantizeInput(model.prepareInputs(inputs.slice(axis: 0, start..<end)))
        let acc = integer.outputs(codes)
        parts.append(Tensor(shape: acc.shape, scalars: integer.dequantized(acc).map { Float($0) }))
        start = end
    }
    let out = Tensor.concat(parts, axis: 0)
    return model.targetScaler?.invert(out) ?? out
}

/// Evaluates the integer model like `Model.evaluate`: accuracy or R² per output.
public func evaluateInteger(_ model: Model, integer: IntegerModel, on data: Dataset) throws -> Evaluation {
    try model.checkCompatible(with: data)
    return Model.score(integerPredictions(model, integer: integer, inputs: data.inputs), against: data)
}

extension Model {
    /// Streamlines this quantized model into its integer model.
    public func integerModel(options: StreamlineOptions = StreamlineOptions()) throws -> IntegerModel {
        let (graph, tensors) = try lowered()
        return try streamline(graph, tensors: tensors, options: options)
    }
}
