/// A Python script that builds a small QONNX graph with the `onnx` helper — Quant input → Gemm
/// with Quant weights → an activation → Gemm — for the variant in argv[1] (`mt`, `mt_signed`:
/// FINN MultiThreshold, unsigned or signed codes; `trunc2`, `trunc1`: QONNX Trunc version 2 or
/// 1) and writes into the directory argv[2] the model (`m.onnx`, batch 40), its inputs
/// (`x.npy`) and what the qonnx package's executor computes: the activation (`a.npy`) and
/// the logits (`y.npy`).
public let qonnxActivationGraphScript = """
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
    def bipolar(x, scale, y):
        nodes.append(helper.make_node('BipolarQuant', [x, const(y + '.s', scale)], [y], name=y, domain=Q))
    s_in, s_w = np.float32(1 / 255), np.float32(0.05)
    if variant == 'bipolar_in':  # FINN w1a1: bipolar inputs, weights and activations
        bipolar('x', np.float32(1), 'xq')
        bipolar(const('w1', rng.normal(0, 0.12, (H, K))), np.float32(0.25), 'w1q')
    else:
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
    elif variant.startswith('bipolar'):  # ±0.5, then bipolar weights with one scale per output
        bipolar('h', np.float32(0.5), 'a')
    else:  # trunc1: drop 12 − 4 bits, keep the scale, no clamp
        nodes.append(helper.make_node('Trunc', ['h', const('ts', s_acc), const('tz', 0.0), const('tib', 12.0), const('tob', 4.0)],
                                      ['a'], name='trunc', domain=Q, rounding_mode='FLOOR'))
    if variant.startswith('bipolar'):
        bipolar(const('w2', rng.normal(0, 0.2, (M, H))), rng.uniform(0.05, 0.2, (M, 1)).astype(np.float32), 'w2q')
    else:
        quant(const('w2', rng.normal(0, 0.2, (M, H))), np.float32(0.1), 4, 1, 1, 'w2q')
    nodes.append(helper.make_node('Gemm', ['a', 'w2q', const('b2', rng.normal(0, 0.05, M))], ['y'], name='fc2', transB=1))
    graph = helper.make_graph(nodes, variant, [helper.make_tensor_value_info('x', TensorProto.FLOAT, [N, K])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [N, M])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13), helper.make_opsetid(Q, 2 if variant == 'trunc2' else 1)])
    model.ir_version = 8
    onnx.save(model, out + '/m.onnx')
    x = rng.uniform(-1 if variant == 'bipolar_in' else 0, 1, (N, K)).astype(np.float32)
    m = ModelWrapper(out + '/m.onnx').transform(InferShapes())
    ctx = ox.execute_onnx(m, {'x': x}, return_full_exec_context=True)
    np.save(out + '/x.npy', x)
    np.save(out + '/a.npy', ctx['a'].astype(np.float32))
    np.save(out + '/y.npy', ctx['y'].astype(np.float32))
    """
