/// The ROM every unit instantiates: synchronous read with enable (an inferred block RAM),
/// initialised from a `$readmemh` file.
func emitRom(prefix: String) -> String {
    var v = VerilogText(header: ["Read-only memory: synchronous read with enable, contents from a $readmemh file (one word per line)."])
    v.line("module \(prefix)_rom #(")
    v.line("  parameter integer Width = 8,")
    v.line("  parameter integer Depth = 2,")
    v.line("  parameter integer AddrWidth = 1,")
    v.line("  parameter MemFile = \"\"")
    v.line(") (")
    v.line("  input  wire clk_i,")
    v.line("  input  wire en_i,")
    v.line("  input  wire [AddrWidth-1:0] addr_i,")
    v.line("  output reg  [Width-1:0] data_o")
    v.line(");")
    v.line()
    v.line("  reg [Width-1:0] mem [0:Depth-1];")
    v.line()
    v.line("  initial begin")
    v.line("    $readmemh(MemFile, mem);")
    v.line("  end")
    v.line()
    v.line("  always @(posedge clk_i) begin")
    v.line("    if (en_i) data_o <= mem[addr_i];")
    v.line("  end")
    v.line()
    v.line("endmodule")
    return v.text
}

/// The output serializer: takes the last unit's words of PE accumulators and sends them one
/// per AXI-Stream beat, sign-extended to whole bytes, `tlast` on each inference's last channel.
func emitSerializer(_ g: HardwareGraph) -> String {
    let last = g.units.last!
    let pe = last.folding.pe, vw = last.valueBits, obw = g.accumulatorDataBits, m = last.outputs
    let leftBits = unsignedBits(Int64(pe)), elemBits = indexBits(m)
    var v = VerilogText(header: ["Output serializer: \(pe) accumulators of \(vw) bits per word in, one per beat out (\(obw)-bit tdata, sign-extended), tlast every \(m) beats."])
    v.block("module \(g.prefix)_serializer (", ");") { v in
        v.line("input  wire clk_i,")
        v.line("input  wire rst_ni,")
        v.line("input  wire \(range(pe * vw)) in_data_i,")
        v.line("input  wire in_valid_i,")
        v.line("output wire in_ready_o,")
        v.line("output wire \(range(obw)) m_axis_tdata_o,")
        v.line("output wire m_axis_tvalid_o,")
        v.line("input  wire m_axis_tready_i,")
        v.line("output wire m_axis_tlast_o")
    }
    v.line()
    v.line("  reg  \(range(pe * vw)) word_q, word_d;")
    v.line("  reg  \(range(leftBits)) left_q, left_d;  // beats left in the word")
    v.line("  reg  \(range(elemBits)) elem_q, elem_d;  // channel of the current beat")
    v.line("  wire out_fire, in_fire;")
    v.line()
    v.line("  assign m_axis_tvalid_o = left_q != \(lit(leftBits, 0));")
    v.line("  assign in_ready_o = (left_q == \(lit(leftBits, 0))) | ((left_q == \(lit(leftBits, 1))) & m_axis_tready_i);")
    let low = pe == 1 ? "word_q" : "word_q[\(vw - 1):0]"
    let msb = pe == 1 && vw == 1 ? "word_q" : "word_q[\(vw - 1)]"
    v.line("  assign m_axis_tdata_o = \(obw == vw ? low : "{{\(obw - vw){\(msb)}}, \(low)}");")
    v.line("  assign m_axis_tlast_o = elem_q == \(lit(elemBits, Int64(m - 1)));")
    v.line("  assign out_fire = m_axis_tvalid_o & m_axis_tready_i;")
    v.line("  assign in_fire = in_valid_i & in_ready_o;")
    v.line()
    v.line("  always @(*) begin")
    v.line("    word_d = word_q;")
    v.line("    left_d = left_q;")
    v.line("    elem_d = elem_q;")
    v.line("    if (out_fire) begin")
    if pe > 1 { v.line("      word_d = {\(lit(vw, 0)), word_q[\(pe * vw - 1):\(vw)]};") }
    v.line("      left_d = left_q - \(lit(leftBits, 1));")
    v.line("      elem_d = m_axis_tlast_o ? \(lit(elemBits, 0)) : elem_q + \(lit(elemBits, 1));")
    v.line("    end")
    v.line("    if (in_fire) begin")
    v.line("      word_d = in_data_i;")
    v.line("      left_d = \(lit(leftBits, Int64(pe)));")
    v.line("    end")
    v.line("  end")
    v.line()
    v.line("  always @(posedge clk_i or negedge rst_ni) begin")
    v.line("    if (!rst_ni) begin")
    v.line("      word_q <= \(lit(pe * vw, 0));")
    v.line("      left_q <= \(lit(leftBits, 0));")
    v.line("      elem_q <= \(lit(elemBits, 0));")
    v.line("    end else begin")
    v.line("      word_q <= word_d;")
    v.line("      left_q <= left_d;")
    v.line("      elem_q <= elem_d;")
    v.line("    end")
    v.line("  end")
    v.line()
    v.line("endmodule")
    return v.text
}

/// The top level: AXI-Stream in (input codes) → units → serializer → AXI-Stream out.
func emitTop(_ g: HardwareGraph) -> String {
    let inBits = g.inputLanes * g.inputGrid.bitWidth
    let signedness = g.inputGrid.signed ? "signed" : "unsigned"
    let chain = g.units.map { u in
        g.pools.filter { $0.before == u.index }.map { "max-pool \($0.kernel)×\($0.kernel), " }.joined()
            + (u.window.map { "conv \($0.kernelHeight)×\($0.kernelWidth) \($0.channels)→\(u.outputs) (\(u.folding))" } ?? "\(u.inputs)→\(u.outputs) (\(u.folding))")
    }.joined(separator: ", ")
    let spatial = g.units.contains { $0.window != nil } || !g.pools.isEmpty
    var v = VerilogText(header: [
        "Folded dataflow design of \(g.modelName): \(spatial ? "layers" : "dense layers") \(chain).",
        "Input: \(g.inputLanes) \(g.inputGrid.bitWidth)-bit \(signedness) codes per beat (\(g.spatialInput ? "code" : "feature") k·\(g.inputLanes) + l in bits [l·\(g.inputGrid.bitWidth) +: \(g.inputGrid.bitWidth)]), \(g.inputBeats) beats per inference"
            + (g.spatialInput ? "; the \(g.inputShape.map(String.init).joined(separator: "×")) map pixel by pixel, channels fastest." : "."),
        g.argmax
            ? "Output: the index of the largest of the \(g.units.last!.outputs) last accumulators (the lowest on ties), \(g.outputValueBits) bits zero-extended to \(g.outputDataBits); one beat per inference, tlast on each."
            : "Output: \(g.outputWords) accumulators per inference, one per beat, \(g.outputValueBits) bits sign-extended to \(g.outputDataBits); tlast on the last.",
        "Steady state: \(g.expectedCyclesPerInference) cycles per inference; latency \(g.expectedLatency) cycles.",
    ])
    v.topModule(g)
    v.line()
    for u in g.units {
        v.line("  wire \(range(u.folding.pe * u.outputBits)) l\(u.index)_data;")
        v.line("  wire l\(u.index)_valid, l\(u.index)_ready;")
    }
    if g.inputDataBits > inBits {
        v.line("  wire unused_s_axis_pad;")
        v.line("  assign unused_s_axis_pad = ^s_axis_tdata_i[\(g.inputDataBits - 1):\(inBits)];")
    }
    for u in g.units {
        v.line()
        var inData = u.index == 0 ? (g.inputDataBits > inBits ? "s_axis_tdata_i[\(inBits - 1):0]" : "s_axis_tdata_i") : "l\(u.index - 1)_data"
        var inValid = u.index == 0 ? "s_axis_tvalid_i" : "l\(u.index - 1)_valid"
        var inReady = u.index == 0 ? "s_axis_tready_o" : "l\(u.index - 1)_ready"
        for pool in g.pools where pool.before == u.index {
            // A max-pool between the previous stage and the unit.
            let name = "p\(u.index)_\(pool.position)"
            v.line("  wire \(range(pool.lanes * pool.grid.bitWidth)) \(name)_data;")
            v.line("  wire \(name)_valid, \(name)_ready;")
            v.line()
            v.streamInstance(pool.module, "u_\(name)", input: (inData, inValid, inReady), output: name)
            v.line()
            (inData, inValid, inReady) = ("\(name)_data", "\(name)_valid", "\(name)_ready")
        }
        v.streamInstance(u.module, "u_l\(u.index)", input: (inData, inValid, inReady), output: "l\(u.index)")
    }
    let l = g.units.count - 1
    // With argmax the serializer's stream (acc_*) feeds the argmax unit, else the output.
    let s = g.argmax ? ["acc_data", "acc_valid", "acc_ready", "acc_last"] : ["m_axis_tdata_o", "m_axis_tvalid_o", "m_axis_tready_i", "m_axis_tlast_o"]
    if g.argmax {
        v.line()
        v.line("  wire \(range(g.accumulatorDataBits)) acc_data;")
        v.line("  wire acc_valid, acc_ready, acc_last;")
    }
    v.line()
    v.line("  \(g.prefix)_serializer u_out (")
    v.line("    .clk_i          (clk_i),")
    v.line("    .rst_ni         (rst_ni),")
    v.line("    .in_data_i      (l\(l)_data),")
    v.line("    .in_valid_i     (l\(l)_valid),")
    v.line("    .in_ready_o     (l\(l)_ready),")
    v.line("    .m_axis_tdata_o (\(s[0])),")
    v.line("    .m_axis_tvalid_o(\(s[1])),")
    v.line("    .m_axis_tready_i(\(s[2])),")
    v.line("    .m_axis_tlast_o (\(s[3]))")
    v.line("  );")
    if g.argmax {
        v.line()
        v.line("  \(g.prefix)_argmax u_argmax (")
        v.line("    .clk_i          (clk_i),")
        v.line("    .rst_ni         (rst_ni),")
        v.line("    .in_data_i      (acc_data),")
        v.line("    .in_valid_i     (acc_valid),")
        v.line("    .in_ready_o     (acc_ready),")
        v.line("    .in_last_i      (acc_last),")
        v.line("    .m_axis_tdata_o (m_axis_tdata_o),")
        v.line("    .m_axis_tvalid_o(m_axis_tvalid_o),")
        v.line("    .m_axis_tready_i(m_axis_tready_i),")
        v.line("    .m_axis_tlast_o (m_axis_tlast_o)")
        v.line("  );")
    }
    v.line()
    v.line("endmodule")
    return v.text
}

/// The argmax unit: reads the serializer's accumulators (one per beat, `in_last_i` on each
/// inference's last) and sends the index of the largest, the lowest on ties (a later one
/// replaces the best only when strictly larger), one cycle after the last accumulator. It
/// accepts a beat every cycle while its result register is free or being taken.
func emitArgmax(_ g: HardwareGraph) -> String {
    let m = g.units.last!.outputs, ab = g.accumulatorDataBits, ib = indexBits(m), ob = g.outputDataBits
    var v = VerilogText(header: ["Argmax: \(m) accumulators of \(ab) bits (signed) in, the index of the largest (lowest on ties) out, \(ob)-bit tdata, tlast on every beat."])
    v.block("module \(g.prefix)_argmax (", ");") { v in
        v.line("input  wire clk_i,")
        v.line("input  wire rst_ni,")
        v.line("input  wire \(range(ab)) in_data_i,")
        v.line("input  wire in_valid_i,")
        v.line("output wire in_ready_o,")
        v.line("input  wire in_last_i,")
        v.line("output wire \(range(ob)) m_axis_tdata_o,")
        v.line("output wire m_axis_tvalid_o,")
        v.line("input  wire m_axis_tready_i,")
        v.line("output wire m_axis_tlast_o")
    }
    v.line()
    v.line("  reg  signed \(range(ab)) best_q, best_d;")
    v.line("  reg  \(range(ib)) best_idx_q, best_idx_d;")
    v.line("  reg  \(range(ib)) idx_q, idx_d;  // channel of the next accumulator")
    v.line("  reg  \(range(ib)) out_q, out_d;")
    v.line("  reg  out_valid_q, out_valid_d;")
    v.line("  reg  take;")
    v.line("  wire in_fire;")
    v.line()
    v.line("  assign in_ready_o = ~out_valid_q | m_axis_tready_i;")
    v.line("  assign in_fire = in_valid_i & in_ready_o;")
    v.line("  assign m_axis_tvalid_o = out_valid_q;")
    v.line("  assign m_axis_tdata_o = \(zeroExtend("out_q", from: ib, to: ob));")
    v.line("  assign m_axis_tlast_o = 1'b1;")
    v.line()
    v.line("  always @(*) begin")
    v.line("    best_d = best_q;")
    v.line("    best_idx_d = best_idx_q;")
    v.line("    idx_d = idx_q;")
    v.line("    out_d = out_q;")
    v.line("    out_valid_d = out_valid_q & ~m_axis_tready_i;")
    v.line("    take = 1'b0;")
    v.line("    if (in_fire) begin")
    v.line("      take = (idx_q == \(lit(ib, 0))) | ($signed(in_data_i) > best_q);")
    v.line("      if (take) begin")
    v.line("        best_d = in_data_i;")
    v.line("        best_idx_d = idx_q;")
    v.line("      end")
    v.line("      if (in_last_i) begin")
    v.line("        out_d = take ? idx_q : best_idx_q;")
    v.line("        out_valid_d = 1'b1;")
    v.line("        idx_d = \(lit(ib, 0));")
    v.line("      end else begin")
    v.line("        idx_d = idx_q + \(lit(ib, 1));")
    v.line("      end")
    v.line("    end")
    v.line("  end")
    v.line()
    v.line("  always @(posedge clk_i or negedge rst_ni) begin")
    v.line("    if (!rst_ni) begin")
    for (name, bits) in [("best", ab), ("best_idx", ib), ("idx", ib), ("out", ib), ("out_valid", 1)] { v.line("      \(name)_q <= \(lit(bits, 0));") }
    v.line("    end else begin")
    for name in ["best", "best_idx", "idx", "out", "out_valid"] { v.line("      \(name)_q <= \(name)_d;") }
    v.line("    end")
    v.line("  end")
    v.line()
    v.line("endmodule")
    return v.text
}

extension VerilogText {
    /// `module TOP (…);` with the top level's ports: clock, reset, the AXI-Stream input
    /// (s_axis) and output (m_axis, with tlast), the widths of graph `g`.
    mutating func topModule(_ g: HardwareGraph) {
        block("module \(g.top) (", ");") { v in
            v.line("input  wire clk_i,")
            v.line("input  wire rst_ni,")
            v.line("input  wire \(range(g.inputDataBits)) s_axis_tdata_i,")
            v.line("input  wire s_axis_tvalid_i,")
            v.line("output wire s_axis_tready_o,")
            v.line("output wire \(range(g.outputDataBits)) m_axis_tdata_o,")
            v.line("output wire m_axis_tvalid_o,")
            v.line("input  wire m_axis_tready_i,")
            v.line("output wire m_axis_tlast_o")
        }
    }

    /// An instance of a streaming unit (clock, reset, an in_* and an out_* valid/ready stream)
    /// reading `input` (data, valid, ready) and driving the wires `output`_data, _valid, _ready.
    mutating func streamInstance(_ module: String, _ name: String, input: (data: String, valid: String, ready: String), output: String) {
        line("  \(module) \(name) (")
        line("    .clk_i      (clk_i),")
        line("    .rst_ni     (rst_ni),")
        line("    .in_data_i  (\(input.data)),")
        line("    .in_valid_i (\(input.valid)),")
        line("    .in_ready_o (\(input.ready)),")
        line("    .out_data_o (\(output)_data),")
        line("    .out_valid_o(\(output)_valid),")
        line("    .out_ready_i(\(output)_ready)")
        line("  );")
    }
}
