import Foundation
import TestSupport
import XCTest
import QForgeTensor
@testable import QForgeData

final class MagnetometerTests: XCTestCase {
    func testShapesNamesAndRanges() {
        let d = Magnetometer.generate(count: 500, seed: 1)
        XCTAssertEqual(d.name, "magnetometer")
        XCTAssertEqual(d.inputs.shape, [500, 27])
        XCTAssertEqual(d.targets.values?.shape, [500, 6])
        XCTAssertEqual(d.targetNames, ["x_cm", "y_cm", "z_cm", "mx", "my", "mz"])
        let t = d.targets.values!.scalars
        for i in 0..<500 {
            XCTAssertTrue((-10...10).contains(t[i * 6]) && (-10...10).contains(t[i * 6 + 1]))
            XCTAssertTrue((5...15).contains(t[i * 6 + 2]))
            for j in 3..<6 { XCTAssertTrue((-1...1).contains(t[i * 6 + j])) }
        }
        XCTAssertTrue(d.inputs.scalars.allSatisfy { $0.isFinite })
        XCTAssertEqual(Magnetometer.sensorPositions[0], SIMD3(-0.1, -0.1, 0))
        XCTAssertEqual(Magnetometer.sensorPositions[4], SIMD3(0, 0, 0))
        XCTAssertEqual(Magnetometer.sensorPositions[5], SIMD3(0.1, 0, 0))
        XCTAssertEqual(Magnetometer.sensorPositions[8], SIMD3(0.1, 0.1, 0))
    }

    func testDeterminism() {
        let a = Magnetometer.generate(count: 100, seed: 7)
        let b = Magnetometer.generate(count: 100, seed: 7)
        let c = Magnetometer.generate(count: 100, seed: 8)
        XCTAssertEqual(a.inputs.scalars, b.inputs.scalars)
        XCTAssertEqual(a.targets.values?.scalars, b.targets.values?.scalars)
        XCTAssertNotEqual(a.inputs.scalars, c.inputs.scalars)
        XCTAssertNotEqual(a.targets.values?.scalars, c.targets.values?.scalars)
    }

    func testHandComputedDipoleFields() {
        // Dipole 0.1 m straight above the centre sensor (s4), moment 1 A·m² along z:
        // on the axis B_z = 2 · 1e-7 · m / z³ = 2e-7 / 1e-3 T = 2e-4 T = 200 µT.
        let axial = Magnetometer.readings(dipolePosition: SIMD3(0, 0, 0.1), moment: SIMD3(0, 0, 1))
        XCTAssertEqual(axial.count, 27)
        XCTAssertEqual(axial[12], 0, accuracy: 1e-9)
        XCTAssertEqual(axial[13], 0, accuracy: 1e-9)
        XCTAssertEqual(axial[14], 200, accuracy: 1e-9)
        // Same place, moment along x: r̂ ⟂ m, so B = −1e-7 · m / r³ = −100 µT along x.
        let transverse = Magnetometer.readings(dipolePosition: SIMD3(0, 0, 0.1), moment: SIMD3(1, 0, 0))
        XCTAssertEqual(transverse[12], -100, accuracy: 1e-9)
        XCTAssertEqual(transverse[14], 0, accuracy: 1e-9)
        // Above sensor s0 at 5 cm with m_z = 0.5: 2e-7 · 0.5 / 0.05³ T = 800 µT.
        let corner = Magnetometer.dipoleField(at: SIMD3(-0.1, -0.1, 0), dipole: SIMD3(-0.1, -0.1, 0.05), moment: SIMD3(0, 0, 0.5))
        XCTAssertEqual(corner.z * 1e6, 800, accuracy: 1e-9)
        // Off-axis check against the formula written out by hand for s5 = (0.1, 0, 0):
        // r = (0.1, 0, −0.1), |r| = 0.1·√2, r̂ = (1, 0, −1)/√2, m = (0, 0, 1), r̂·m = −1/√2,
        // B = 1e-7 · (3 · (−1/√2) · (1, 0, −1)/√2 − (0, 0, 1)) / |r|³ = 1e-7 · (−1.5, 0, 0.5) / (0.002√2).
        let s5 = Magnetometer.dipoleField(at: SIMD3(0.1, 0, 0), dipole: SIMD3(0, 0, 0.1), moment: SIMD3(0, 0, 1))
        let scale = 1e-7 / (0.002 * 2.0.squareRoot())
        XCTAssertEqual(s5.x, -1.5 * scale, accuracy: 1e-15)
        XCTAssertEqual(s5.y, 0, accuracy: 1e-15)
        XCTAssertEqual(s5.z, 0.5 * scale, accuracy: 1e-15)
    }

    func testNoiseFreeInputsMatchTargets() {
        let d = Magnetometer.generate(count: 50, seed: 3, noiseMicrotesla: 0)
        let x = d.inputs.scalars, t = d.targets.values!.scalars
        for i in 0..<50 {
            let position = SIMD3(Double(t[i * 6]), Double(t[i * 6 + 1]), Double(t[i * 6 + 2])) / 100  // cm → m
            let moment = SIMD3(Double(t[i * 6 + 3]), Double(t[i * 6 + 4]), Double(t[i * 6 + 5]))
            let expected = Magnetometer.readings(dipolePosition: position, moment: moment)
            // The targets are stored as Float, so the recomputed field differs slightly; allow
            // a relative error of 1e-5 of the row's largest reading.
            let scale = max(1, expected.map(abs).max() ?? 1)
            for j in 0..<27 {
                XCTAssertEqual(Double(x[i * 27 + j]), expected[j], accuracy: 1e-5 * scale)
            }
        }
    }

    func testNoiseSigma() {
        for sigma: Float in [0.05, 0.2] {
            let clean = Magnetometer.generate(count: 2000, seed: 11, noiseMicrotesla: 0).inputs.scalars
            let noisy = Magnetometer.generate(count: 2000, seed: 11, noiseMicrotesla: sigma).inputs.scalars
            let diffs = zip(noisy, clean).map { Double($0) - Double($1) }
            let mean = diffs.reduce(0, +) / Double(diffs.count)
            let std = (diffs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(diffs.count)).squareRoot()
            XCTAssertEqual(mean, 0, accuracy: 0.03 * Double(sigma))
            XCTAssertEqual(std, Double(sigma), accuracy: 0.03 * Double(sigma))
        }
    }

    func testStandardizer() throws {
        let d = Magnetometer.generate(count: 1000, seed: 5)
        let s = Standardizer.fit(d.inputs)
        XCTAssertEqual(s.featureCount, 27)
        let z = d.standardized(using: s)
        XCTAssertEqual(z.targets.values?.scalars, d.targets.values?.scalars)
        let again = Standardizer.fit(z.inputs)
        for j in 0..<27 {
            XCTAssertEqual(again.mean[j], 0, accuracy: 1e-4)
            XCTAssertEqual(again.std[j], 1, accuracy: 1e-3)
        }
        let back = s.invert(z.inputs).scalars
        for (a, b) in zip(back, d.inputs.scalars) { XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, abs(b))) }
        // Saved with a model and read back.
        let json = try JSONEncoder().encode(s)
        XCTAssertEqual(try JSONDecoder().decode(Standardizer.self, from: json), s)
        // A constant feature maps to 0 rather than dividing by zero.
        let constant = Standardizer.fit(Tensor(shape: [3, 2], scalars: [1, 4, 2, 4, 3, 4]))
        XCTAssertEqual(constant.std[1], 1)
        XCTAssertEqual(constant.apply(Tensor(shape: [1, 2], scalars: [2, 4])).scalars, [0, 0])
    }
}
