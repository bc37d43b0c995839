import Foundation
@testable import QForgeGraph
import QForgeNN
import QForgeQuant
import QForgeTensor
import TestSupport
import XCTest

/// Bad ONNX input: every problem is one line naming it, never a crash.
final class ONNXImportTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/qonnx").path

    static func fixtureBytes(_ name: String = "mlp_w4a4") throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(fixtures)/\(name).qonnx.onnx")))
    }

    // MARK: Building small models

    static func tensor(_ name: String, _ shape: [Int], _ values: [Float]) -> Onnx_TensorProto {
        ONNXFile.tensorProto(name, Tensor(shape: shape, scalars: values))
    }

    static func node(_ op: String, _ inputs: [String], _ outputs: [String], domain: String = "",
                     ints: [String: Int] = [:], strings: [String: String] = [:]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = outputs[0] + "_node"
        n.input = inputs
        n.output = outputs
        n.domain = domain
        for (k, v) in ints.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto(); a.name = k; a.type = .int; a.i = Int64(v); n.attribute.append(a)
        }
        for (k, v) in strings.sorted(by: { $0.key < $1.key }) {
            var a = Onnx_AttributeProto(); a.name = k; a.type = .string; a.s = Data(v.utf8); n.attribute.append(a)
        }
        return n
    }

    static func value(_ name: String, _ dims: [Int]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1
        t.shape.dim = dims.map { d in var x = Onnx_TensorShapeProto.Dimension(); x.dimValue = Int64(d); return x }
        v.type.tensorType = t
        return v
    }

    /// x [1, 4] → Quant (8-bit unsigned) → Gemm with a 4-bit Quant-ed weight [3, 4] → y.
    static func tinyModel() -> Onnx_ModelProto {
        var g = Onnx_GraphProto()
        g.name = "tiny"
        g.input = [value("x", [1, 4])]
        g.output = [value("y", [1, 3])]
        let q = "qonnx.custom_op.general"
        g.initializer = [tensor("s_in", [], [1.0 / 255]), tensor("z", [], [0]), tensor("b8", [], [8]), tensor("b4", [], [4]),
                         tensor("W", [3, 4], (0..<12).map { Float($0 - 6) / 10 }), tensor("s_w", [], [0.1]), tensor("bias", [3], [0.5, -0.5, 0])]
        g.node = [node("Quant", ["x", "s_in", "z", "b8"], ["xq"], domain: q, ints: ["signed": 0, "narrow": 0], strings: ["rounding_mode": "ROUND"]),
                  node("Quant", ["W", "s_w", "z", "b4"], ["Wq"], domain: q, ints: ["signed": 1, "narrow": 1], strings: ["rounding_mode": "ROUND"]),
                  node("Gemm", ["xq", "Wq", "bias"], ["y"], ints: ["transB": 1])]
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.graph = g
        var o = Onnx_OperatorSetIdProto(); o.version = 13
        m.opsetImport = [o]
        return m
    }

    func importError(_ model: Onnx_ModelProto, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        do {
            _ = try ONNXImport.read(bytes: try ONNXFile.encode(model), fileName: "m.onnx")
            XCTFail("imported without error", file: file, line: line)
            return ""
        } catch let e as GraphError {
            return "\(e)"
        }
    }

    static func floats(_ name: String, _ key: String, _ v: [Float]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = key; a.type = .floats; a.floats = v; return a
    }

    static func intsAttribute(_ key: String, _ v: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = key; a.type = .ints; a.ints = v.map(Int64.init); return a
    }

    /// QONNX IntQuant by hand: clamp(round-half-even(x / s)) · s.
    static func fq(_ x: Float, _ s: Float, _ bits: Int, signed: Bool, narrow: Bool) -> Float {
        let lo = signed ? -Float(1 << (bits - 1)) + (narrow ? 1 : 0) : 0, hi = signed ? Float(1 << (bits - 1)) - 1 : Float(1 << bits) - 1
        return min(max((x / s).rounded(.toNearestOrEven), lo), hi) * s
    }

    /// Layouts other exporters write: MatMul with a transposed Quant-ed weight and an Add for
    /// the bias, a Gemm without transB and per-channel scales [1, out], Identity, a Constant,
    /// and a scalar Mul at the end (an affine BatchNorm).
    func testMatMulTransposeAndAffineLayoutsImport() throws {
        let q = "qonnx.custom_op.general"
        let w1: [Float] = (0..<12).map { Float(($0 * 7) % 11) / 10 - 0.5 }  // [3, 4] as PyTorch stores it
        let w2: [Float] = (0..<6).map { Float(($0 * 5) % 7) / 5 - 0.6 }    // [3, 2] as [in, out]
        var g = Onnx_GraphProto()
        g.input = [Self.value("x", [1, 4])]
        g.output = [Self.value("y", [1, 2])]
        g.initializer = [Self.tensor("s_in", [], [1.0 / 16]), Self.tensor("z", [], [0]), Self.tensor("b6", [], [6]), Self.tensor("b4", [], [4]),
                         Self.tensor("W1", [3, 4], w1), Self.tensor("s1", [], [0.125]), Self.tensor("bias1", [3], [0.1, -0.2, 0.3]),
                         Self.tensor("s_a", [], [0.25]), Self.tensor("W2", [3, 2], w2), Self.tensor("s2", [1, 2], [0.1, 0.2])]
        var two = Onnx_NodeProto()
        two.opType = "Constant"; two.output = ["two"]; two.name = "two"
        var value = Onnx_AttributeProto(); value.name = "value"; value.type = .tensor; value.t = Self.tensor("", [], [2])
        two.attribute = [value]
        var transpose = Self.node("Transpose", ["W1q"], ["W1t"])
        transpose.attribute = [Self.intsAttribute("perm", [1, 0])]
        g.node = [Self.node("Quant", ["x", "s_in", "z", "b6"], ["xq"], domain: q, ints: ["signed": 0, "narrow": 0], strings: ["rounding_mode": "ROUND"]),
                  Self.node("Quant", ["W1", "s1", "z", "b4"], ["W1q"], domain: q, ints: ["signed": 1, "narrow": 1], strings: ["rounding_mode": "ROUND"]),
                  transpose, Self.node("MatMul", ["xq", "W1t"], ["h"]), Self.node("Add", ["h", "bias1"], ["hb"]), Self.node("Relu", ["hb"], ["r"]),
                  Self.node("Quant", ["r", "s_a", "z", "b4"], ["rq"], domain: q, ints: ["signed": 0, "narrow": 0], strings: ["rounding_mode": "ROUND"]),
                  Self.node("Quant", ["W2", "s2", "z", "b4"], ["W2q"], domain: q, ints: ["signed": 1, "narrow": 1], strings: ["rounding_mode": "ROUND"]),
                  Self.node("Gemm", ["rq", "W2q"], ["g"]), Self.node("Identity", ["g"], ["gi"]), two, Self.node("Mul", ["gi", "two"], ["y"])]
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.graph = g
        let (graph, tensors) = try ONNXImport.read(bytes: try ONNXFile.encode(m))
        let model = try Model(imported: graph, tensors: tensors, path: "layouts.onnx")
        XCTAssertEqual(model.network.layers.map { "\(type(of: $0))" }, ["QuantIdentity", "QuantDense", "QuantReLU", "QuantDense", "BatchNorm"])
        XCTAssertEqual(graph.quantizers["layers.3.weight_quant.q"]?.axis, 0)
        let x: [Float] = [0.3, 0.91, 0.05, 0.5]
        let y = model.predict(Tensor(shape: [1, 4], scalars: x)).scalars
        // By hand, as the ONNX graph says.
        let xq = x.map { Self.fq($0, 1.0 / 16, 6, signed: false, narrow: false) }
        let h = (0..<3).map { o in max(0, (0..<4).reduce(Float(0)) { $0 + xq[$1] * Self.fq(w1[o * 4 + $1], 0.125, 4, signed: true, narrow: true) } + [0.1, -0.2, 0.3][o]) }
        let hq = h.map { Self.fq($0, 0.25, 4, signed: false, narrow: false) }
        let want = (0..<2).map { o in 2 * (0..<3).reduce(Float(0)) { $0 + hq[$1] * Self.fq(w2[$1 * 2 + o], [0.1, 0.2][o], 4, signed: true, narrow: true) } }
        XCTAssertEqual(y.count, 2)
        for (a, b) in zip(y, want) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    /// A flatten whose shape is computed from the input's shape (Shape → Gather → Unsqueeze
    /// → Concat → Reshape, as torch exports `x.view(x.size(0), -1)`) folds into a Flatten.
    func testComputedFlattenShapeFolds() throws {
        var m = Self.tinyModel()
        m.graph.input = [Self.value("x", [1, 1, 2, 2])]
        m.graph.initializer += [Self.tensor("zero", [], [0]), Self.tensor("minus1", [1], [-1])]
        var unsqueeze = Self.node("Unsqueeze", ["n"], ["n1"])
        unsqueeze.attribute = [Self.intsAttribute("axes", [0])]
        m.graph.node.insert(contentsOf: [Self.node("Shape", ["xq"], ["s"]), Self.node("Gather", ["s", "zero"], ["n"]), unsqueeze,
                                         Self.node("Concat", ["n1", "minus1"], ["target"], ints: ["axis": 0]),
                                         Self.node("Reshape", ["xq", "target"], ["flat"])], at: 1)
        m.graph.node[m.graph.node.count - 1].input[0] = "flat"
        let (graph, tensors) = try ONNXImport.read(bytes: try ONNXFile.encode(m))
        XCTAssertEqual(graph.nodes.map(\.op), [.quant, .flatten, .quant, .gemm])
        let model = try Model(imported: graph, tensors: tensors, path: "flat.onnx")
        XCTAssertEqual(model.predict(Tensor(shape: [2, 4], scalars: [0, 0.5, 1, 0.25, 1, 1, 1, 1])).shape, [2, 3])
    }

    /// A bipolar-weight convolution with per-channel scales, BatchNorm, ReLU, a Flatten and a
    /// float dense layer.
    func testBipolarConvImports() throws {
        let q = "qonnx.custom_op.general"
        var g = Onnx_GraphProto()
        g.input = [Self.value("x", [1, 1, 4, 4])]
        g.output = [Self.value("y", [1, 3])]
        g.initializer = [Self.tensor("s_in", [], [1.0 / 255]), Self.tensor("z", [], [0]), Self.tensor("b8", [], [8]), Self.tensor("b3", [], [3]),
                         Self.tensor("W", [2, 1, 3, 3], (0..<18).map { Float($0 % 5) - 2 }), Self.tensor("sw", [2, 1, 1, 1], [0.5, 0.25]),
                         Self.tensor("g", [2], [1, -1]), Self.tensor("b", [2], [0, 0.1]), Self.tensor("mu", [2], [0.1, 0]), Self.tensor("var", [2], [1, 2]),
                         Self.tensor("s_a", [], [0.5]), Self.tensor("D", [3, 32], (0..<96).map { Float($0 % 7) / 7 - 0.4 })]
        var conv = Self.node("Conv", ["xq", "Wq"], ["c"])
        conv.attribute = [Self.intsAttribute("pads", [1, 1, 1, 1]), Self.intsAttribute("kernel_shape", [3, 3])]
        g.node = [Self.node("Quant", ["x", "s_in", "z", "b8"], ["xq"], domain: q, ints: ["signed": 0, "narrow": 0], strings: ["rounding_mode": "ROUND"]),
                  Self.node("BipolarQuant", ["W", "sw"], ["Wq"], domain: q), conv,
                  Self.node("BatchNormalization", ["c", "g", "b", "mu", "var"], ["bn"]), Self.node("Relu", ["bn"], ["r"]),
                  Self.node("Quant", ["r", "s_a", "z", "b3"], ["rq"], domain: q, ints: ["signed": 0, "narrow": 0], strings: ["rounding_mode": "ROUND"]),
                  Self.node("Flatten", ["rq"], ["f"]), Self.node("Gemm", ["f", "D"], ["y"], ints: ["transB": 1])]
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.graph = g
        let (graph, tensors) = try ONNXImport.read(bytes: try ONNXFile.encode(m))
        let model = try Model(imported: graph, tensors: tensors, path: "bipolar.onnx")
        XCTAssertEqual(model.network.layers.map { "\(type(of: $0))" }, ["QuantIdentity", "QuantConv2d", "BatchNorm", "QuantReLU", "Flatten", "Dense"])
        let conv2d = try XCTUnwrap(model.network.layers[1] as? QuantConv2d)
        XCTAssertTrue(conv2d.weightQuantizer.settings.bipolar)
        XCTAssertEqual(conv2d.weightQuantizer.scaleValues(for: conv2d.weight.value), [0.5, 0.25])
        let y = model.predict(Tensor(shape: [2, 16], scalars: (0..<32).map { Float($0) / 31 }))
        XCTAssertEqual(y.shape, [2, 3])
        XCTAssertTrue(y.scalars.allSatisfy(\.isFinite))
    }

    // MARK: Tests

    func testTinyModelImports() throws {
        let (graph, tensors) = try ONNXImport.read(bytes: try ONNXFile.encode(Self.tinyModel()))
        XCTAssertEqual(graph.nodes.map(\.name), ["layers.0", "layers.1/weight_quant", "layers.1"])
        XCTAssertEqual(tensors["layers.1.weight"]?.shape, [3, 4])
        let m = try Model(imported: graph, tensors: tensors, path: "tiny.onnx")
        let y = m.predict(Tensor(shape: [1, 4], scalars: [0, 0.5, 1, 0.25]))
        XCTAssertEqual(y.shape, [1, 3])
    }

    func testTruncatedFile() throws {
        let bytes = try Self.fixtureBytes()
        XCTAssertThrowsError(try ONNXImport.read(bytes: Array(bytes.prefix(bytes.count / 2)), fileName: "cut.onnx")) {
            XCTAssertEqual("\($0)", "cut.onnx: not an ONNX model: protobuf decoding failed (the data ends in the middle of a field: the file is truncated) (expected an .onnx file: a protobuf ModelProto with a graph)")
        }
        XCTAssertThrowsError(try ONNXImport.read(bytes: [], fileName: "empty.onnx")) {
            XCTAssertEqual("\($0)", "empty.onnx: not an ONNX model: the file is empty (expected an .onnx file: a protobuf ModelProto with a graph)")
        }
    }

    func testWrongProtobuf() throws {
        // A TensorProto is valid protobuf but no model.
        var t = Self.tensor("w", [2], [1, 2])
        t.docString = "not a model"
        let bytes: [UInt8] = try t.serializedBytes()
        XCTAssertThrowsError(try ONNXImport.read(bytes: bytes, fileName: "t.onnx")) {
            XCTAssertTrue("\($0)".hasPrefix("t.onnx: not an ONNX model: "), "\($0)")
        }
        // A safetensors file given by mistake.
        XCTAssertThrowsError(try ONNXImport.read(bytes: Array("{\"__metadata__\":{}}".utf8), fileName: "m.safetensors")) {
            XCTAssertTrue("\($0)".hasPrefix("m.safetensors: not an ONNX model: "), "\($0)")
        }
    }

    func testUnsupportedOp() throws {
        var m = Self.tinyModel()
        m.graph.node.append(Self.node("Resize", ["y"], ["z"]))
        m.graph.output = [Self.value("z", [1, 3])]
        XCTAssertEqual(try importError(m), "m.onnx: node 'z_node' (Resize): QForge does not import this op (it imports Quant, BipolarQuant, Trunc, MultiThreshold, Gemm, MatMul, Conv, BatchNormalization, Add/Mul by constants, Relu, Sigmoid, Tanh, MaxPool, Flatten, flattening Reshape/Transpose, Identity, Dropout)")
        var t = Self.tinyModel()
        t.graph.node.insert(Self.node("MultiThreshold", ["x", "W"], ["xt"], domain: "qonnx.custom_op.general"), at: 0)
        t.graph.node[1].input[0] = "xt"
        // A MultiThreshold imports (QONNXThresholdTruncTests), but its thresholds must fit the channels.
        XCTAssertEqual(try importError(t), "m.onnx: node 'xt_node' (MultiThreshold): thresholds of shape [3, 4] do not fit 4 channels; MultiThreshold needs [channels or 1, steps] numbers")
    }

    func testQuantWithComputedBitWidth() throws {
        var m = Self.tinyModel()
        m.graph.input.append(Self.value("bits", [1]))
        m.graph.node[0].input[3] = "bits"
        XCTAssertEqual(try importError(m), "m.onnx: node 'xq_node' (Quant): its bit width input 'bits' is computed, not a constant; QForge needs a constant bit width (fold it first, e.g. with qonnx.util.cleanup)")
        var w = Self.tinyModel()
        w.graph.initializer[3] = Self.tensor("b4", [], [4.5])
        XCTAssertEqual(try importError(w), "m.onnx: node 'Wq_node' (Quant): bit width [4.5] is not one integer in 1…16 (weights take 1…16 bits)")
    }

    /// Initializers moved to an external-data file import the same; without the file the
    /// error names it.
    func testExternalData() throws {
        let dir = try TemporaryDirectory()
        var m = try Onnx_ModelProto(serializedBytes: try Self.fixtureBytes())
        var blob = [UInt8]()
        for i in m.graph.initializer.indices where m.graph.initializer[i].rawData.count > 64 {
            var t = m.graph.initializer[i]
            while blob.count % 4096 != 0 { blob.append(0) }
            let offset = blob.count
            blob += [UInt8](t.rawData)
            t.rawData = Data()
            t.clearRawData()
            t.dataLocation = .external
            t.externalData = [("location", "mlp.onnx.data"), ("offset", "\(offset)"), ("length", "\(blob.count - offset)")].map { k, v in
                var e = Onnx_StringStringEntryProto(); e.key = k; e.value = v; return e
            }
            m.graph.initializer[i] = t
        }
        let path = try dir.write("mlp.onnx", try ONNXFile.encode(m))
        XCTAssertThrowsError(try ONNXImport.load(path)) {
            XCTAssertTrue("\($0)".contains("keeps its data in 'mlp.onnx.data', which cannot be read beside the model (cannot read: No such file or directory); copy the .onnx.data file next to the .onnx file"), "\($0)")
        }
        _ = try dir.write("mlp.onnx.data", blob)
        let (external, tensors) = try ONNXImport.load(path)
        let (inline, inlineTensors) = try ONNXImport.load("\(Self.fixtures)/mlp_w4a4.qonnx.onnx")
        XCTAssertEqual(external.nodes, inline.nodes)
        XCTAssertEqual(tensors.mapValues(\.scalars), inlineTensors.mapValues(\.scalars))
        // A data file too short for the offsets.
        _ = try dir.write("mlp.onnx.data", Array(blob.prefix(1000)))
        XCTAssertThrowsError(try ONNXImport.load(path)) {
            XCTAssertTrue("\($0)".contains("lie outside 'mlp.onnx.data'"), "\($0)")
        }
    }

    /// Deterministic mutations of a fixture's bytes: each import either succeeds or throws a
    /// GraphError / ModelError; none crashes. Mutations favour the first 8 KiB, where the
    /// nodes and tensor headers are (the rest is mostly raw weight data).
    func testFuzzedBytesNeverCrash() throws {
        let start = Date()
        let (fixture, tiny) = try fuzz(Self.fixtureBytes(), count: 300)
        let (tinyFixture, tinyTiny) = try fuzz(ONNXFile.encode(Self.tinyModel()), count: 3000)
        print("fuzz: mlp_w4a4 \(fixture) imported, \(tiny) refused; tiny model \(tinyFixture) imported, \(tinyTiny) refused (\(Int(Date().timeIntervalSince(start))) s)")
    }

    /// Imports `count` mutations of `original`; returns how many imported and how many were refused.
    func fuzz(_ original: [UInt8], count: Int) throws -> (Int, Int) {
        var rng = SeededRandom(seed: 7)
        var failures = 0, successes = 0
        for i in 0..<count {
            var b = original
            func position() -> Int { Int(rng.next() % UInt64(4)) == 0 ? Int(rng.next() % UInt64(b.count)) : Int(rng.next() % UInt64(Swift.min(8192, b.count))) }
            switch i % 5 {
            case 0: b[position()] ^= UInt8(1 << Int(rng.next() % UInt64(8)))
            case 1: b[position()] = UInt8(Int(rng.next() % UInt64(256)))
            case 2: b = Array(b.prefix(position()))
            case 3: b.insert(contentsOf: (0..<(1 + Int(rng.next() % UInt64(8)))).map { _ in UInt8(Int(rng.next() % UInt64(256))) }, at: position())
            default: for _ in 0..<4 { b[position()] = [0x00, 0xFF, 0x80, 0x7F][Int(rng.next() % UInt64(4))] }
            }
            do {
                let (g, t) = try ONNXImport.read(bytes: b, fileName: "fuzz.onnx")
                let m = try Model(imported: g, tensors: t, path: "fuzz.onnx")
                if m.inputShape.reduce(1, *) < 100_000 { _ = m.predict(Tensor(zeros: [1] + m.inputShape)) }
                successes += 1
            } catch let e as GraphError {
                XCTAssertFalse("\(e)".contains("\n"), "\(e)")
                failures += 1
            } catch let e as ModelError {
                XCTAssertFalse("\(e)".contains("\n"), "\(e)")
                failures += 1
            } catch let e as QuantError {
                XCTAssertFalse("\(e)".contains("\n"), "\(e)")
                failures += 1
            }
        }
        XCTAssertGreaterThan(failures, count / 10)
        return (successes, failures)
    }
}
