import Foundation
import QForgeTensor

/// The built-in synthetic regression data set (seed document "000"): locating a magnetic
/// dipole from the readings of a 3×3 grid of three-axis magnetometers.
///
/// Geometry (SI units, metres):
/// - Nine sensors lie in the z = 0 plane on a 3×3 grid with 0.1 m spacing, at
///   x, y ∈ {−0.1, 0, 0.1} m. Sensor `s = 3·iy + ix` (ix, iy ∈ 0...2) sits at
///   x = (ix − 1)·0.1 m, y = (iy − 1)·0.1 m: s0 = (−0.1, −0.1), s1 = (0, −0.1), …,
///   s4 = (0, 0) is the centre, s8 = (0.1, 0.1).
/// - A point dipole sits above the grid at x, y uniform in [−0.1, 0.1] m and z uniform in
///   [0.05, 0.15] m, with moment m whose components are uniform in [−1, 1] A·m².
///
/// Physics: the field of a dipole at r₀ measured at r_s, with r = r_s − r₀, is
/// B = μ₀/(4π) · (3 r̂ (r̂·m) − m) / |r|³ tesla, with μ₀/(4π) = 1e−7 T·m/A. Fields are reported
/// in microtesla (1 µT = 1e−6 T). At these distances they range from about 1 µT to a few
/// thousand µT. Each reading gets independent Gaussian noise (σ = 0.05 µT per component by
/// default), modelling sensor noise.
///
/// Inputs: [N, 27] Float, sensor-major (s0.x, s0.y, s0.z, s1.x, …, s8.z), in µT.
/// Targets: regression [N, 6] = dipole position (x, y, z) in **centimetres** and moment
/// (mx, my, mz) in A·m². Centimetres put the position targets (x, y ∈ [−10, 10],
/// z ∈ [5, 15]) on a scale comparable to the moments (∈ [−1, 1]), so an unweighted
/// mean-squared error treats them evenly; metres would make position errors ~100× smaller
/// than moment errors.
///
/// Normalisation: the data set keeps the raw µT readings. Because dipole fields span three
/// orders of magnitude, training code should standardise the inputs with
/// `Standardizer.fit(train.inputs)` and `Dataset.standardized(using:)`, fitted on the training
/// split only, and save the standardiser's mean/std with the model.
public enum Magnetometer {
    /// μ₀/(4π) in T·m/A.
    public static let mu0Over4Pi = 1e-7
    /// Grid spacing in metres.
    public static let sensorSpacing = 0.1
    /// Default sensor noise standard deviation, µT per component.
    public static let defaultNoiseMicrotesla: Float = 0.05
    /// Number of input values per sample (9 sensors × 3 axes).
    public static let inputCount = 27
    /// Names of the six regression targets.
    public static let targetNames = ["x_cm", "y_cm", "z_cm", "mx", "my", "mz"]
    /// Sampling ranges of the dipole, metres and A·m².
    public static let xyRange: ClosedRange<Double> = -0.1...0.1
    public static let zRange: ClosedRange<Double> = 0.05...0.15
    public static let momentRange: ClosedRange<Double> = -1...1

    /// The nine sensor positions in metres, in sensor order (see the type's documentation).
    public static let sensorPositions: [SIMD3<Double>] = (0..<9).map { (s: Int) -> SIMD3<Double> in
        let x: Double = Double(s % 3 - 1) * sensorSpacing
        let y: Double = Double(s / 3 - 1) * sensorSpacing
        return SIMD3<Double>(x, y, 0)
    }

    /// The field in tesla of a point dipole with moment `moment` (A·m²) at `dipole` (m),
    /// measured at `sensor` (m): μ₀/(4π) · (3 r̂ (r̂·m) − m) / |r|³ with r = sensor − dipole.
    /// Zero when the two positions coincide (the point-dipole field is undefined there).
    public static func dipoleField(at sensor: SIMD3<Double>, dipole: SIMD3<Double>, moment: SIMD3<Double>) -> SIMD3<Double> {
        let r = sensor - dipole
        let d2 = (r * r).sum()
        guard d2 > 0 else { return .zero }
        let d = d2.squareRoot()
        let rhat = r / d
        let mDotR: Double = (rhat * moment).sum()
        let numerator: SIMD3<Double> = (3 * mDotR) * rhat - moment
        return numerator * (mu0Over4Pi / (d2 * d))
    }

    /// The 27 noise-free readings in µT (sensor-major) for a dipole at `position` (m) with
    /// moment `moment` (A·m²).
    public static func readings(dipolePosition position: SIMD3<Double>, moment: SIMD3<Double>) -> [Double] {
        var out: [Double] = []
        out.reserveCapacity(inputCount)
        for s in sensorPositions {
            let b = dipoleField(at: s, dipole: position, moment: moment) * 1e6  // T → µT
            out += [b.x, b.y, b.z]
        }
        return out
    }

    /// Generates `count` samples, deterministically from `seed`.
    ///
    /// For each sample the generator draws, in order: x, y, z of the position, mx, my, mz, then
    /// 27 standard normals for the noise (drawn even when `noiseMicrotesla` is 0, so the same
    /// seed gives the same dipoles at any noise level).
    ///
    /// - Parameter noiseMicrotesla: standard deviation of the Gaussian noise added to every
    ///   reading, in µT (default 0.05).
    public static func generate(count: Int, seed: UInt64, noiseMicrotesla: Float = defaultNoiseMicrotesla) -> Dataset {
        precondition(count >= 0, "count must be non-negative, got \(count)")
        var rng = SeededRandom(seed: seed)
        func uniform(_ range: ClosedRange<Double>) -> Double {
            // 53 random bits: uniform in [lower, upper).
            range.lowerBound + (range.upperBound - range.lowerBound) * (Double(rng.next() >> 11) * 0x1p-53)
        }
        var inputs = [Float](repeating: 0, count: count * inputCount)
        var targets = [Float](repeating: 0, count: count * 6)
        for i in 0..<count {
            let position = SIMD3(uniform(xyRange), uniform(xyRange), uniform(zRange))
            let moment = SIMD3(uniform(momentRange), uniform(momentRange), uniform(momentRange))
            let clean = readings(dipolePosition: position, moment: moment)
            for j in 0..<inputCount {
                inputs[i * inputCount + j] = Float(clean[j]) + noiseMicrotesla * rng.nextNormal()
            }
            let t = [position.x * 100, position.y * 100, position.z * 100, moment.x, moment.y, moment.z]
            for j in 0..<6 { targets[i * 6 + j] = Float(t[j]) }
        }
        return Dataset(name: "magnetometer",
                       inputs: Tensor(shape: [count, inputCount], scalars: inputs),
                       targets: .regression(Tensor(shape: [count, 6], scalars: targets)),
                       targetNames: targetNames)
    }
}
