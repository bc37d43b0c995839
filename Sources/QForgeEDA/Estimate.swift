import Foundation
import QForgeHardware

// A fast resource estimate of a generated design from its manifest alone: a linear model
// over quantities the synthesized netlist grows with (bit-products of the multipliers, adder
// and accumulator bits, threshold comparators, ROM bits), its coefficients fitted to Yosys
// runs of designs QForge generated (`ResourceModel.fit`, `qforge estimate --calibrate`).

/// What a design's resources scale with, summed over its layers (`DesignFeatures.names`).
public struct DesignFeatures: Equatable, Sendable {
    /// One entry per feature, in this order.
    public static let names = [
        "units",                      // one per layer: counters, stream handshakes, the serializer's share
        "multiplier_bits",            // folded: PE·SIMD·(input bits)·(weight bits)
        "adder_bits",                 // folded: PE·SIMD·(input bits + weight bits), the adder tree
        "accumulator_bits",           // PE (parallel: M) accumulators of their width
        "threshold_bits",             // folded: PE·levels·(accumulator bits), comparators
        "rescale_bits",               // folded multiplier+shift: PE·(accumulator bits)², the rescaling multiplier
        "rom_bits",                   // folded: weight and parameter ROM bits
        "constant_multiplier_bits",   // parallel: non-zero weights·(input bits)·(weight bits)
        "constant_threshold_bits",    // parallel: M·levels·(accumulator bits) against constants
    ]

    public var values: [Double]

    public init(values: [Double]) {
        precondition(values.count == Self.names.count, "DesignFeatures: \(values.count) values for \(Self.names.count) features")
        self.values = values
    }

    /// The features of the design a manifest describes.
    public init(_ manifest: HardwareManifest) {
        var f = [Double](repeating: 0, count: Self.names.count)
        func add(_ name: String, _ v: Int) { f[Self.names.firstIndex(of: name)!] += Double(v) }
        let parallel = manifest.style == "parallel"
        for l in manifest.layers {
            let (p, s, a, w, acc) = (l.pe, l.simd, l.inputBits, l.weightBits, l.accumulatorBits)
            // Thresholds per channel: one per step between output codes (a lookup table's input grid is not in the manifest; its output grid stands in).
            let levels = l.requantization.hasPrefix("thresholds") ? (1 << min(l.outputBits, 16)) - 1 : 0
            add("units", 1)
            if parallel {
                add("constant_multiplier_bits", (l.nonzeroWeights ?? l.inputs * l.outputs) * a * w)
                add("accumulator_bits", l.outputs * acc)
                add("constant_threshold_bits", l.outputs * levels * acc)
            } else {
                add("multiplier_bits", p * s * a * w)
                add("adder_bits", p * s * (a + w))
                add("accumulator_bits", p * acc)
                add("threshold_bits", p * levels * acc)
                if l.requantization.hasPrefix("multiplier") { add("rescale_bits", p * acc * acc) }
                add("rom_bits", l.inputs * l.outputs * w + l.outputs * levels * acc)
            }
        }
        values = f
    }
}

/// One figure a synthesis run reports and the estimator predicts.
public enum EstimatedMetric: String, CaseIterable, Codable, Sendable {
    /// Xilinx 7-series LUTs (`synth_xilinx`).
    case xilinxLUTs = "xilinx_luts"
    /// Xilinx flip-flops.
    case xilinxFFs = "xilinx_ffs"
    /// OSU 0.18 µm standard cells (`synth` + `abc`).
    case asicCells = "asic_cells"
    /// Their area in µm².
    case asicArea = "asic_area_um2"
    /// iCE40 logic cells (nextpnr's ICESTORM_LC, else Yosys's SB_LUT4 count).
    case ice40LCs = "ice40_lcs"

    /// The figure in a synthesis report of the right target, if it has it.
    public func value(in r: SynthesisReport) -> Double? {
        switch self {
        case .xilinxLUTs: return r.target == .xilinx ? r.luts.map(Double.init) : nil
        case .xilinxFFs: return r.target == .xilinx ? r.ffs.map(Double.init) : nil
        case .asicCells: return r.target == .asic ? r.cells.map(Double.init) : nil
        case .asicArea: return r.target == .asic ? r.areaUm2 : nil
        case .ice40LCs: return r.target == .ice40 ? r.luts.map(Double.init) : nil
        }
    }
}

/// A calibrated linear model per metric: estimate = Σ coefficient · feature.
public struct ResourceModel: Codable, Equatable, Sendable {
    public struct Fit: Codable, Equatable, Sendable {
        public var metric: EstimatedMetric
        public var coefficients: [Double]
        /// Designs it was fitted to, and its largest relative error on them.
        public var designs: Int
        public var maxRelativeError: Double
    }

    public var format = "qforge-estimator/1"
    public var features = DesignFeatures.names
    public var fits: [Fit]

    public init(fits: [Fit]) { self.fits = fits }

    /// Estimates of every metric the model has.
    public func estimate(_ features: DesignFeatures) -> [EstimatedMetric: Double] {
        var out: [EstimatedMetric: Double] = [:]
        for fit in fits { out[fit.metric] = dot(fit.coefficients, features.values) }
        return out
    }

    public static func load(_ path: String) throws -> ResourceModel {
        guard let data = FileManager.default.contents(atPath: path) else { throw EDAError.invalid("\(path): no such estimator file; write one with qforge estimate --calibrate") }
        let model: ResourceModel
        do { model = try JSONDecoder().decode(ResourceModel.self, from: data) } catch {
            throw EDAError.invalid("\(path) is not a QForge estimator file (\(error))")
        }
        guard model.features == DesignFeatures.names, model.fits.allSatisfy({ $0.coefficients.count == DesignFeatures.names.count }) else {
            throw EDAError.invalid("\(path) was calibrated on other features (\(model.features.joined(separator: ", "))); calibrate again with qforge estimate --calibrate")
        }
        return model
    }

    public func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try! encoder.encode(self), as: UTF8.self) + "\n"
    }

    /// Non-negative coefficients c minimising Σ ((c·f − y) / y)² over the samples (relative
    /// errors, so that small and large designs count alike): coordinate descent on the
    /// column-scaled problem, which converges for this convex quadratic with bounds.
    public static func fit(_ samples: [(features: DesignFeatures, value: Double)], iterations: Int = 20_000) -> [Double] {
        let n = DesignFeatures.names.count
        let rows = samples.filter { $0.value > 0 }.map { s in s.features.values.map { $0 / s.value } }
        guard !rows.isEmpty else { return [Double](repeating: 0, count: n) }
        let norms = (0..<n).map { j in rows.reduce(0) { $0 + $1[j] * $1[j] }.squareRoot() }
        let a = rows.map { r in (0..<n).map { norms[$0] > 0 ? r[$0] / norms[$0] : 0 } }
        var c = [Double](repeating: 0, count: n)
        var residual = [Double](repeating: -1, count: a.count)  // a·c − 1
        for _ in 0..<iterations {
            var moved = 0.0
            for j in 0..<n where norms[j] > 0 {
                var g = 0.0  // the gradient along column j, which has unit norm
                for i in a.indices { g += a[i][j] * residual[i] }
                let next = max(0, c[j] - g)
                let d = next - c[j]
                if d != 0 {
                    for i in a.indices { residual[i] += d * a[i][j] }
                    c[j] = next
                    moved = max(moved, abs(d))
                }
            }
            if moved < 1e-12 { break }
        }
        return (0..<n).map { norms[$0] > 0 ? c[$0] / norms[$0] : 0 }
    }

    /// Fits every metric that at least `minimum` of the samples report.
    public static func calibrate(_ designs: [(features: DesignFeatures, reports: [SynthesisReport])], minimum: Int = 3) -> ResourceModel {
        var fits: [Fit] = []
        for metric in EstimatedMetric.allCases {
            let samples = designs.compactMap { d -> (features: DesignFeatures, value: Double)? in
                guard let v = d.reports.lazy.compactMap({ metric.value(in: $0) }).first, v > 0 else { return nil }
                return (d.features, v)
            }
            guard samples.count >= minimum else { continue }
            let c = fit(samples)
            var worst = 0.0
            for s in samples { worst = max(worst, abs(dot(c, s.features.values) - s.value) / s.value) }
            fits.append(Fit(metric: metric, coefficients: c, designs: samples.count, maxRelativeError: worst))
        }
        return ResourceModel(fits: fits)
    }
}

func dot(_ a: [Double], _ b: [Double]) -> Double {
    var s = 0.0
    for i in 0..<min(a.count, b.count) { s += a[i] * b[i] }
    return s
}

/// The synthesis reports saved in a build directory (`synth-*/report.json`).
public func savedSynthesisReports(in directory: String) throws -> [SynthesisReport] {
    let fm = FileManager.default
    let entries = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
    var reports: [SynthesisReport] = []
    for entry in entries.sorted() where entry.hasPrefix("synth-") {
        let path = (directory as NSString).appendingPathComponent("\(entry)/report.json")
        guard let data = fm.contents(atPath: path) else { continue }
        do { reports.append(try JSONDecoder().decode(SynthesisReport.self, from: data)) } catch {
            throw EDAError.invalid("\(path) is not a synthesis report (\(error)); run qforge synth again")
        }
    }
    return reports
}

extension ResourceModel {
    /// The calibration `qforge estimate` uses without --model (see `Calibration.swift`'s note on
    /// how it was made and how to make it again).
    public static let builtIn = ResourceModel(fits: builtInFits)
}
