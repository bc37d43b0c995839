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
    let pe = last.folding.pe, vw = last.valueBits, obw = g.outputDataBits, m = last.outputs
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
    let chain = g.units.map { "\($0.inputs)→\($0.outputs) (\($0.folding))" }.joined(separator: ", ")
    var v = VerilogText(header: [
        "Folded dataflow design of \(g.modelName): dense layers \(chain).",
        "Input: \(g.inputLanes) \(g.inputGrid.bitWidth)-bit \(signedness) codes per beat (feature k·\(g.inputLanes) + l in bits [l·\(g.inputGrid.bitWidth) +: \(g.inputGrid.bitWidth)]), \(g.inputBeats) beats per inference.",
        "Output: \(g.outputWords) accumulators per inference, one per beat, \(g.outputValueBits) bits sign-extended to \(g.outputDataBits); tlast on the last.",
        "Steady state: \(g.expectedCyclesPerInference) cycles per inference; latency \(g.expectedLatency) cycles.",
    ])
    v.block("module \(g.top) (", ");") { v in
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
        let inData = u.index == 0 ? (g.inputDataBits > inBits ? "s_axis_tdata_i[\(inBits - 1):0]" : "s_axis_tdata_i") : "l\(u.index - 1)_data"
        v.line("  \(u.module) u_l\(u.index) (")
        v.line("    .clk_i      (clk_i),")
        v.line("    .rst_ni     (rst_ni),")
        v.line("    .in_data_i  (\(inData)),")
        v.line("    .in_valid_i (\(u.index == 0 ? "s_axis_tvalid_i" : "l\(u.index - 1)_valid")),")
        v.line("    .in_ready_o (\(u.index == 0 ? "s_axis_tready_o" : "l\(u.index - 1)_ready")),")
        v.line("    .out_data_o (l\(u.index)_data),")
        v.line("    .out_valid_o(l\(u.index)_valid),")
        v.line("    .out_ready_i(l\(u.index)_ready)")
        v.line("  );")
    }
    let l = g.units.count - 1
    v.line()
    v.line("  \(g.prefix)_serializer u_out (")
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
    v.line()
    v.line("endmodule")
    return v.text
}
