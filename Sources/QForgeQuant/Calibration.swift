import Foundation
import QForgeData
import QForgeNN
import QForgeTensor

/// How post-training quantization picks scales from calibration data.
public enum CalibrationMethod: String, CaseIterable, Sendable {
    /// Activations: max|x| over all calibration batches / maxInt. Weights: max|w| / maxInt.
    case max
    /// Activations: the 99.99th percentile of |x| per batch, averaged over batches, / maxInt
    /// (clips rare outliers). Weights: max|w| / maxInt, as Brevitas does.
    case percentile
    /// Activations and weights: the scale that minimises the squared quantization error
    /// Σ (fq(x) − x)² over 200 candidates from 0.005·max|x| to max|x| (per channel for
    /// per-channel weights).
    case mse
}

/// Post-training quantization settings.
public struct CalibrationOptions: Sendable {
    public var method: CalibrationMethod
    /// Adds the mean output error that weight quantization causes back to each layer's bias
    /// (per output channel), layer by layer on the calibration data.
    public var biasCorrection: Bool
    /// Quantile used by `.percentile`.
    public var percentile: Double

    public init(method: CalibrationMethod, biasCorrection: Bool = false, percentile: Double = 0.9999) {
        self.method = method; self.biasCorrection = biasCorrection; self.percentile = percentile
    }
}

/// What calibration did, for reports.
public struct CalibrationReport: Sendable {
    /// Scales by quantizer path (`layers.3.act_quant`); per-channel weights give one per channel.
    public var scales: [(String, [Float])]
    /// Layers whose bias was corrected.
    public var biasCorrected: [String]
    /// Weight layers without a bias, which bias correction skipped.
    public var biasSkipped: [String]
}

/// Post-training quantization: sets every scale of a quantized model (from `quantize(_:policy:)`)
/// from calibration batches of prepared network inputs, without training.
///
/// While statistics are collected, activation quantizers pass their inputs through
/// unquantized and weights are already quantized; weight scales come from the weights alone.
/// Afterwards activation scales are learned-scale parameters (so QAT can continue from a PTQ
/// model) and MSE weight scales are `.fixed`.
public func calibrate(_ model: inout Model, batches: [Tensor], options: CalibrationOptions) throws -> CalibrationReport {
    guard !batches.isEmpty else { throw QuantError.unsupported("calibration needs at least one batch of data") }
    var layers = model.network.layers
    var report = CalibrationReport(scales: [], biasCorrected: [], biasSkipped: [])

    // Weights first: their scales do not depend on data.
    for (i, layer) in layers.enumerated() {
        guard let l = layer as? any WeightQuantizedLayer else { continue }
        let q = l.weightQuantizer, weight = l.weight.value
        if options.method == .mse {
            let fixed = mseWeightScale(weight, q.settings)
            layers[i] = l.replacingWeightQuantizer(Quantizer(withSource: q.settings, .fixed, fixedScale: fixed))
            report.scales.append(("layers.\(i).weight_quant", fixed.scalars))
        } else {
            report.scales.append(("layers.\(i).weight_quant", q.scaleValues(for: weight)))
        }
    }

    // Activations: one pass with every activation quantizer observing its input.
    let acts: [(Int, Quantizer)] = layers.enumerated().compactMap { i, l in
        switch l {
        case let a as QuantIdentity: return (i, a.quantizer)
        case let a as QuantReLU: return (i, a.quantizer)
        default: return nil
        }
    }
    var stats = acts.map { _ in ActivationStatistics(method: options.method, percentile: options.percentile) }
    for (k, (_, q)) in acts.enumerated() { q.observer = { stats[k].observe($0) } }
    defer { for (_, q) in acts { q.observer = nil } }
    let network = Sequential(layers)
    withoutGradients {
        LayerContext.with(.inference) { for b in batches { _ = network(b) } }
    }
    for (k, (i, q)) in acts.enumerated() {
        q.observer = nil
        let (scale, zeroPoint) = stats[k].range(q.settings)
        try q.setLearnedScale(scale, zeroPoint: zeroPoint)
        report.scales.append(("layers.\(i).act_quant", q.scaleValues(for: Tensor(zeros: [1]))))
    }

    if options.biasCorrection {
        try correctBiases(&layers, batches: batches, report: &report)
    }
    model.network = Sequential(layers)
    return report
}

extension Quantizer {
    /// A quantizer with the same grid but another scale source.
    convenience init(withSource settings: QuantizerSettings, _ source: QuantizerSettings.ScaleSource, fixedScale: Tensor) {
        var s = settings
        s.source = source
        self.init(s, fixedScale: fixedScale)
    }
}

/// Statistics of one activation quantizer's input over the calibration batches.
struct ActivationStatistics {
    let method: CalibrationMethod
    let percentile: Double
    var maxAbs: Float = 0
    var minValue: Float = 0, maxValue: Float = 0
    var percentileSum: Double = 0, lowSum: Double = 0, highSum: Double = 0
    var batches = 0
    /// Evenly strided samples of the inputs (MSE search), at most 65,536 per batch.
    var samples: [Float] = []

    init(method: CalibrationMethod, percentile: Double) { self.method = method; self.percentile = percentile }

    mutating func observe(_ x: Tensor) {
        batches += 1
        let p = x.storage.pointer
        for i in 0..<x.count { maxAbs = Swift.max(maxAbs, abs(p[i])); minValue = Swift.min(minValue, p[i]); maxValue = Swift.max(maxValue, p[i]) }
        switch method {
        case .max: break
        case .percentile:
            percentileSum += Double(percentileAbs(x, percentile))
            lowSum += Double(QForgeQuant.percentile(x, 1 - percentile))
            highSum += Double(QForgeQuant.percentile(x, percentile))
        case .mse:
            let stride = Swift.max(1, x.count / 65_536)
            var i = 0
            while i < x.count { samples.append(p[i]); i += stride }
        }
    }

    /// Scale and zero point for the collected data. With a learned zero point the grid spans
    /// min…max (max, mse) or the averaged low and high percentiles (percentile), always
    /// including 0; otherwise the zero point is 0.
    func range(_ settings: QuantizerSettings) -> (scale: Float, zeroPoint: Float) {
        guard settings.zeroPoint == .learned else { return (scale(settings), 0) }
        let n = Double(Swift.max(batches, 1))
        let lo = Swift.min(method == .percentile ? Float(lowSum / n) : minValue, 0)
        let hi = Swift.max(method == .percentile ? Float(highSum / n) : maxValue, 0)
        let levels = Float(settings.grid.maxInt - settings.grid.minInt)
        let s = hi > lo ? (hi - lo) / levels : 1e-8
        return (s, (Float(settings.grid.minInt) - lo / s).rounded())
    }

    /// The scale for the collected data; a tiny positive scale when the data was all zero.
    func scale(_ settings: QuantizerSettings) -> Float {
        let maxInt = Float(settings.grid.maxInt)
        let s: Float
        switch method {
        case .max: s = maxAbs / maxInt
        case .percentile: s = Float(percentileSum / Double(Swift.max(batches, 1))) / maxInt
        case .mse:
            // At most 2^18 values keep the search (200 candidates) under a second.
            let stride = Swift.max(1, samples.count / 262_144)
            let kept = stride == 1 ? samples : Swift.stride(from: 0, to: samples.count, by: stride).map { samples[$0] }
            s = mseOptimalScale(kept, maxAbs: maxAbs, settings: settings)
        }
        let positive = s > 0 && s.isFinite ? s : 1e-8
        return settings.powerOfTwo ? exp2f(log2f(positive).rounded()) : positive
    }
}

/// The scale among 200 candidates (0.005…1 × max|x| / maxInt; powers of two when the
/// quantizer needs them) that minimises Σ (fq(x) − x)² over `values`.
func mseOptimalScale(_ values: [Float], maxAbs: Float, settings: QuantizerSettings) -> Float {
    let grid = settings.grid
    guard maxAbs > 0, !values.isEmpty else { return 1e-8 }
    let top = maxAbs / Float(grid.maxInt)
    var candidates: [Float]
    if settings.powerOfTwo {
        let hi = Int(log2f(top).rounded(.up))
        candidates = (hi - 8...hi).map { exp2f(Float($0)) }
    } else {
        candidates = (1...200).map { top * Float($0) / 200 }
    }
    let lo = Float(grid.minInt), hi = Float(grid.maxInt)
    var best = (error: Double.infinity, scale: top)
    for s in candidates {
        let inv = 1 / s
        var err: Double = 0
        values.withUnsafeBufferPointer { v in
            var e: Float = 0
            for x in v {
                let q = Swift.min(Swift.max(grid.rounding.apply(x * inv), lo), hi)
                let d = q * s - x
                e += d * d
            }
            err = Double(e)
        }
        if err < best.error { best = (err, s) }
    }
    return best.scale
}

/// MSE-optimal weight scales, one per tensor or per output channel, shaped to broadcast.
func mseWeightScale(_ w: Tensor, _ settings: QuantizerSettings) -> Tensor {
    let channels = settings.perChannel && w.rank > 0 ? w.shape[0] : 1
    let per = w.count / Swift.max(channels, 1)
    let scales: [Float] = (0..<channels).map { c in
        let values = Array(UnsafeBufferPointer(start: w.storage.pointer + c * per, count: per))
        let m = values.reduce(Float(0)) { Swift.max($0, abs($1)) }
        return mseOptimalScale(values, maxAbs: m, settings: settings)
    }
    var shape = [Int](repeating: 1, count: Swift.max(w.rank, 1))
    if channels > 1 { shape[0] = channels } else { shape = [1] }
    return Tensor(shape: shape, scalars: scales)
}

/// Bias correction (Nagel et al., 2019): for each weight-quantized layer in order, the mean
/// over calibration data of (float-weight output − quantized-weight output) per output channel
/// is added to its bias, with every earlier layer already quantized and corrected. A layer
/// without a bias that feeds a BatchNorm has the correction folded into the BatchNorm's shift
/// (β += γ/√(σ² + ε) · error); any other bias-free layer is skipped and reported.
private func correctBiases(_ layers: inout [any Layer], batches: [Tensor], report: inout CalibrationReport) throws {
    var inputs = batches
    for i in layers.indices {
        let layer = layers[i]
        if let l = layer as? any WeightQuantizedLayer {
            let error = meanOutputError(l.floatLayer, layer, inputs)
            if let bias = l.bias {
                bias.assign(Tensor(shape: bias.value.shape, scalars: zip(bias.value.scalars, error).map { $0 + Float($1) }))
                report.biasCorrected.append("layers.\(i)")
            } else if i + 1 < layers.count, let bn = layers[i + 1] as? BatchNorm, bn.features == error.count {
                let gamma = bn.gamma.value.scalars, variance = bn.runningVariance.value.scalars
                let shifted = bn.beta.value.scalars.indices.map { c in
                    bn.beta.value.scalars[c] + gamma[c] / (variance[c] + bn.epsilon).squareRoot() * Float(error[c])
                }
                bn.beta.assign(Tensor(shape: [bn.features], scalars: shifted))
                report.biasCorrected.append("layers.\(i) (through layers.\(i + 1))")
            } else {
                report.biasSkipped.append("layers.\(i)")
            }
        }
        withoutGradients {
            LayerContext.with(.inference) { inputs = inputs.map { layer($0) } }
        }
    }
}

/// Per output channel (axis 1), the mean of floatLayer(x) − layer(x) over all inputs.
private func meanOutputError(_ floatLayer: any Layer, _ layer: any Layer, _ inputs: [Tensor]) -> [Double] {
    var sum: [Double] = [], count = 0
    withoutGradients {
        LayerContext.with(.inference) {
            for x in inputs {
                let diff = floatLayer(x) - layer(x)
                let n = diff.shape[0], channels = diff.shape[1], per = diff.count / Swift.max(n * channels, 1)
                if sum.isEmpty { sum = [Double](repeating: 0, count: channels) }
                let p = diff.storage.pointer
                for b in 0..<n {
                    for c in 0..<channels {
                        let base = (b * channels + c) * per
                        var s: Double = 0
                        for j in 0..<per { s += Double(p[base + j]) }
                        sum[c] += s
                    }
                }
                count += n * per
            }
        }
    }
    return sum.map { $0 / Double(Swift.max(count, 1)) }
}

/// The first `count` batches of `size` samples of `data` in a seeded shuffled order, prepared
/// as `model`'s network inputs: the calibration data of `calibrate`.
public func calibrationBatches(for model: Model, from data: Dataset, count: Int, size: Int, seed: UInt64) -> [Tensor] {
    let order = data.batches(size: size, shuffle: true, seed: seed, epoch: 0)
    return (0..<Swift.min(count, order.count)).map { model.prepareInputs(order[$0].inputs) }
}
