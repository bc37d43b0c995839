import Foundation
import TestSupport
import XCTest
import QForgeTensor
@testable import QForgeData

final class FashionMNISTTests: XCTestCase {
    /// Known values of the real files, computed once with Python's gzip module:
    /// first training label 9, sum of the raw pixels of training image 0 = 76247;
    /// first test label 9, pixel sum of test image 0 = 33456.
    func testRealFiles() throws {
        let dir = FashionMNIST.defaultDirectory
        try requireResource(FileManager.default.fileExists(atPath: dir), "\(dir) not installed; run 'make deps'")
        let (train, test) = try FashionMNIST.load(directory: dir)
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual(test.count, 10000)
        XCTAssertEqual(train.inputs.shape, [60000, 1, 28, 28])
        XCTAssertEqual(test.inputs.shape, [10000, 1, 28, 28])
        XCTAssertEqual(train.targets.labels?.shape, [60000])
        XCTAssertEqual(train.targets.labels?.scalars.first, 9)
        XCTAssertEqual(test.targets.labels?.scalars.first, 9)
        guard case .classes(_, let classCount) = train.targets else { return XCTFail("not classification") }
        XCTAssertEqual(classCount, 10)

        func pixelSum(_ d: Dataset, _ i: Int) -> Double {
            let p = d.inputs.storage.pointer + i * 784
            return (0..<784).reduce(0.0) { $0 + Double(p[$1]) }
        }
        XCTAssertEqual(pixelSum(train, 0) * 255, 76247, accuracy: 0.01)
        XCTAssertEqual(pixelSum(test, 0) * 255, 33456, accuracy: 0.01)
        let inRange = train.inputs.withUnsafeBufferPointer { $0.allSatisfy { $0 >= 0 && $0 <= 1 } }
        XCTAssertTrue(inRange)

        // limit: only the first samples, identical to the full load.
        let small = try FashionMNIST.load(.train, directory: dir, limit: 100)
        XCTAssertEqual(small.count, 100)
        XCTAssertEqual(small.targets.labels?.scalars, Array(train.targets.labels!.scalars.prefix(100)))
        XCTAssertEqual(pixelSum(small, 0), pixelSum(train, 0))
    }

    /// Builds a tiny Fashion-MNIST-shaped directory: train files plain, test files gzipped.
    private func makeFakeDirectory(trainCount: Int = 3, trainLabels: [UInt8]? = nil) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        let images = (0..<(trainCount * 784)).map { UInt8($0 % 256) }
        try dir.write("train-images-idx3-ubyte", idxHeader(type: 0x08, dims: [UInt32(trainCount), 28, 28]) + images)
        let labels = trainLabels ?? (0..<trainCount).map { UInt8($0 % 10) }
        try dir.write("train-labels-idx1-ubyte", idxHeader(type: 0x08, dims: [UInt32(labels.count)]) + labels)
        let testImages = try dir.write("t10k-images-idx3-ubyte", idxHeader(type: 0x08, dims: [2, 28, 28]) + Array(repeating: 255, count: 2 * 784))
        let testLabels = try dir.write("t10k-labels-idx1-ubyte", idxHeader(type: 0x08, dims: [2]) + [7, 1])
        try gzipFile(testImages, to: testImages + ".gz")
        try gzipFile(testLabels, to: testLabels + ".gz")
        try FileManager.default.removeItem(atPath: testImages)
        try FileManager.default.removeItem(atPath: testLabels)
        return dir
    }

    func testSyntheticDirectoryPlainAndGzipNames() throws {
        let dir = try makeFakeDirectory()
        let (train, test) = try FashionMNIST.load(directory: dir.path)
        XCTAssertEqual(train.inputs.shape, [3, 1, 28, 28])
        XCTAssertEqual(train.targets.labels?.scalars, [0, 1, 2])
        XCTAssertEqual(train.inputs.scalars[5], 5 / 255)
        XCTAssertEqual(train.inputs.scalars[255], 1)
        XCTAssertEqual(train.inputs.scalars[256], 0)
        XCTAssertEqual(test.inputs.shape, [2, 1, 28, 28])
        XCTAssertEqual(test.targets.labels?.scalars, [7, 1])
        XCTAssertTrue(test.inputs.scalars.allSatisfy { $0 == 1 })
        XCTAssertEqual(train.targetNames, FashionMNIST.classNames)
        // Flattening for a dense network.
        let flat = train.reshaped(featureShape: [784])
        XCTAssertEqual(flat.inputs.shape, [3, 784])
        XCTAssertEqual(flat.inputs.scalars, train.inputs.scalars)
        // limit applies to both files.
        let limited = try FashionMNIST.load(.train, directory: dir.path, limit: 2)
        XCTAssertEqual(limited.count, 2)
        XCTAssertEqual(limited.targets.labels?.scalars, [0, 1])
    }

    func testDirectoryResolution() {
        XCTAssertEqual(FashionMNIST.resolveDirectory(nil, environment: [:]), "/usr/share/datasets/fashion-mnist")
        XCTAssertEqual(FashionMNIST.resolveDirectory(nil, environment: ["QFORGE_FASHION_MNIST": "/env/dir"]), "/env/dir")
        XCTAssertEqual(FashionMNIST.resolveDirectory("/arg/dir", environment: ["QFORGE_FASHION_MNIST": "/env/dir"]), "/arg/dir")
    }

    func testMissingDirectoryAndFiles() throws {
        let missing = "/nonexistent/qforge/fashion-mnist"
        let e = assertDataError("datasetNotFound", mentions: missing) { _ = try FashionMNIST.load(.train, directory: missing) }
        XCTAssertTrue(e?.description.contains("apt-get install -y dataset-fashion-mnist") ?? false)
        XCTAssertTrue(e?.description.contains("--data-dir") ?? false)

        let empty = try TemporaryDirectory()
        assertDataError("datasetNotFound", mentions: "train-images-idx3-ubyte") { _ = try FashionMNIST.load(.train, directory: empty.path) }
    }

    func testCountMismatchAndBadLabels() throws {
        let mismatched = try makeFakeDirectory(trainCount: 3, trainLabels: [1, 2])
        let e = assertDataError("mismatch", mentions: "train-labels-idx1-ubyte") { _ = try FashionMNIST.load(.train, directory: mismatched.path) }
        XCTAssertTrue(e?.description.contains("2 labels") ?? false)

        let badLabel = try makeFakeDirectory(trainCount: 2, trainLabels: [1, 10])
        assertDataError("invalidValue", mentions: "train-labels-idx1-ubyte") { _ = try FashionMNIST.load(.train, directory: badLabel.path) }

        let wrongShape = try TemporaryDirectory()
        try wrongShape.write("train-images-idx3-ubyte", idxHeader(type: 0x08, dims: [1, 4, 4]) + Array(repeating: 0, count: 16))
        try wrongShape.write("train-labels-idx1-ubyte", idxHeader(type: 0x08, dims: [1]) + [0])
        assertDataError("mismatch", mentions: "train-images-idx3-ubyte") { _ = try FashionMNIST.load(.train, directory: wrongShape.path) }
    }
}
