import Foundation
import HardwareTestSupport
import QForgeHardware
import QForgeInteger
import XCTest

/// The emitted files of `smallDenseModel()` at PE 2, SIMD 2 / PE 1, SIMD 3 against the files in
/// Golden/small. After an intended change of the emitter, regenerate them with
///
///     QFORGE_REGENERATE_GOLDEN=1 swift test --filter QForgeHardwareTests.GoldenTests
///
/// and review the diff.
final class GoldenTests: XCTestCase {
    static let regenerate = "QFORGE_REGENERATE_GOLDEN=1 swift test --filter QForgeHardwareTests.GoldenTests"

    func testEmittedFilesMatchGolden() throws {
        let model = smallDenseModel()
        let graph = try HardwareGraph(model, foldings: [Folding(pe: 2, simd: 2), Folding(pe: 1, simd: 3)])
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 4, seed: 5), source: "random")
        let design = HardwareDesign(graph, vectors: vectors, integerModel: model)
        let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden/small").path
        if ProcessInfo.processInfo.environment["QFORGE_REGENERATE_GOLDEN"] != nil {
            try? FileManager.default.removeItem(atPath: golden)
            try design.write(to: golden)
            return
        }
        let stored = try FileManager.default.subpathsOfDirectory(atPath: golden).filter { !$0.hasSuffix("vectors") }.sorted()
        XCTAssertEqual(stored, design.files.keys.sorted(), "the set of files changed; regenerate with: \(Self.regenerate)")
        for (name, text) in design.files.sorted(by: { $0.key < $1.key }) {
            let expected = try? String(contentsOfFile: (golden as NSString).appendingPathComponent(name), encoding: .utf8)
            if expected != text {
                let first = zip((expected ?? "").split(separator: "\n", omittingEmptySubsequences: false), text.split(separator: "\n", omittingEmptySubsequences: false))
                    .enumerated().first { $0.element.0 != $0.element.1 }
                XCTFail("\(name) differs from Golden/small/\(name)" + (first.map { " at line \($0.offset + 1): '\($0.element.1)' (golden '\($0.element.0)')" } ?? "")
                        + "; if intended, regenerate with: \(Self.regenerate)")
            }
        }
    }
}
