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
    /// Writes `variant`'s model, inputs, and qonnx's outputs (the activation `a` and logits `y`) into `dir`.
    static let script = """
        import sys
        import numpy as np, onnx
        from onnx import helper, TensorProto, numpy_helper as nh
        import qonnx.core.onnx_exec as ox
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.infer_shapes import InferShapes
        make = ox.qonnx_make_model
        def make10(*a, **k):  # one-node models at IR 10, which any onnxruntime reads
            m = make(*a, **k)
            m.ir_version = min(m.ir_version, 10)
            return m
        ox.qonnx_make_model = make10
        variant, out = sys.argv[1], sys.argv[2]
        rng = np.random.default_rng(7)
        N, K, H, M = 40, 16, 12, 5
        inits, nodes, Q = [], [], 'qonnx.custom_op.general'
        def const(name, a):
            inits.append(nh.from_array(np.asarray(a, dtype=np.float32), name))
            return name
        def quant(x, scale, bits, signed, narrow, y):
            nodes.append(helper.make_node('Quant', [x, const(y + '.s', scale), const(y + '.z', 0.0), const(y + '.b', bits)], [y],
                                          name=y, domain=Q, signed=signed, narrow=narrow, rounding_mode='ROUND'))
        s_in, s_w = np.float32(1 / 255), np.float32(0.05)
        quant('x', s_in, 8, 0, 0, 'xq')
        quant(const('w1', rng.normal(0, 0.12, (H, K))), s_w, 4, 1, 1, 'w1q')
        nodes.append(helper.make_node('Gemm', ['xq', 'w1q', const('b1', rng.normal(0, 0.05, H))], ['h'], name='fc1', transB=1))
        s_acc = np.float32(s_in * s_w)
        if variant.startswith('mt'):
            signed = variant == 'mt_signed'
            T = np.sort(rng.uniform(-0.6, 0.9, (H, 7)), axis=1)
            nodes.append(helper.make_node('MultiThreshold', ['h', const('T', T)], ['a'], name='mt', domain=Q, out_dtype='INT3' if signed else 'UINT3',
                                          out_scale=0.25, out_bias=-1.0 if signed else 0.0))
        elif variant == 'trunc2':  # the accumulator grid to a 4-bit signed grid 2^9 times coarser, floor
            nodes.append(helper.make_node('Trunc', ['h', const('ts', s_acc), const('tz', 0.0), const('tib', 16.0), const('tos', s_acc * 512), const('tob', 4.0)],
                                          ['a'], name='trunc', domain=Q, rounding_mode='FLOOR', signed=1, narrow=0))
        else:  # trunc1: drop 12 − 4 bits, keep the scale, no clamp
            nodes.append(helper.make_node('Trunc', ['h', const('ts', s_acc), const('tz', 0.0), const('tib', 12.0), const('tob', 4.0)],
                                          ['a'], name='trunc', domain=Q, rounding_mode='FLOOR'))
        quant(const('w2', rng.normal(0, 0.2, (M, H))), np.float32(0.1), 4, 1, 1, 'w2q')
        nodes.append(helper.make_node('Gemm', ['a', 'w2q', const('b2', rng.normal(0, 0.05, M))], ['y'], name='fc2', transB=1))
        graph = helper.make_graph(nodes, variant, [helper.make_tensor_value_info('x', TensorProto.FLOAT, [N, K])],
                                  [helper.make_tensor_value_info('y', TensorProto.FLOAT, [N, M])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13), helper.make_opsetid(Q, 2 if variant == 'trunc2' else 1)])
        model.ir_version = 8
        onnx.save(model, out + '/m.onnx')
        x = rng.uniform(0, 1, (N, K)).astype(np.float32)
        m = ModelWrapper(out + '/m.onnx').transform(InferShapes())
        ctx = ox.execute_onnx(m, {'x': x}, return_full_exec_context=True)
        np.save(out + '/x.npy', x)
        np.save(out + '/a.npy', ctx['a'].astype(np.float32))
        np.save(out + '/y.npy', ctx['y'].astype(np.float32))
        """

    func check(_ variant: String, layer: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try requireResource(pythonCanRun("import qonnx.core.onnx_exec, onnxruntime, numpy"),
                            "python3 with the qonnx and onnxruntime modules is not available; run 'make deps'")
        let tmp = try TemporaryDirectory()
        _ = try runPython(Self.script, arguments: [variant, tmp.path])
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
        XCTAssertGreaterThan(Set(a.scalars).count, 3, "\(variant): the test activations should spread over several codes", file: file, line: line)
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
