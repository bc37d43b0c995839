import Foundation
import QForgeData
import QForgeNN
import QForgeTensor
import TestSupport
import XCTest

/// The README's library snippet, on a slice of the data so it runs in debug builds.
final class ReadmeSnippetTests: XCTestCase {
    func testReadmeTrainingSnippet() throws {
        try requireResource(FileManager.default.fileExists(atPath: FashionMNIST.resolveDirectory()),
                            "Fashion-MNIST not installed (make deps installs dataset-fashion-mnist)")
        let (train, test) = try FashionMNIST.load(limit: 2000)
        var rng = SeededRandom(seed: 0)
        let network = Sequential([
            Flatten(),
            Dense(784, 256, rng: &rng), ReLU(),
            Dense(256, 256, rng: &rng), ReLU(),
            Dense(256, 10, rng: &rng),
        ])
        var model = Model(name: "mlp", network: network, inputShape: [1, 28, 28], task: .classification)
        let options = TrainingOptions(epochs: 2, batchSize: 128, optimizer: .adam, learningRate: 1e-3)
        let result = try Trainer.train(&model, on: train, test: test, options: options)
        // 2000 images, two epochs: far above chance (0.1), far below the full recipe.
        XCTAssertGreaterThan(result.final?.accuracy ?? 0, 0.6)
        let path = NSTemporaryDirectory() + "readme-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try model.save(to: path)
        XCTAssertEqual(try Model.load(from: path).evaluate(test).accuracy, result.final?.accuracy)
    }
}
