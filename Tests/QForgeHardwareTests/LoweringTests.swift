import HardwareTestSupport
import QForgeHardware
import QForgeInteger
import QForgeTensor
import XCTest

final class LoweringTests: XCTestCase {
    func testWriteRandomDesign() throws {
        guard let dir = ProcessInfo.processInfo.environment["QFORGE_DUMP_DESIGN"] else { throw XCTSkip("set QFORGE_DUMP_DESIGN") }
        var gen = RandomIntegerModel(seed: UInt64(ProcessInfo.processInfo.environment["QFORGE_DUMP_SEED"] ?? "1")!)
        let model = gen.model()
        let graph = try HardwareGraph(model, foldings: model.layers.map { _ in Folding(pe: 1, simd: 1) })
        let vectors = TestVectors(model: model, inputs: TestVectors.randomInputs(model, count: 10, seed: 3), source: "random")
        try HardwareDesign(graph, vectors: vectors, integerModel: model).write(to: dir, force: true)
    }
}
