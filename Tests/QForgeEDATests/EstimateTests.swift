import Foundation
import HardwareTestSupport
import QForgeEDA
import QForgeHardware
import QForgeInteger
import QForgeTensor
import TestSupport
import XCTest

/// The resource estimator: features from manifests, the fit, calibration from saved reports.
final class EstimateTests: XCTestCase {
    func feature(_ f: DesignFeatures, _ name: String) -> Double { f.values[DesignFeatures.names.firstIndex(of: name)!] }

    /// `smallDenseModel()` (4 → 6 → 2) folded 3×2, 2×6: the features by hand.
    func testFeaturesOfAFoldedDesign() throws {
        let model = smallDenseModel()
        let graph = try HardwareGraph(model, foldings: [Folding(pe: 3, simd: 2), Folding(pe: 2, simd: 6)])
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 2, seed: 1), source: "random")
        let m = HardwareDesign(graph, vectors: vectors, integerModel: model).manifest
        let f = DesignFeatures(m)
        let (l0, l1) = (m.layers[0], m.layers[1])
        XCTAssertEqual(feature(f, "units"), 2)
        XCTAssertEqual(feature(f, "multiplier_bits"), Double(3 * 2 * l0.inputBits * l0.weightBits + 2 * 6 * l1.inputBits * l1.weightBits))
        XCTAssertEqual(feature(f, "adder_bits"), Double(3 * 2 * (l0.inputBits + l0.weightBits) + 2 * 6 * (l1.inputBits + l1.weightBits)))
        XCTAssertEqual(feature(f, "accumulator_bits"), Double(3 * l0.accumulatorBits + 2 * l1.accumulatorBits))
        // Layer 0 requantizes to 2-bit codes with thresholds: 3 per channel; layer 1 is the output.
        XCTAssertEqual(l0.requantization, "thresholds")
        XCTAssertEqual(feature(f, "threshold_bits"), Double(3 * 3 * l0.accumulatorBits))
        XCTAssertEqual(feature(f, "rom_bits"), Double(6 * 4 * l0.weightBits + 6 * 3 * l0.accumulatorBits + 2 * 6 * l1.weightBits))
        XCTAssertEqual(feature(f, "constant_multiplier_bits"), 0)
    }

    /// In the parallel style the constant multipliers count only the non-zero weights.
    func testFeaturesOfAParallelDesign() throws {
        let model = smallDenseModel()
        let graph = try HardwareGraph.parallel(model)
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 2, seed: 1), source: "random")
        let m = HardwareDesign(graph, vectors: vectors, integerModel: model).manifest
        // smallDenseModel's weights: 4 zeros among layer 0's 24, none among layer 1's 12.
        XCTAssertEqual(m.layers.map(\.nonzeroWeights), [20, 12])
        let f = DesignFeatures(m)
        XCTAssertEqual(feature(f, "constant_multiplier_bits"), Double(20 * m.layers[0].inputBits * m.layers[0].weightBits + 12 * m.layers[1].inputBits * m.layers[1].weightBits))
        XCTAssertEqual(feature(f, "multiplier_bits"), 0)
        XCTAssertEqual(feature(f, "constant_threshold_bits"), Double(6 * 3 * m.layers[0].accumulatorBits))
    }

    /// Values made by known non-negative coefficients come back from the fit; a negative
    /// direction is clamped at zero.
    func testFitRecoversKnownCoefficients() {
        let truth: [Double] = [40, 1.5, 0, 2, 0.8, 0, 0.05, 0.7, 0.3]
        var rng = SeededRandom(seed: 5)
        let samples = (0..<30).map { _ -> (features: DesignFeatures, value: Double) in
            let f = DesignFeatures(values: (0..<DesignFeatures.names.count).map { j in j == 0 ? Double(1 + rng.next() % 5) : Double(rng.next() % 5000) })
            return (f, zip(truth, f.values).reduce(0) { $0 + $1.0 * $1.1 })
        }
        let c = ResourceModel.fit(samples)
        for (j, (got, want)) in zip(c, truth).enumerated() {
            XCTAssertEqual(got, want, accuracy: 1e-6 * max(1, want), DesignFeatures.names[j])
        }
        // All values pulled down by one feature: its coefficient would be negative, the fit keeps 0.
        let skewed = samples.map { s in (s.features, max(1, s.value - 3 * s.features.values[1])) }
        XCTAssertTrue(ResourceModel.fit(skewed).allSatisfy { $0 >= 0 })
    }

    /// Calibration reads each metric from the reports that have it, fits those with 3 or more
    /// designs, and the file round-trips; a file of other features is refused.
    func testCalibrateFromReportsAndLoad() throws {
        func report(_ target: SynthesisTarget, luts: Int? = nil, cells: Int? = nil) -> SynthesisReport {
            var r = SynthesisReport(target: target, device: target.rawValue, top: "qf_top", clockMHz: 100)
            r.luts = luts
            r.cells = cells
            return r
        }
        let designs = (1...4).map { i -> (features: DesignFeatures, reports: [SynthesisReport]) in
            var v = [Double](repeating: 0, count: DesignFeatures.names.count)
            v[0] = Double(i)
            v[1] = Double(100 * i * i)
            return (DesignFeatures(values: v), [report(.xilinx, luts: 20 * i + 100 * i * i), report(.asic, cells: i < 3 ? 50 * i : nil)])
        }
        let model = ResourceModel.calibrate(designs)
        XCTAssertEqual(model.fits.map(\.metric), [.xilinxLUTs], "asic cells come from only 2 designs")
        XCTAssertEqual(model.fits[0].designs, 4)
        XCTAssertEqual(model.fits[0].coefficients[0], 20, accuracy: 1e-6)
        XCTAssertEqual(model.fits[0].coefficients[1], 1, accuracy: 1e-9)
        XCTAssertLessThan(model.fits[0].maxRelativeError, 1e-9)
        XCTAssertEqual(model.estimate(designs[2].features)[.xilinxLUTs]!, 960, accuracy: 1e-6)

        let tmp = try TemporaryDirectory()
        try model.json().write(toFile: tmp.file("e.json"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try ResourceModel.load(tmp.file("e.json")), model)
        let other = model.json().replacingOccurrences(of: "\"rom_bits\"", with: "\"ram_bits\"")
        try other.write(toFile: tmp.file("other.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ResourceModel.load(tmp.file("other.json"))) { e in
            XCTAssertTrue("\(e)".contains("calibrated on other features"), "\(e)")
        }
    }
}
