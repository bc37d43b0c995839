import ArgumentParser
import Foundation
import QForgeEDA
import QForgeHardware

struct Estimate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Estimate compiled designs' resources from their manifests, in milliseconds: Xilinx LUTs and FFs, ASIC cells and µm², iCE40 logic cells.",
        discussion: """
            The estimate is a linear model over each design's multiplier, adder, accumulator, threshold and ROM bits \
            (DesignFeatures), fitted to Yosys runs. With --calibrate, it fits the model to the synthesized build \
            directories given (their synth-*/report.json, written by qforge synth) and writes it to --model; otherwise \
            it reads --model, or uses the built-in calibration. A directory that has synthesis reports is shown beside \
            them, with the relative error.
            """)

    @Argument(help: "Build directories written by qforge compile.")
    var directories: [String]

    @Flag(help: "Fit the estimator to the synthesis reports of the directories and write it to --model.")
    var calibrate = false

    @Option(help: "Estimator file (JSON): read it, or with --calibrate write it.")
    var model: String?

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if calibrate && model == nil { throw ValidationError("--calibrate writes the fitted estimator to --model FILE: give --model") }
    }

    func run() throws {
        var designs: [(name: String, features: DesignFeatures, reports: [SynthesisReport])] = []
        do {
            for d in directories {
                let manifest = try HardwareManifest.load(d)
                designs.append((d, DesignFeatures(manifest), try savedSynthesisReports(in: d)))
            }
        } catch let e as HardwareError {
            throw CommandError("\(e)")
        } catch let e as EDAError {
            throw CommandError("\(e)")
        }
        let estimator: ResourceModel
        if calibrate {
            estimator = ResourceModel.calibrate(designs.map { ($0.features, $0.reports) })
            guard !estimator.fits.isEmpty else {
                throw CommandError("no metric is reported by 3 or more of the \(directories.count) directories (\(directories.prefix(5).joined(separator: ", "))\(directories.count > 5 ? ", …" : "")); run qforge synth on them first (each writes synth-<target>/report.json)")
            }
            try writeAtomically(estimator.json(), to: model!)
        } else if let model {
            do { estimator = try ResourceModel.load(model) } catch let e as EDAError { throw CommandError("\(e)") }
        } else {
            estimator = ResourceModel.builtIn
            guard !estimator.fits.isEmpty else {
                throw CommandError("this build has no built-in calibration: synthesize a few designs (qforge synth), fit one with qforge estimate --calibrate DIRS --model FILE, then pass --model FILE")
            }
        }
        var rows: [[String]] = [["design", "metric", "estimate", "synthesized", "error"]]
        var objects: [[String: Any]] = []
        for d in designs {
            let estimates = estimator.estimate(d.features)
            var object: [String: Any] = ["design": d.name]
            for metric in EstimatedMetric.allCases {
                guard let e = estimates[metric] else { continue }
                let actual = d.reports.lazy.compactMap { metric.value(in: $0) }.first
                let error = actual.flatMap { $0 > 0 ? (e - $0) / $0 : nil }
                rows.append([d.name, metric.rawValue, String(format: "%.0f", e), actual.map { String(format: "%.0f", $0) } ?? "—",
                             error.map { String(format: "%+.1f %%", 100 * $0) } ?? "—"])
                object[metric.rawValue] = e.rounded()
                if let actual { object["synthesized_" + metric.rawValue] = actual }
            }
            objects.append(object)
        }
        printMarkdownTable(rows)
        if calibrate {
            for fit in estimator.fits {
                print(String(format: "%@: fitted to %d designs, largest error %.1f %%", fit.metric.rawValue, fit.designs, 100 * fit.maxRelativeError))
            }
            print("wrote \(model!)")
        }
        if output.json { printJSON(["designs": objects]) }
    }
}

/// Writes `text` to `path` through a temporary file, so that a failure leaves an old file as it was.
func writeAtomically(_ text: String, to path: String) throws {
    do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw CommandError("\(path): cannot write (\(error.localizedDescription))")
    }
}
