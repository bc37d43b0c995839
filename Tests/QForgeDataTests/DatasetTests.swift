import Foundation
import TestSupport
import XCTest
import QForgeTensor
@testable import QForgeData

final class DatasetTests: XCTestCase {
    /// N samples; row i = (i, −i), label i % 10.
    private func indexed(_ n: Int) -> Dataset {
        let inputs = Tensor(shape: [n, 2]) { out in
            for i in 0..<n { out[2 * i] = Float(i); out[2 * i + 1] = -Float(i) }
        }
        return Dataset(name: "indexed", inputs: inputs,
                       targets: .classes(IntTensor(shape: [n], scalars: (0..<n).map { $0 % 10 }), classCount: 10))
    }

    func testBatchesCoverEveryIndexOncePerEpoch() {
        let d = indexed(60000)
        let batches = d.batches(size: 128, shuffle: true, seed: 42, epoch: 0)
        XCTAssertEqual(batches.count, 469)
        var seen = [Bool](repeating: false, count: 60000)
        for (b, batch) in batches.enumerated() {
            XCTAssertEqual(batch.count, b < 468 ? 128 : 96)
            XCTAssertEqual(batch.inputs.shape, [batch.count, 2])
            for i in batch.indices {
                XCTAssertFalse(seen[i])
                seen[i] = true
            }
        }
        XCTAssertTrue(seen.allSatisfy { $0 })
        XCTAssertEqual(batches.last?.count, 96)

        // Gathered rows and labels belong to the listed indices.
        let batch = batches[3]
        let x = batch.inputs.scalars
        for (k, i) in batch.indices.enumerated() {
            XCTAssertEqual(x[2 * k], Float(i))
            XCTAssertEqual(x[2 * k + 1], -Float(i))
            XCTAssertEqual(batch.targets.labels?.scalars[k], i % 10)
        }
    }

    func testBatchOrderDeterminism() {
        let d = indexed(1000)
        let a = d.batchOrder(shuffle: true, seed: 9, epoch: 2)
        XCTAssertEqual(a, d.batchOrder(shuffle: true, seed: 9, epoch: 2))
        XCTAssertNotEqual(a, d.batchOrder(shuffle: true, seed: 9, epoch: 3))
        XCTAssertNotEqual(a, d.batchOrder(shuffle: true, seed: 10, epoch: 2))
        var rng = SeededRandom(seed: 9 &+ 2 &* 0x9E37_79B9_7F4A_7C15)
        XCTAssertEqual(a, rng.permutation(1000))
        XCTAssertEqual(d.batchOrder(shuffle: false, seed: 9, epoch: 2), Array(0..<1000))
        let unshuffled = d.batches(size: 300, shuffle: false, seed: 0, epoch: 0)
        XCTAssertEqual(unshuffled.map(\.count), [300, 300, 300, 100])
        XCTAssertEqual(unshuffled[1].indices, Array(300..<600))
        XCTAssertEqual(d.batches(size: 64, shuffle: true, seed: 9, epoch: 2).flatMap(\.indices), a)
    }

    func testSubsetAndRegressionTargets() {
        let d = Dataset(name: "r", inputs: Tensor(shape: [4, 1, 2], scalars: [0, 1, 2, 3, 4, 5, 6, 7]),
                        targets: .regression(Tensor(shape: [4, 2], scalars: [10, 11, 12, 13, 14, 15, 16, 17])),
                        targetNames: ["a", "b"])
        let s = d.subset(indices: [3, 0, 3])
        XCTAssertEqual(s.count, 3)
        XCTAssertEqual(s.inputs.shape, [3, 1, 2])
        XCTAssertEqual(s.inputs.scalars, [6, 7, 0, 1, 6, 7])
        XCTAssertEqual(s.targets.values?.scalars, [16, 17, 10, 11, 16, 17])
        XCTAssertEqual(s.targetNames, ["a", "b"])
        XCTAssertEqual(d.outputCount, 2)
        XCTAssertEqual(d.featureShape, [1, 2])
        XCTAssertEqual(d.reshaped(featureShape: [2]).inputs.shape, [4, 2])
        XCTAssertEqual(d.subset(indices: []).count, 0)
    }

    func testSplitDeterministicAndDisjoint() {
        let d = indexed(1000)
        let (train, validation) = d.split(validationFraction: 0.2, seed: 5)
        XCTAssertEqual(train.count, 800)
        XCTAssertEqual(validation.count, 200)
        let trainIDs = train.inputs.scalars.enumerated().filter { $0.offset % 2 == 0 }.map { Int($0.element) }
        let validationIDs = validation.inputs.scalars.enumerated().filter { $0.offset % 2 == 0 }.map { Int($0.element) }
        XCTAssertTrue(Set(trainIDs).isDisjoint(with: validationIDs))
        XCTAssertEqual(Set(trainIDs).union(validationIDs), Set(0..<1000))
        XCTAssertEqual(trainIDs, trainIDs.sorted())
        XCTAssertEqual(validation.targets.labels?.scalars, validationIDs.map { $0 % 10 })

        let again = d.split(validationFraction: 0.2, seed: 5)
        XCTAssertEqual(again.train.inputs.scalars, train.inputs.scalars)
        XCTAssertEqual(again.validation.inputs.scalars, validation.inputs.scalars)
        let other = d.split(validationFraction: 0.2, seed: 6)
        XCTAssertNotEqual(other.validation.inputs.scalars, validation.inputs.scalars)
        XCTAssertEqual(d.split(validationFraction: 0, seed: 1).validation.count, 0)
    }
}
