import Foundation
import QForgeTensor

/// Per-feature standardisation: `(x − mean) / std` for every feature (every element of a
/// sample's inputs, flattened).
///
/// Fit it on the training inputs only (`Standardizer.fit(train.inputs)`), then apply the same
/// statistics to validation/test data and at inference. It is `Codable` so the statistics can
/// be saved next to a model's weights.
public struct Standardizer: Codable, Equatable, Sendable {
    /// Mean of each feature.
    public var mean: [Float]
    /// Standard deviation of each feature (population, divide by N). Features whose spread is
    /// below the fit's `minimumStd` get 1, so constant features map to 0 instead of dividing
    /// by zero.
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count, "mean has \(mean.count) entries, std \(std.count)")
        self.mean = mean
        self.std = std
    }

    /// Number of features.
    public var featureCount: Int { mean.count }

    /// Per-feature mean and standard deviation of `inputs` over its first dimension,
    /// accumulated in Double. An empty tensor gives mean 0 and std 1.
    public static func fit(_ inputs: Tensor, minimumStd: Float = 1e-6) -> Standardizer {
        let n = inputs.shape.first ?? 0
        let f = inputs.shape.dropFirst().reduce(1, *)
        var sum = [Double](repeating: 0, count: f)
        var sumSq = [Double](repeating: 0, count: f)
        let p = inputs.storage.pointer
        for r in 0..<n {
            let row = p + r * f
            for j in 0..<f { let v = Double(row[j]); sum[j] += v }
        }
        let mean = sum.map { n > 0 ? $0 / Double(n) : 0 }
        for r in 0..<n {
            let row = p + r * f
            for j in 0..<f { let d = Double(row[j]) - mean[j]; sumSq[j] += d * d }
        }
        let std = sumSq.map { s -> Float in
            let sd = n > 0 ? Float((s / Double(n)).squareRoot()) : 1
            return sd.isFinite && sd >= minimumStd ? sd : 1
        }
        return Standardizer(mean: mean.map { Float($0) }, std: std)
    }

    /// `(x − mean) / std` per feature. `t` must have `featureCount` elements per sample.
    public func apply(_ t: Tensor) -> Tensor {
        transform(t) { v, j in (v - mean[j]) / std[j] }
    }

    /// `x · std + mean` per feature: undoes `apply`.
    public func invert(_ t: Tensor) -> Tensor {
        transform(t) { v, j in v * std[j] + mean[j] }
    }

    private func transform(_ t: Tensor, _ f: (Float, Int) -> Float) -> Tensor {
        let n = t.shape.first ?? 0
        let per = t.shape.dropFirst().reduce(1, *)
        precondition(per == featureCount, "standardizer fitted on \(featureCount) features, tensor has \(per) per sample")
        let src = t.storage.pointer
        return Tensor(shape: t.shape) { out in
            for r in 0..<n {
                for j in 0..<per { out[r * per + j] = f(src[r * per + j], j) }
            }
        }
    }
}

extension Dataset {
    /// The same data set with its inputs standardised by `standardizer` (targets unchanged).
    public func standardized(using standardizer: Standardizer) -> Dataset {
        var d = self
        d.inputs = standardizer.apply(inputs)
        return d
    }
}
