import Foundation
import QForgeData
import QForgeGraph
import QForgeInteger
import QForgeNN
import QForgeQuant
import QForgeReport
import QForgeTensor
import TestSupport
import XCTest

/// QForge models exported as QONNX import back to the same outputs and the same integer
/// model, across the quantizer kinds QForge trains.
final class ONNXExportTests: XCTestCase {
    func trained(_ layers: [ModelDescription.LayerEntry], input: [Int], policy: QuantPolicy) throws -> (Model, Dataset) {
        let float = try Model(ModelDescription(name: "x", input: input, layers: layers), seed: 4)
        var q = try quantize(float, policy: policy)
        let n = 48
        let data = Dataset(name: "toy", inputs: randomTensor([n] + input, seed: 5, low: 0, high: 1),
                           targets: .classes(IntTensor(shape: [n], scalars: (0..<n).map { $0 % 3 }), classCount: 3))
        _ = try Trainer.train(&q, on: data, test: nil, options: TrainingOptions(epochs: 2, batchSize: 16))
        return (q, data)
    }

    func roundTrip(_ model: Model, _ data: Dataset, file: StaticString = #filePath, line: UInt = #line) throws {
        let (graph, tensors) = try model.lowered()
        let bytes = try ONNXExport.encode(graph: graph, tensors: tensors, format: .qonnx, batch: 1)
        let (g, t) = try ONNXImport.read(bytes: bytes, name: "back")
        let back = try Model(imported: g, tensors: t, path: "back.onnx")
        let want = model.predict(data.inputs), got = back.predict(data.inputs)
        XCTAssertEqual(got.shape, want.shape, file: file, line: line)
        let d = zip(got.scalars, want.scalars).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(d, 1e-5, "imported export differs from the model", file: file, line: line)
        let report = try compare(back, integer: try back.integerModel(), on: data)
        XCTAssertEqual(report.outputMismatches, 0, file: file, line: line)
        // QDQ: the same model in standard ONNX ops (encodes without error).
        XCTAssertNoThrow(try ONNXExport.encode(graph: graph, tensors: tensors, format: .qdq), file: file, line: line)
    }

    func testPerChannelConvWithInt32Biases() throws {
        var p = QuantPolicy.uniform(weightBits: 4, activationBits: 3, perChannel: true)
        p.biasBits = 32
        let (m, data) = try trained([.init(type: "Conv2d", out: 4, kernel: 3, padding: 1), .init(type: "BatchNorm"), .init(type: "ReLU"),
                                     .init(type: "MaxPool2d", kernel: 2), .init(type: "Flatten"), .init(type: "Dense", out: 3)],
                                    input: [1, 6, 6], policy: p)
        try roundTrip(m, data)
        // A bias scale that is not input scale × weight scale is refused, not changed.
        var (graph, tensors) = try m.lowered()
        let key = try XCTUnwrap(tensors.keys.first { $0.hasSuffix(".bias_quant.scale") })
        tensors[key] = Tensor(shape: tensors[key]!.shape, scalars: tensors[key]!.scalars.map { $0 * 2 })
        let (g, t) = try ONNXImport.read(bytes: try ONNXExport.encode(graph: graph, tensors: tensors, format: .qonnx))
        XCTAssertThrowsError(try Model(imported: g, tensors: t, path: "b.onnx")) {
            XCTAssertTrue("\($0)".contains("/bias_quant: bias scale"), "\($0)")
        }
    }

    func testBipolarWeightsAndAsymmetricActivations() throws {
        let p = QuantPolicy.uniform(weightBits: 1, activationBits: 4, zeroPoint: .learned)
        let (m, data) = try trained([.init(type: "Dense", out: 8), .init(type: "ReLU"), .init(type: "Dense", out: 3)], input: [10], policy: p)
        try roundTrip(m, data)
    }

    func testSigmoidAndTanhTables() throws {
        let p = QuantPolicy.uniform(weightBits: 4, activationBits: 6)
        let (m, data) = try trained([.init(type: "Dense", out: 8), .init(type: "Sigmoid"), .init(type: "Dense", out: 6), .init(type: "Tanh"),
                                     .init(type: "Dense", out: 3)], input: [10], policy: p)
        try roundTrip(m, data)
    }

    func testPowerOfTwoScales() throws {
        let p = QuantPolicy.uniform(weightBits: 6, activationBits: 5, powerOfTwo: true)
        let (m, data) = try trained([.init(type: "Dense", out: 8), .init(type: "ReLU"), .init(type: "Dense", out: 3)], input: [10], policy: p)
        try roundTrip(m, data)
    }

    /// QDQ refuses what it cannot hold, naming the node.
    func testQDQRefusesWideActivations() throws {
        let float = try Model(ModelDescription(name: "x", input: [10], layers: [.init(type: "Dense", out: 8), .init(type: "ReLU"), .init(type: "Dense", out: 3)]), seed: 4)
        let m = try quantize(float, policy: .uniform(weightBits: 4, activationBits: 12))
        let (graph, tensors) = try m.lowered()
        XCTAssertThrowsError(try ONNXExport.encode(graph: graph, tensors: tensors, format: .qdq)) {
            XCTAssertEqual("\($0)", "node 'layers.2/act_quant' (Quant): a 12-bit activation does not fit QuantizeLinear's 8-bit codes; export with --format qonnx, or quantize activations to 8 bits or fewer")
        }
    }
}
