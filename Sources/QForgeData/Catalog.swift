import Foundation
import QForgeTensor

/// The data sets QForge knows by name, as the CLI and library users ask for them.
public enum DataCatalog {
    public static let names = ["fashion-mnist", "magnetometer", "csv"]

    public struct Request: Sendable {
        public var name: String
        /// Fashion-MNIST directory (default: the Debian package's), or the CSV file.
        public var path: String?
        /// Use only the first N training / test samples (quick runs, tests).
        public var trainLimit: Int?
        public var testLimit: Int?
        /// Magnetometer: how many samples to generate for training and for testing.
        public var samples: Int
        public var seed: UInt64
        /// CSV: target column indices, classification or regression, and the held-out fraction.
        public var targetColumns: [CSVColumn]
        public var classification: Bool
        public var testFraction: Double

        public init(name: String, path: String? = nil, trainLimit: Int? = nil, testLimit: Int? = nil,
                    samples: Int = 50_000, seed: UInt64 = 0, targetColumns: [CSVColumn] = [.index(-1)],
                    classification: Bool = true, testFraction: Double = 0.2) {
            self.name = name; self.path = path; self.trainLimit = trainLimit; self.testLimit = testLimit
            self.samples = samples; self.seed = seed; self.targetColumns = targetColumns
            self.classification = classification; self.testFraction = testFraction
        }
    }

    /// Loads (train, test). The magnetometer set generates its held-out samples from a
    /// different seed than its training samples, so they never overlap.
    public static func load(_ r: Request) throws -> (train: Dataset, test: Dataset) {
        switch r.name.lowercased() {
        case "fashion-mnist", "fashion_mnist", "fmnist":
            let train = try FashionMNIST.load(.train, directory: r.path, limit: r.trainLimit)
            let test = try FashionMNIST.load(.test, directory: r.path, limit: r.testLimit)
            return (train, test)
        case "magnetometer", "magnet":
            let n = r.trainLimit ?? r.samples
            let train = Magnetometer.generate(count: n, seed: r.seed)
            let test = Magnetometer.generate(count: r.testLimit ?? Swift.max(1, n / 5), seed: r.seed &+ 1_000_003)
            return (train, test)
        case "csv":
            guard let path = r.path else { throw DataError.invalidValue(path: "csv", detail: "the csv data set needs a file: pass --data-path FILE") }
            let all = try Dataset.fromCSV(path: path, targetColumns: r.targetColumns,
                                          task: r.classification ? .classification : .regression)
            let (train, test) = all.split(validationFraction: r.testFraction, seed: r.seed)
            return (train, test)
        default:
            throw DataError.invalidValue(path: r.name, detail: "unknown data set (known: \(names.joined(separator: ", ")))")
        }
    }
}
