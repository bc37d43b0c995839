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

/// The QONNX models Brevitas exported (Tests/Fixtures/qonnx, see its README): imported, run
/// fake-quantized against Brevitas' own logits, and streamlined into integer models that must
/// agree with the fake-quantized model on every code.
final class QONNXFixtureTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/qonnx").path

    struct Reference {
        var inputs: Tensor
        var labels: [Int]
        var logits: [Float]
        var argmax: [Int]
    }

    static func raw(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name)"))
    }

    static func floats(_ d: Data) -> [Float] {
        d.withUnsafeBytes { p in (0..<(d.count / 4)).map { Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
    }

    static func ints(_ d: Data) -> [Int] {
        d.withUnsafeBytes { p in (0..<(d.count / 4)).map { Int(Int32(littleEndian: p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) } }
    }

    /// The arrays `NAME.ref.json` describes (raw little-endian files).
    static func reference(_ model: String) throws -> Reference {
        let json = try JSONSerialization.jsonObject(with: try raw("\(model).ref.json")) as! [String: Any]
        let files = ((json["reference"] as! [String: Any])["raw"] as! [String: [String: Any]])
        func load(_ key: String) throws -> (Data, [Int]) {
            (try raw(files[key]!["file"] as! String), files[key]!["shape"] as! [Int])
        }
        let (x, shape) = try load("inputs")
        return Reference(inputs: Tensor(shape: shape, scalars: floats(x)), labels: ints(try load("labels").0),
                         logits: floats(try load("logits").0), argmax: ints(try load("argmax").0))
    }

    struct Result: CustomStringConvertible {
        var argmaxAgree = 0, maxDifference: Float = 0, tieFlips = 0, mismatches = 0
        var description: String {
            "argmax agreement \(argmaxAgree)/100, max |logit − Brevitas| \(maxDifference), images beyond 1e-4 (tie flips) \(tieFlips), integer-model mismatches \(mismatches)"
        }
    }

    /// `integerImages`: how many images the integer model is compared on (all by default; the
    /// CNN's debug-build integer executor takes ~0.4 s per image, so its debug test uses fewer).
    func check(_ name: String, integerImages: Int? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Result {
        let model = try Model.loadAny(from: "\(Self.directory)/\(name).qonnx.onnx")
        let ref = try Self.reference(name)
        let n = ref.inputs.shape[0]
        let flat = Tensor(shape: [n, ref.inputs.count / n], scalars: ref.inputs.scalars)
        let logits = model.predict(flat).scalars
        var r = Result()
        for i in 0..<n {
            let row = Array(logits[(i * 10)..<((i + 1) * 10)]), want = Array(ref.logits[(i * 10)..<((i + 1) * 10)])
            let d = zip(row, want).map { abs($0 - $1) }.max()!
            r.maxDifference = max(r.maxDifference, d)
            if d > 1e-4 { r.tieFlips += 1 }
            if row.indices.max(by: { row[$0] < row[$1] }) == ref.argmax[i] { r.argmaxAgree += 1 }
        }
        let m = min(n, integerImages ?? n)
        let data = Dataset(name: name, inputs: flat.slice(axis: 0, 0..<m),
                           targets: .classes(IntTensor(shape: [m], scalars: Array(ref.labels.prefix(m))), classCount: 10))
        let integer = try model.integerModel()
        r.mismatches = try compare(model, integer: integer, on: data).outputMismatches
        print("\(name): \(r) (integer model on \(m) images)")
        XCTAssertEqual(r.argmaxAgree, n, "argmax differs from Brevitas", file: file, line: line)
        XCTAssertLessThanOrEqual(r.tieFlips, 5, "more images than quantization ties explain differ beyond 1e-4", file: file, line: line)
        XCTAssertEqual(r.mismatches, 0, "the integer model differs from the fake-quantized model", file: file, line: line)
        return r
    }

    func testMLPW8A8() throws {
        let r = try check("mlp_w8a8")
        XCTAssertEqual(r.tieFlips, 0)
    }

    func testMLPW4A4() throws {
        let r = try check("mlp_w4a4")
        XCTAssertEqual(r.tieFlips, 0)
    }

    func testCNNW4A4() throws {
        #if DEBUG
        _ = try check("cnn_w4a4", integerImages: 20)
        #else
        _ = try check("cnn_w4a4")
        #endif
    }

    /// The imported graph has QForge's layer names, so the reader and the streamliner apply.
    func testImportedLayersAndNames() throws {
        let (graph, _) = try ONNXImport.load("\(Self.directory)/cnn_w4a4.qonnx.onnx")
        XCTAssertEqual(graph.inputs, [ValueInfo(name: "input", shape: [nil, 1, 28, 28])])
        XCTAssertEqual(graph.nodes.prefix(6).map(\.name), ["layers.0", "layers.1/weight_quant", "layers.1", "layers.2", "layers.3", "layers.3/act_quant"])
        let model = try Model.loadAny(from: "\(Self.directory)/cnn_w4a4.qonnx.onnx")
        XCTAssertEqual(model.network.layers.map { "\(type(of: $0))" },
                       ["QuantIdentity", "QuantConv2d", "BatchNorm", "QuantReLU", "QuantConv2d", "BatchNorm", "QuantReLU", "MaxPool2d",
                        "QuantConv2d", "BatchNorm", "QuantReLU", "MaxPool2d", "Flatten", "QuantDense", "BatchNorm", "QuantReLU", "QuantDense"])
        let integer = try model.integerModel()
        XCTAssertEqual(integer.layers.map(\.name), ["layers.3/act_quant", "layers.6/act_quant", "layers.10/act_quant", "layers.15/act_quant", "layers.16"])
    }
}
