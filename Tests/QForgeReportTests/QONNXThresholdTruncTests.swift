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

/// QONNX `Trunc` (versions 1 and 2) and FINN `MultiThreshold` imported onto QForge's graph:
/// hand-built graphs (Quant input → Gemm with Quant weights → Trunc | MultiThreshold → Gemm),
/// made and executed by the `qonnx` package (`execute_onnx`), against QForge's fake-quantized
/// model and its integer model. The Trunc / MultiThreshold output must agree exactly (value for
/// value), the logits within Float32 summation order (1e-5).
final class QONNXThresholdTruncTests: XCTestCase {
    func check(_ variant: String, layer: String, levels: Int = 4, file: StaticString = #filePath, line: UInt = #line) throws {
        try requireResource(pythonCanRun("import qonnx.core.onnx_exec, onnxruntime, numpy"),
                            "python3 with the qonnx and onnxruntime modules is not available; run 'make deps'")
        let tmp = try TemporaryDirectory()
        _ = try runPython(qonnxActivationGraphScript, arguments: [variant, tmp.path])
        let x = try readNpy(tmp.file("x.npy")).asTensor(), a = try readNpy(tmp.file("a.npy")).asTensor()
        let y = try readNpy(tmp.file("y.npy")).asTensor()
        let (graph, tensors) = try ONNXImport.load(tmp.file("m.onnx"))
        let model = try Model(imported: graph, tensors: tensors, path: "m.onnx")
        let layers = model.network.layers
        XCTAssertEqual(layers.map { "\(type(of: $0))" }, ["QuantIdentity", "QuantDense", layer, "QuantDense"], file: file, line: line)

        // Fake-quantized: the activation value for value, the logits within 1e-5.
        let hidden = withoutGradients { LayerContext.with(.inference) { layers[2](layers[1](layers[0](x))) } }
        XCTAssertEqual(hidden.shape, a.shape, file: file, line: line)
        let wrong = zip(hidden.scalars, a.scalars).filter { $0 != $1 }.count
        XCTAssertEqual(wrong, 0, "\(variant): \(wrong) of \(a.count) activations differ from qonnx's", file: file, line: line)
        XCTAssertGreaterThanOrEqual(Set(a.scalars).count, levels, "\(variant): the test activations should spread over several codes", file: file, line: line)
        let logits = model.predict(x)
        XCTAssertLessThanOrEqual(zip(logits.scalars, y.scalars).map { abs($0 - $1) }.max() ?? 1, 1e-5, file: file, line: line)

        // Integer model: the activation's codes are qonnx's values over the output scale, exactly.
        let integer = try model.integerModel()
        XCTAssertEqual(integer.layers.count, 2, file: file, line: line)
        let grid = try XCTUnwrap(integer.layers[0].output, file: file, line: line)
        let trace = integer.run(integer.quantizeInput(x))
        let codes = trace.codes[0].values.map { grid.value($0) }
        let intWrong = zip(codes, a.scalars).filter { Float($0) != $1 }.count
        XCTAssertEqual(intWrong, 0, "\(variant): \(intWrong) integer codes differ from qonnx (grid \(grid))", file: file, line: line)
        let out = integer.dequantized(trace.outputs)
        XCTAssertLessThanOrEqual(zip(out, y.scalars).map { abs($0 - Double($1)) }.max() ?? 1, 1e-5, file: file, line: line)
        // It exports back as the same node, which imports to the same model.
        let (g2, t2) = try model.lowered()
        let back = try ONNXImport.read(bytes: try ONNXExport.encode(graph: g2, tensors: t2, format: .qonnx, batch: 1), name: "back")
        XCTAssertEqual(try Model(imported: back.graph, tensors: back.tensors, path: "back").predict(x).scalars, logits.scalars, file: file, line: line)
    }

    func testMultiThresholdUnsigned() throws { try check("mt", layer: "ThresholdActivation") }
    func testMultiThresholdSigned() throws { try check("mt_signed", layer: "ThresholdActivation") }
    func testTruncVersion2ClampsToItsGrid() throws { try check("trunc2", layer: "TruncActivation") }
    func testTruncVersion1() throws { try check("trunc1", layer: "TruncActivation") }
    /// QONNX BipolarQuant activations (±0.5) between an 8-bit-input layer and a bipolar-weight one.
    func testBipolarActivation() throws { try check("bipolar", layer: "QuantIdentity", levels: 2) }
    /// FINN's w1a1: bipolar inputs, weights and activations.
    func testBipolarInputsWeightsAndActivations() throws { try check("bipolar_in", layer: "QuantIdentity", levels: 2) }

    /// Zero padding after a BipolarQuant has no bipolar code (0 is neither −s nor +s): the
    /// integer model refuses it, naming the convolution.
    func testPaddedConvolutionAfterBipolarActivationIsRefused() throws {
        try requireResource(pythonCanRun("import onnx, numpy"), "python3 with onnx is not available; run 'make deps'")
        let tmp = try TemporaryDirectory()
        _ = try runPython("""
            import sys, numpy as np, onnx
            from onnx import helper, TensorProto, numpy_helper as nh
            Q = 'qonnx.custom_op.general'
            c = lambda n, a: nh.from_array(np.asarray(a, np.float32), n)
            inits = [c('s', 1 / 255), c('z', 0), c('b8', 8), c('w1', np.linspace(-1, 1, 18).reshape(2, 1, 3, 3)), c('sw', 0.5),
                     c('sa', 0.5), c('w2', np.linspace(1, -1, 36).reshape(2, 2, 3, 3))]
            nodes = [helper.make_node('Quant', ['x', 's', 'z', 'b8'], ['xq'], name='in', domain=Q, signed=0, narrow=0, rounding_mode='ROUND'),
                     helper.make_node('BipolarQuant', ['w1', 'sw'], ['w1q'], name='w1q', domain=Q),
                     helper.make_node('Conv', ['xq', 'w1q'], ['c1'], name='conv1', kernel_shape=[3, 3]),
                     helper.make_node('BipolarQuant', ['c1', 'sa'], ['a'], name='act', domain=Q),
                     helper.make_node('BipolarQuant', ['w2', 'sw'], ['w2q'], name='w2q', domain=Q),
                     helper.make_node('Conv', ['a', 'w2q'], ['y'], name='conv2', kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
            g = helper.make_graph(nodes, 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 1, 6, 6])],
                                  [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 2, 4, 4])], inits)
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            """, arguments: [tmp.file("m.onnx")])
        let (graph, tensors) = try ONNXImport.load(tmp.file("m.onnx"))
        let model = try Model(imported: graph, tensors: tensors, path: "m.onnx")
        XCTAssertEqual(model.network.layers.map { "\(type(of: $0))" }, ["QuantIdentity", "QuantConv2d", "QuantIdentity", "QuantConv2d"])
        XCTAssertThrowsError(try model.integerModel()) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("layers.3") && text.contains("zero padding of bipolar"), text)
        }
    }

    /// What QForge cannot hold stays a clear error naming the node.
    func testChannelsLastMultiThresholdIsRefused() throws {
        try requireResource(pythonCanRun("import onnx, numpy"), "python3 with onnx is not available; run 'make deps'")
        let tmp = try TemporaryDirectory()
        _ = try runPython("""
            import sys, numpy as np, onnx
            from onnx import helper, TensorProto, numpy_helper as nh
            t = nh.from_array(np.zeros((4, 3), np.float32), 'T')
            n = helper.make_node('MultiThreshold', ['x', 'T'], ['y'], name='mt_nhwc', domain='qonnx.custom_op.general', out_dtype='UINT2', data_layout='NHWC')
            g = helper.make_graph([n], 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 4, 2, 2])],
                                  [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 4, 2, 2])], [t])
            onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid('', 13)]), sys.argv[1])
            """, arguments: [tmp.file("m.onnx")])
        XCTAssertThrowsError(try ONNXImport.load(tmp.file("m.onnx"))) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("mt_nhwc") && text.contains("MultiThreshold") && text.contains("channels first"), text)
        }
    }
}
