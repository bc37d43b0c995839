import QForgeInteger
import QForgeTensor

/// Emits one layer of the fully parallel style: every output channel's sum of products with
/// constant weights (an adder tree per channel), the requantization of the folded units
/// (`emitRequant`, parameters as constants), and a valid/ready output register.
///
/// Sums are formed modulo 2^sumBits: the codes widen (sign- or zero-extended) to sumBits,
/// products with constants and additions wrap there, which is exact when the sum fits and is
/// the accumulator cap's wrap when it does not, as in the folded MAC.
func emitParallelLayer(_ u: MatrixVectorUnit) -> String {
    let m = u.outputs, k = u.inputs, xb = u.inputBits, sw = u.sumBits, ob = u.outputBits
    let layout = u.parameterLayout
    let signedness = u.inputGrid.signed ? "signed" : "unsigned"
    var header = [
        "Layer \(u.index) (\(u.layerName)): dense \(k) → \(m), fully parallel: \(m * k) constant weights, one input vector per cycle.",
        "Inputs: \(k) \(xb)-bit \(signedness) codes per beat; weights: \(u.weightBits)-bit signed constants; sum: \(sw) bits; accumulator: \(u.accBits) bits.",
    ]
    switch u.requantization {
    case .output: header.append("Output: \(m) accumulators of \(ob) bits per beat (the last layer).")
    default: header.append("Output: \(m) codes of \(ob) bits per beat, requantized by \(u.requantization.name)\(u.lookupCodes == nil ? "" : ", then a lookup table").")
    }
    var v = VerilogText(header: header)
    v.block("module \(u.module) (", ");") { v in
        v.line("input  wire clk_i,")
        v.line("input  wire rst_ni,")
        v.line("input  wire \(range(k * xb)) in_data_i,")
        v.line("input  wire in_valid_i,")
        v.line("output wire in_ready_o,")
        v.line("output wire \(range(m * ob)) out_data_o,")
        v.line("output wire out_valid_o,")
        v.line("input  wire out_ready_i")
    }
    v.line()
    var thresholdLoop = false
    if case let .thresholds(levels, lists, _, _) = u.requantization, levels > 0, lists.contains(where: { !$0.isConstant }) { thresholdLoop = true }
    v.line("  integer p\(thresholdLoop ? ", i" : "");")
    v.line()
    v.line("  // Input codes widened to the \(sw)-bit sum (\(u.inputGrid.signed ? "sign" : "zero")-extended).")
    v.line("  wire \(range(k * sw)) x;")
    for j in 0..<k {
        let lo = j * xb, code = slice("in_data_i", lo + xb - 1, lo)
        let wide: String
        if sw <= xb {
            wide = slice("in_data_i", lo + sw - 1, lo)  // modulo 2^sumBits: the low bits
        } else if u.inputGrid.signed {
            wide = "{{\(sw - xb){in_data_i[\(lo + xb - 1)]}}, \(code)}"
        } else {
            wide = "{\(sw - xb)'d0, \(code)}"
        }
        v.line("  assign \(slice("x", (j + 1) * sw - 1, j * sw)) = \(wide);")
    }
    var unused: [String] = []
    if sw < xb { unused.append(slice("in_data_i", k * xb - 1, 0)) }  // the codes' top bits never reach the sum
    v.line()
    v.line("  // Sums of products with the constant weights, one per output channel (zero weights left out).")
    v.line("  wire \(range(m * sw)) sums;")
    var used = [Bool](repeating: false, count: k)
    for c in 0..<m {
        var terms: [String] = []
        for j in 0..<k {
            let w = Int64(u.weights[c * k + j])
            guard w != 0 else { continue }
            used[j] = true
            let x = slice("x", (j + 1) * sw - 1, j * sw)
            let magnitude = w.magnitude == 1 ? x : "\(x) * \(sw)'h\(twosComplementHex(Int64(w.magnitude), bits: sw))"
            terms.append(terms.isEmpty ? (w < 0 ? "-\(magnitude)" : magnitude) : (w < 0 ? "- \(magnitude)" : "+ \(magnitude)"))
        }
        let sum = terms.isEmpty ? lit(sw, 0) : terms.joined(separator: " ")
        v.line("  assign \(slice("sums", (c + 1) * sw - 1, c * sw)) = \(sum);")
    }
    for j in 0..<k where !used[j] { unused.append(slice("x", (j + 1) * sw - 1, j * sw)) }
    if !unused.isEmpty {
        v.line("  // Inputs whose weights are all zero (read here so that lint sees them used).")
        v.line("  wire unused_inputs;")
        v.line("  assign unused_inputs = ^{\(unused.joined(separator: ", "))};")
    }
    v.line()
    if !layout.fields.isEmpty {
        // One word: PE = M lanes of the per-channel fields, as the folded unit's parameter ROM holds them.
        let word = layout.words(unit: u)[0]
        v.line("  // Per-channel parameters (\(layout.fields.map(\.name).joined(separator: ", "))): constants, channel c at bits [c·\(layout.laneBits) +: \(layout.laneBits)].")
        v.line("  wire \(range(m * layout.laneBits)) prm2;")
        v.line("  assign prm2 = \(m * layout.laneBits)'h\(word);")
        v.line()
    }
    emitRequant(&v, u, layout, sums: "sums")
    v.line()
    v.line("  // Output register: a valid/ready stage.")
    v.line("  reg  \(range(m * ob)) out_q, out_d;")
    v.line("  reg  out_valid_q, out_valid_d;")
    v.line("  assign in_ready_o = out_ready_i | ~out_valid_q;")
    v.line("  assign out_data_o = out_q;")
    v.line("  assign out_valid_o = out_valid_q;")
    emitRegisterStage(&v, bits: m * ob, next: "req_data")
    v.line()
    v.line("endmodule")
    return v.text
}

/// The parallel style's argmax: all M last accumulators in one beat, the index of the largest
/// (the lowest on ties: a later channel wins only when strictly larger) out, registered as a
/// valid/ready stage, tlast on every beat.
func emitVectorArgmax(_ g: HardwareGraph) -> String {
    let m = g.units.last!.outputs, vw = g.units.last!.valueBits, ib = indexBits(m), ob = g.outputDataBits
    var v = VerilogText(header: ["Argmax: \(m) accumulators of \(vw) bits (signed) per beat in, the index of the largest (lowest on ties) out, \(ob)-bit tdata, tlast on every beat."])
    v.block("module \(g.prefix)_vector_argmax (", ");") { v in
        v.line("input  wire clk_i,")
        v.line("input  wire rst_ni,")
        v.line("input  wire \(range(m * vw)) in_data_i,")
        v.line("input  wire in_valid_i,")
        v.line("output wire in_ready_o,")
        v.line("output wire \(range(ob)) m_axis_tdata_o,")
        v.line("output wire m_axis_tvalid_o,")
        v.line("input  wire m_axis_tready_i,")
        v.line("output wire m_axis_tlast_o")
    }
    v.line()
    if m > 1 {
        v.line("  reg  signed \(range(vw)) best;")
        v.line("  reg  \(range(ib)) best_idx;")
    }
    v.line("  reg  \(range(ib)) out_q, out_d;")
    v.line("  reg  out_valid_q, out_valid_d;")
    v.line()
    v.line("  assign in_ready_o = m_axis_tready_i | ~out_valid_q;")
    v.line("  assign m_axis_tvalid_o = out_valid_q;")
    v.line("  assign m_axis_tdata_o = \(zeroExtend("out_q", from: ib, to: ob));")
    v.line("  assign m_axis_tlast_o = 1'b1;")
    v.line()
    if m == 1 {
        v.line("  // One accumulator: its index is 0 whatever its value.")
        v.line("  wire \(range(ib)) best_idx;")
        v.line("  wire unused_data;")
        v.line("  assign best_idx = \(lit(ib, 0));")
        v.line("  assign unused_data = ^in_data_i;")
    } else {
        v.line("  always @(*) begin")
        v.line("    best = \(slice("in_data_i", vw - 1, 0));")
        v.line("    best_idx = \(lit(ib, 0));")
        for c in 1..<m {
            let value = slice("in_data_i", (c + 1) * vw - 1, c * vw)
            v.line("    if ($signed(\(value)) > best) begin")
            v.line("      best = \(value);")
            v.line("      best_idx = \(lit(ib, Int64(c)));")
            v.line("    end")
        }
        v.line("  end")
    }
    emitRegisterStage(&v, bits: ib, next: "best_idx")
    v.line()
    v.line("endmodule")
    return v.text
}

/// The parallel style's top level: AXI-Stream in (the whole input vector per beat) → one
/// register stage per layer → AXI-Stream out (all accumulators per beat, or the argmax).
func emitParallelTop(_ g: HardwareGraph) -> String {
    let inBits = g.inputFeatures * g.inputGrid.bitWidth
    let last = g.units.last!, vw = last.valueBits, ab = roundUpToBytes(vw), m = last.outputs
    let signedness = g.inputGrid.signed ? "signed" : "unsigned"
    let chain = g.units.map { "\($0.inputs)→\($0.outputs)" }.joined(separator: ", ")
    var v = VerilogText(header: [
        "Fully parallel design of \(g.modelName): dense layers \(chain), one pipeline stage each, weights as constants.",
        "Input: all \(g.inputFeatures) \(g.inputGrid.bitWidth)-bit \(signedness) codes per beat (feature k in bits [k·\(g.inputGrid.bitWidth) +: \(g.inputGrid.bitWidth)]).",
        g.argmax
            ? "Output: the index of the largest of the \(m) last accumulators (the lowest on ties), \(g.outputValueBits) bits zero-extended to \(g.outputDataBits); one beat per inference, tlast on each."
            : "Output: all \(m) accumulators per beat, channel c in bits [c·\(ab) +: \(ab)], \(vw) bits sign-extended to \(ab); tlast on each beat.",
        "Steady state: \(g.expectedCyclesPerInference) cycle per inference; latency \(g.expectedLatency) cycles.",
    ])
    v.topModule(g)
    v.line()
    for u in g.units {
        v.line("  wire \(range(u.outputs * u.outputBits)) l\(u.index)_data;")
        v.line("  wire l\(u.index)_valid, l\(u.index)_ready;")
    }
    if g.inputDataBits > inBits {
        v.line("  wire unused_s_axis_pad;")
        v.line("  assign unused_s_axis_pad = ^s_axis_tdata_i[\(g.inputDataBits - 1):\(inBits)];")
    }
    for u in g.units {
        v.line()
        let inData = u.index == 0 ? (g.inputDataBits > inBits ? "s_axis_tdata_i[\(inBits - 1):0]" : "s_axis_tdata_i") : "l\(u.index - 1)_data"
        v.streamInstance(u.module, "u_l\(u.index)", input: (inData, u.index == 0 ? "s_axis_tvalid_i" : "l\(u.index - 1)_valid",
                                                             u.index == 0 ? "s_axis_tready_o" : "l\(u.index - 1)_ready"), output: "l\(u.index)")
    }
    let l = g.units.count - 1
    v.line()
    if g.argmax {
        v.line("  \(g.prefix)_vector_argmax u_argmax (")
        v.line("    .clk_i          (clk_i),")
        v.line("    .rst_ni         (rst_ni),")
        v.line("    .in_data_i      (l\(l)_data),")
        v.line("    .in_valid_i     (l\(l)_valid),")
        v.line("    .in_ready_o     (l\(l)_ready),")
        v.line("    .m_axis_tdata_o (m_axis_tdata_o),")
        v.line("    .m_axis_tvalid_o(m_axis_tvalid_o),")
        v.line("    .m_axis_tready_i(m_axis_tready_i),")
        v.line("    .m_axis_tlast_o (m_axis_tlast_o)")
        v.line("  );")
    } else {
        let lanes = (0..<m).reversed().map { c -> String in
            let value = slice("l\(l)_data", (c + 1) * vw - 1, c * vw)
            return ab == vw ? value : "{{\(ab - vw){l\(l)_data[\((c + 1) * vw - 1)]}}, \(value)}"
        }
        v.line("  assign m_axis_tdata_o = {\(lanes.joined(separator: ", "))};")
        v.line("  assign m_axis_tvalid_o = l\(l)_valid;")
        v.line("  assign l\(l)_ready = m_axis_tready_i;")
        v.line("  assign m_axis_tlast_o = 1'b1;")
    }
    v.line()
    v.line("endmodule")
    return v.text
}

extension HardwareDesign {
    /// The files and manifest of a fully parallel design: no memories (weights and parameters
    /// are constants in the RTL).
    init(parallel graph: HardwareGraph, vectors: TestVectors, integerModel: IntegerModel) {
        precondition(graph.style == .parallel)
        self.graph = graph
        var files: [String: String] = [:]
        var rtl: [String] = []
        var layers: [HardwareManifest.Layer] = []
        for (u, layer) in zip(graph.units, integerModel.layers) {
            files["\(u.module).v"] = emitParallelLayer(u)
            rtl.append("\(u.module).v")
            layers.append(HardwareManifest.Layer(
                name: u.layerName, module: u.module, inputs: u.inputs, outputs: u.outputs, pe: u.folding.pe, simd: u.folding.simd,
                inLanes: u.inLanes, inputBits: u.inputBits, weightBits: u.weightBits, sumBits: u.sumBits, accumulatorBits: u.accBits,
                integerModelAccumulatorBits: layer.accumulatorBits, accumulatorCap: u.cap?.bits, overflow: u.cap?.overflow.rawValue,
                droppedBits: u.droppedBits, valueBits: u.valueBits, requantization: u.requantization.name + (u.lookupCodes == nil ? "" : "+lookup"),
                outputBits: u.outputBits, cycles: 1, weightMemory: nil, parameterMemory: nil))
            layers[layers.count - 1].nonzeroWeights = u.weights.filter { $0 != 0 }.count
        }
        if graph.argmax {
            files["\(graph.prefix)_vector_argmax.v"] = emitVectorArgmax(graph)
            rtl.append("\(graph.prefix)_vector_argmax.v")
        }
        files["\(graph.top).v"] = emitParallelTop(graph)
        rtl.append("\(graph.top).v")
        let timingSamples = graph.units.count + 4
        let tb = "\(graph.prefix)_tb"
        files["\(tb).v"] = emitTestbench(graph, vectors: vectors.count, timingSamples: timingSamples)
        files["vectors/input.hex"] = vectors.inputHex(graph)
        files["vectors/expected.hex"] = vectors.expectedHex(graph)
        manifest = HardwareManifest(
            style: HardwareStyle.parallel.rawValue, model: graph.modelName, top: graph.top, testbench: tb, rtl: rtl, testbenchFile: "\(tb).v",
            memories: [], coe: [],
            input: .init(lanes: graph.inputLanes, valueBits: graph.inputGrid.bitWidth, signed: graph.inputGrid.signed,
                         tdataBits: graph.inputDataBits, beatsPerInference: graph.inputBeats),
            output: .init(lanes: graph.outputLanes, valueBits: graph.outputValueBits, signed: !graph.argmax, tdataBits: graph.outputDataBits,
                          beatsPerInference: graph.outputWords),
            layers: layers,
            vectors: .init(count: vectors.count, source: vectors.source, input: "vectors/input.hex", expected: "vectors/expected.hex"),
            expectedCyclesPerInference: graph.expectedCyclesPerInference, expectedLatency: graph.expectedLatency,
            timingSamples: timingSamples)
        files["manifest.json"] = manifest.json()
        self.files = files
    }
}

/// The next-state logic and the flip-flops of a valid/ready register stage (`out_q`,
/// `out_valid_q`, declared by the caller with `in_ready_o = out ready | ~out_valid_q`): it takes
/// `next` when the input is valid and the stage is free or being emptied; reset clears it.
func emitRegisterStage(_ v: inout VerilogText, bits: Int, next: String) {
    v.line()
    v.line("  always @(*) begin")
    v.line("    out_d = out_q;")
    v.line("    out_valid_d = out_valid_q;")
    v.line("    if (in_ready_o) begin")
    v.line("      out_valid_d = in_valid_i;")
    v.line("      if (in_valid_i) out_d = \(next);")
    v.line("    end")
    v.line("  end")
    v.line()
    v.line("  always @(posedge clk_i or negedge rst_ni) begin")
    v.line("    if (!rst_ni) begin")
    v.line("      out_q <= \(lit(bits, 0));")
    v.line("      out_valid_q <= 1'b0;")
    v.line("    end else begin")
    v.line("      out_q <= out_d;")
    v.line("      out_valid_q <= out_valid_d;")
    v.line("    end")
    v.line("  end")
}
