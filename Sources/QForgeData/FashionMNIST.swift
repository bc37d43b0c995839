import Foundation
import QForgeTensor

/// Loader for Fashion-MNIST (Zalando): 28×28 grey-scale images of clothing in 10 classes,
/// 60 000 for training and 10 000 for testing, stored as IDX files.
public enum FashionMNIST {
    /// Where the Debian-style package `dataset-fashion-mnist` installs the files.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    /// Environment variable that overrides `defaultDirectory`.
    public static let environmentVariable = "QFORGE_FASHION_MNIST"
    /// Image side length in pixels.
    public static let imageSize = 28
    /// The ten class names, indexed by label.
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    /// How to get the data, appended to "not found" errors.
    public static let installHint =
        "install it with 'apt-get install -y dataset-fashion-mnist' or pass --data-dir (or set \(environmentVariable))"

    /// The two parts of the data set.
    public enum Split: String, Sendable, CaseIterable {
        case train
        case test

        /// File name prefix: "train" or "t10k".
        public var filePrefix: String { self == .train ? "train" : "t10k" }
    }

    /// The directory to load from: `directory` if given, else `$QFORGE_FASHION_MNIST` if set
    /// and non-empty, else `defaultDirectory`.
    public static func resolveDirectory(_ directory: String? = nil,
                                        environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let d = directory, !d.isEmpty { return d }
        if let e = environment[environmentVariable], !e.isEmpty { return e }
        return defaultDirectory
    }

    /// Loads one split.
    ///
    /// Reads `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte`, each either
    /// gzip-compressed with a `.gz` suffix or plain (the `.gz` name is tried first).
    /// Images become Float32 `pixel / 255` in [0, 1], shape [N, 1, 28, 28]; labels an
    /// `IntTensor` [N] in 0...9.
    ///
    /// - Parameters:
    ///   - directory: overrides the environment variable and the default directory.
    ///   - limit: load only the first `limit` samples (reads only the start of each file).
    public static func load(_ split: Split, directory: String? = nil, limit: Int? = nil) throws -> Dataset {
        let dir = resolveDirectory(directory)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError.datasetNotFound(path: dir, dataset: "Fashion-MNIST", fix: installHint)
        }
        let imagePath = try locate(dir, "\(split.filePrefix)-images-idx3-ubyte")
        let labelPath = try locate(dir, "\(split.filePrefix)-labels-idx1-ubyte")
        let limit = limit.map { max(0, $0) }

        let images = try readIDXRaw(imagePath, maxRecords: limit)
        guard images.dataType == .uint8, images.shape.count == 3,
              images.shape[1] == imageSize, images.shape[2] == imageSize else {
            throw DataError.mismatch(path: imagePath, detail:
                "expected ubyte images of shape N×28×28, found \(images.dataType.name) \(formatShape(images.shape))")
        }
        let labels = try readIDXRaw(labelPath, maxRecords: limit)
        guard labels.dataType == .uint8, labels.shape.count == 1 else {
            throw DataError.mismatch(path: labelPath, detail:
                "expected a 1-dimensional ubyte label file, found \(labels.dataType.name) \(formatShape(labels.shape))")
        }
        guard images.declaredCount == labels.declaredCount else {
            throw DataError.mismatch(path: labelPath, detail:
                "\(labels.declaredCount) labels but \(imagePath) holds \(images.declaredCount) images")
        }
        let n = images.shape[0]
        var labelValues = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let v = Int(labels.payload[i])
            guard v < classNames.count else {
                throw DataError.invalidValue(path: labelPath, detail: "label \(i) is \(v), expected 0...9")
            }
            labelValues[i] = v
        }

        // uint8 → Float through a 256-entry table; one pass over the raw bytes.
        let table = (0..<256).map { Float($0) / 255 }
        let pixels = Tensor(shape: [n, 1, imageSize, imageSize]) { out in
            images.payload.withUnsafeBufferPointer { src in
                table.withUnsafeBufferPointer { t in
                    guard let s = src.baseAddress, let o = out.baseAddress, let tb = t.baseAddress else { return }
                    for i in 0..<out.count { o[i] = tb[Int(s[i])] }
                }
            }
        }
        return Dataset(name: "fashion-mnist-\(split.rawValue)", inputs: pixels,
                       targets: .classes(IntTensor(shape: [n], scalars: labelValues), classCount: classNames.count),
                       targetNames: classNames)
    }

    /// Loads both splits; `limit` applies to each.
    public static func load(directory: String? = nil, limit: Int? = nil) throws -> (train: Dataset, test: Dataset) {
        (try load(.train, directory: directory, limit: limit), try load(.test, directory: directory, limit: limit))
    }

    /// `dir/name.gz` if it exists, else `dir/name`, else a not-found error naming both.
    private static func locate(_ dir: String, _ name: String) throws -> String {
        let base = (dir as NSString).appendingPathComponent(name)
        for candidate in [base + ".gz", base] where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        throw DataError.datasetNotFound(path: base + "[.gz]", dataset: "Fashion-MNIST file", fix: installHint)
    }
}
