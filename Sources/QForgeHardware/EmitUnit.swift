import QForgeInteger
import QForgeTensor

/// A per-channel value list the parameter ROM holds: `count` values of `bits` each per lane.
struct RomField {
    var name: String
    var bits: Int
    var count: Int
    /// Value i of channel c.
    var value: (_ channel: Int, _ i: Int) -> Int64
}

/// Where a unit's per-channel parameters live: fields of the parameter ROM, lowest first in
/// each PE lane, lane p at bits [p·laneBits, (p+1)·laneBits).
struct ParameterLayout {
    var fields: [RomField] = []
    var offsets: [String: Int] = [:]
    var laneBits = 0

    mutating func add(_ f: RomField) {
        offsets[f.name] = laneBits
        laneBits += f.bits * f.count
        fields.append(f)
    }

    /// Verilog selecting value `index` (an expression) of field `name` for PE lane `p`.
    func select(_ name: String, index: String? = nil) -> String {
        let f = fields.first { $0.name == name }!
        let offset = offsets[name]!
        let base = "p * \(laneBits)" + (offset > 0 ? " + \(offset)" : "") + (index.map { " + \($0) * \(f.bits)" } ?? "")
        return "prm2[\(base) +: \(f.bits)]"
    }

    /// The ROM words: one per neuron fold, PE lanes each.
    func words(unit u: MatrixVectorUnit) -> [String] {
        (0..<u.neuronFold).map { nf in
            var w = BitWord()
            for p in 0..<u.folding.pe {
                let c = nf * u.folding.pe + p
                for f in fields { for i in 0..<f.count { w.append(f.value(c, i), bits: f.bits) } }
            }
            return w.hex
        }
    }
}

extension MatrixVectorUnit {
    /// Width of an input code as a signed multiplicand: one more bit for unsigned grids.
    var signedInputBits: Int { inputGrid.bitWidth + (inputGrid.signed ? 0 : 1) }
    var productBits: Int { signedInputBits + weightBits }

    var weightRomFile: String { "\(module.replacingOccurrences(of: "_mvau", with: ""))_weights" }
    var paramRomFile: String { "\(module.replacingOccurrences(of: "_mvau", with: ""))_params" }

    /// The weight ROM words: address nf·SF + sf holds the PE × SIMD weights w[nf·PE + p, sf·SIMD + s]
    /// at lane p·SIMD + s.
    func weightWords() -> [String] {
        let pe = folding.pe, simd = folding.simd
        var words: [String] = []
        for nf in 0..<neuronFold {
            for sf in 0..<synapseFold {
                var w = BitWord()
                for p in 0..<pe {
                    for s in 0..<simd { w.append(Int64(weights[(nf * pe + p) * inputs + sf * simd + s]), bits: weightBits) }
                }
                words.append(w.hex)
            }
        }
        return words
    }

    /// The parameter ROM fields: per-channel values that differ between channels.
    var parameterLayout: ParameterLayout {
        var layout = ParameterLayout()
        func add(_ p: ChannelParameter?) {
            guard let p, !p.isConstant else { return }
            layout.add(RomField(name: p.name, bits: p.bits, count: 1) { c, _ in p.value(c) })
        }
        add(bias)
        switch requantization {
        case let .thresholds(levels, lists, _, bits):
            if levels > 0, lists.contains(where: { !$0.isConstant }) {
                layout.add(RomField(name: "thresholds", bits: bits, count: levels) { c, i in lists[i].value(c) })
            }
        case let .multiplyShift(rb, _, m, s, z, _, _):
            add(rb); add(m); add(s); add(z)
        case .output: break
        }
        return layout
    }
}

/// Emits a unit's module: input buffer (a dense layer's two banks, a convolution's line
/// buffer and window walker), fold counters, weight and parameter ROMs, the PE × SIMD
/// multiply-accumulate array, and the requantization of each lane.
func emitUnit(_ u: MatrixVectorUnit, prefix: String) -> String {
    let pe = u.folding.pe, simd = u.folding.simd, sf = u.synapseFold, nf = u.neuronFold
    let xb = u.inputBits, win = u.inLanes, k = u.bankSize
    let sw = u.sumBits, ob = u.outputBits
    // A dense unit whose beats are as wide as its SIMD slices keeps its input buffer as words of
    // one beat (g codes): one write port and one read port, a memory Yosys maps to block or
    // distributed RAM. Otherwise (and for the sliding window) the buffer holds one code per word.
    let g = u.window == nil && win == simd && k % simd == 0 ? simd : 1
    let ptrBits = indexBits(2 * k / g), sfBits = indexBits(sf), nfBits = indexBits(nf), waBits = indexBits(sf * nf)
    let layout = u.parameterLayout
    let hasParams = !layout.fields.isEmpty
    let signedness = u.inputGrid.signed ? "signed" : "unsigned"
    var header = [
        u.window.map { w in "Layer \(u.index) (\(u.layerName)): convolution \(w.description) → \(u.outputs)×\(w.outHeight)×\(w.outWidth), K = \(u.inputs), \(u.folding), \(u.cycles) cycles per input map, \(u.lineBuffer!.rows) input rows buffered." }
            ?? "Layer \(u.index) (\(u.layerName)): dense \(u.inputs) → \(u.outputs), \(u.folding), \(u.cycles) cycles per input vector.",
        "Inputs: \(xb)-bit \(signedness) codes, \(win) per beat; weights: \(u.weightBits)-bit signed; sum: \(sw) bits; accumulator: \(u.accBits) bits.",
    ]
    switch u.requantization {
    case .output: header.append("Output: \(pe) accumulators of \(ob) bits per beat (the last layer).")
    default: header.append("Output: \(pe) codes of \(ob) bits per beat, requantized by \(u.requantization.name)\(u.lookupCodes == nil ? "" : ", then a lookup table").")
    }
    var v = VerilogText(header: header)
    v.block("module \(u.module) (", ");") { v in
        v.line("input  wire clk_i,")
        v.line("input  wire rst_ni,")
        v.line("input  wire \(range(win * xb)) in_data_i,")
        v.line("input  wire in_valid_i,")
        v.line("output wire in_ready_o,")
        v.line("output wire \(range(pe * ob)) out_data_o,")
        v.line("output wire out_valid_o,")
        v.line("input  wire out_ready_i")
    }
    v.line()
    var thresholdLoop = false
    if case let .thresholds(levels, lists, _, _) = u.requantization, levels > 0, lists.contains(where: { !$0.isConstant }) { thresholdLoop = true }
    v.line("  integer \(u.lineBuffer == nil && g == 1 ? "l, s, " : "")p\(thresholdLoop ? ", i" : "");")
    v.line()
    if let lb = u.lineBuffer {
        declareLineBuffer(&v, u, lb)
    } else {
        v.line("  // Input buffer: two banks of \(k) codes. The writer fills one bank, \(win) codes per beat, while")
        v.line("  // the multiply-accumulate loop reads the other, \(simd) codes per cycle.")
        v.line("  reg  \(range(g * xb)) buf_mem [0:\(2 * k / g - 1)];")
        v.line("  reg  \(range(ptrBits)) wr_ptr_q, wr_ptr_d;")
        v.line("  reg  wr_bank_q, wr_bank_d;")
        v.line("  reg  [1:0] full_q, full_d;")
        v.line("  wire wr_en;")
        v.line("  assign in_ready_o = ~full_q[wr_bank_q];")
        v.line("  assign wr_en = in_valid_i & in_ready_o;")
        v.line()
        v.line("  always @(posedge clk_i) begin")
        v.line("    if (wr_en) begin")
        if g > 1 {
            v.line("      buf_mem[wr_ptr_q] <= in_data_i;")
        } else {
            v.line("      for (l = 0; l < \(win); l = l + 1) begin")
            v.line("        buf_mem[wr_ptr_q + l[\(ptrBits - 1):0]] <= in_data_i[l * \(xb) +: \(xb)];")
            v.line("      end")
        }
        v.line("    end")
        v.line("  end")
    }
    v.line()
    v.line("  // Fold counters: sf = synapse fold (0..\(sf - 1)), nf = neuron fold (0..\(nf - 1)); one SIMD slice")
    v.line("  // against PE weight rows is issued per cycle while the pipeline may advance (step).")
    if u.lineBuffer == nil {
        v.line("  reg  \(range(ptrBits)) rd_ptr_q, rd_ptr_d;")
        v.line("  reg  rd_bank_q, rd_bank_d;")
    }
    v.line("  reg  \(range(sfBits)) sf_q, sf_d;")
    v.line("  reg  \(range(nfBits)) nf_q, nf_d;")
    v.line("  reg  \(range(waBits)) waddr_q, waddr_d;")
    v.line("  wire step, issue, last_sf, last_nf;")
    v.line()
    v.line("  // Pipeline: issue (buffer read, ROM address) → 1: multiply-accumulate → 2: requantize → output register.")
    v.line("  reg  v1_q, v1_d, first1_q, first1_d, last1_q, last1_d, v2_q, v2_d;")
    if hasParams { v.line("  reg  \(range(nfBits)) nf1_q, nf1_d;") }
    if u.lineBuffer == nil { v.line("  reg  \(range(simd * xb)) x1_q\(g > 1 ? "" : ", x1_d");") }
    v.line("  reg  \(range(pe * sw)) acc_q, acc_d;")
    v.line("  reg  \(range(pe * sw)) fin_q, fin_d;  // finished sums, held for requantization")
    v.line("  reg  \(range(pe * ob)) out_q, out_d;")
    v.line("  reg  out_valid_q, out_valid_d;")
    v.line("  wire \(range(pe * simd * u.weightBits)) w1;")
    if hasParams { v.line("  wire \(range(pe * layout.laneBits)) prm2;") }
    v.line()
    v.line("  assign step = ~out_valid_q | out_ready_i;")
    v.line("  assign issue = step & \(u.lineBuffer == nil ? "full_q[rd_bank_q]" : "data_ready");")
    v.line("  assign last_sf = sf_q == \(lit(sfBits, Int64(sf - 1)));")
    v.line("  assign last_nf = nf_q == \(lit(nfBits, Int64(nf - 1)));")
    v.line("  assign out_data_o = out_q;")
    v.line("  assign out_valid_o = out_valid_q;")
    v.line()
    if let lb = u.lineBuffer {
        emitLineBufferLogic(&v, u, lb, prefix: prefix)
        v.line()
    }
    v.line("  always @(*) begin")
    if let lb = u.lineBuffer {
        v.line("    sf_d = sf_q;")
        v.line("    nf_d = nf_q;")
        v.line("    waddr_d = waddr_q;")
        emitLineBufferSteps(&v, u, lb, sfBits: sfBits, nfBits: nfBits, waBits: waBits)
    } else {
        v.line("    wr_ptr_d = wr_ptr_q;")
        v.line("    wr_bank_d = wr_bank_q;")
        v.line("    full_d = full_q;")
        v.line("    rd_ptr_d = rd_ptr_q;")
        v.line("    rd_bank_d = rd_bank_q;")
        v.line("    sf_d = sf_q;")
        v.line("    nf_d = nf_q;")
        v.line("    waddr_d = waddr_q;")
        v.line("    if (wr_en) begin")
        v.line("      wr_ptr_d = wr_ptr_q == \(lit(ptrBits, Int64((2 * k - win) / g))) ? \(lit(ptrBits, 0)) : wr_ptr_q + \(lit(ptrBits, Int64(win / g)));")
        v.line("      if (wr_ptr_q == \(lit(ptrBits, Int64((k - win) / g))) || wr_ptr_q == \(lit(ptrBits, Int64((2 * k - win) / g)))) begin")
        v.line("        full_d[wr_bank_q] = 1'b1;")
        v.line("        wr_bank_d = ~wr_bank_q;")
        v.line("      end")
        v.line("    end")
        v.line("    if (issue) begin")
        v.line("      sf_d = last_sf ? \(lit(sfBits, 0)) : sf_q + \(lit(sfBits, 1));")
        v.line("      waddr_d = waddr_q + \(lit(waBits, 1));")
        v.line("      rd_ptr_d = rd_ptr_q + \(lit(ptrBits, Int64(simd / g)));")
        v.line("      if (last_sf) begin")
        v.line("        nf_d = last_nf ? \(lit(nfBits, 0)) : nf_q + \(lit(nfBits, 1));")
        v.line("        rd_ptr_d = rd_bank_q ? \(lit(ptrBits, Int64(k / g))) : \(lit(ptrBits, 0));")
        v.line("        if (last_nf) begin  // the bank is consumed: free it, move to the other")
        v.line("          full_d[rd_bank_q] = 1'b0;")
        v.line("          rd_bank_d = ~rd_bank_q;")
        v.line("          rd_ptr_d = rd_bank_q ? \(lit(ptrBits, 0)) : \(lit(ptrBits, Int64(k / g)));")
        v.line("          waddr_d = \(lit(waBits, 0));")
        v.line("        end")
        v.line("      end")
        v.line("    end")
    }
    v.line("  end")
    v.line()
    v.line("  always @(*) begin")
    v.line("    v1_d = v1_q;")
    v.line("    first1_d = first1_q;")
    v.line("    last1_d = last1_q;")
    if hasParams { v.line("    nf1_d = nf1_q;") }
    if u.lineBuffer == nil && g == 1 { v.line("    x1_d = x1_q;") }
    v.line("    v2_d = v2_q;")
    v.line("    if (step) begin")
    v.line("      v1_d = issue;")
    v.line("      first1_d = sf_q == \(lit(sfBits, 0));")
    v.line("      last1_d = last_sf;")
    if hasParams { v.line("      nf1_d = nf_q;") }
    if u.lineBuffer == nil && g == 1 {
        v.line("      for (s = 0; s < \(simd); s = s + 1) begin")
        v.line("        x1_d[s * \(xb) +: \(xb)] = buf_mem[rd_ptr_q + s[\(ptrBits - 1):0]];")
        v.line("      end")
    }
    v.line("      v2_d = v1_q & last1_q;")
    v.line("    end")
    v.line("  end")
    v.line()
    if g > 1 {
        v.line("  // The SIMD codes of stage 1: a synchronous read of one buffer word (no reset, so that it maps to")
        v.line("  // a RAM's read port; the codes are used only while v1_q is set).")
        v.line("  always @(posedge clk_i) begin")
        v.line("    if (step) x1_q <= buf_mem[rd_ptr_q];")
        v.line("  end")
        v.line()
    }
    emitMac(&v, u, x1: u.lineBuffer == nil ? "x1_q" : "x1")
    v.line()
    emitRequant(&v, u, layout)
    v.line()
    v.line("  // Output register: loads a lane word when the pipeline steps with a finished output.")
    v.line("  always @(*) begin")
    v.line("    out_d = out_q;")
    v.line("    out_valid_d = out_valid_q;")
    v.line("    if (step) begin")
    v.line("      out_valid_d = v2_q;")
    v.line("      if (v2_q) out_d = req_data;")
    v.line("    end")
    v.line("  end")
    v.line()
    v.line("  always @(posedge clk_i or negedge rst_ni) begin")
    v.line("    if (!rst_ni) begin")
    // Input side (a line buffer's registers with their reset values), then the pipeline.
    let lineRegisters = u.lineBuffer.map { lb -> [(String, Int, Int64)] in
        let r = LineBufferRTL(lb: lb)
        return r.registers.map { ($0.name, $0.bits, $0.reset) } + r.readRegisters.map { ($0.name, $0.bits, 0) }
    }
    let resets: [(String, Int, Int64)] = (lineRegisters ?? [("wr_ptr", ptrBits, 0), ("wr_bank", 1, 0), ("full", 2, 0), ("rd_ptr", ptrBits, 0), ("rd_bank", 1, 0)])
        + [("sf", sfBits, 0), ("nf", nfBits, 0), ("waddr", waBits, 0), ("v1", 1, 0), ("first1", 1, 0), ("last1", 1, 0)]
        + (hasParams ? [("nf1", nfBits, 0)] : []) + (lineRegisters == nil && g == 1 ? [("x1", simd * xb, 0)] : [])
        + [("v2", 1, 0), ("acc", pe * sw, 0), ("fin", pe * sw, 0), ("out", pe * ob, 0), ("out_valid", 1, 0)]
    for (name, bits, value) in resets { v.line("      \(name)_q <= \(lit(bits, value));") }
    v.line("    end else begin")
    for (name, _, _) in resets { v.line("      \(name)_q <= \(name)_d;") }
    v.line("    end")
    v.line("  end")
    v.line()
    let words = sf * nf
    v.line("  \(prefix)_rom #(")
    v.line("    .Width(\(pe * simd * u.weightBits)),")
    v.line("    .Depth(\(words)),")
    v.line("    .AddrWidth(\(waBits)),")
    v.line("    .MemFile(\"\(u.weightRomFile).mem\")")
    v.line("  ) u_weights (")
    v.line("    .clk_i (clk_i),")
    v.line("    .en_i  (step),")
    v.line("    .addr_i(waddr_q),")
    v.line("    .data_o(w1)")
    v.line("  );")
    if hasParams {
        v.line()
        v.line("  \(prefix)_rom #(")
        v.line("    .Width(\(pe * layout.laneBits)),")
        v.line("    .Depth(\(nf)),")
        v.line("    .AddrWidth(\(nfBits)),")
        v.line("    .MemFile(\"\(u.paramRomFile).mem\")")
        v.line("  ) u_params (")
        v.line("    .clk_i (clk_i),")
        v.line("    .en_i  (step),")
        v.line("    .addr_i(nf1_q),")
        v.line("    .data_o(prm2)")
        v.line("  );")
    }
    v.line()
    v.line("endmodule")
    return v.text
}

/// Stage 1: per PE lane, the SIMD products of codes and weights added to the running sum
/// (restarted on the first slice of each output), unrolled with constant bit selects.
private func emitMac(_ v: inout VerilogText, _ u: MatrixVectorUnit, x1: String) {
    let pe = u.folding.pe, simd = u.folding.simd, xb = u.inputBits, wb = u.weightBits
    let pw = u.productBits, sw = u.sumBits
    let wraps = sw < u.accRange.bits
    v.line("  // Multiply-accumulate. Codes widen to \(pw) bits (\(u.inputGrid.signed ? "sign" : "zero")-extended), weights sign-extended;")
    v.line("  // each \(pw)-bit product is exact, and the \(sw)-bit sum \(wraps ? "wraps as the accumulator cap says" : "never overflows").")
    v.line("  // The products are signed so that synthesis sees the extensions and narrows each multiplier to")
    v.line("  // \(u.signedInputBits) × \(u.weightBits) bits (the low \(pw) bits are the same as an unsigned product's).")
    v.line("  reg  \(range(pw)) mac_prod;")
    v.line("  reg  \(range(sw)) mac_sum;")
    v.line("  always @(*) begin")
    v.line("    acc_d = acc_q;")
    v.line("    fin_d = fin_q;")
    v.line("    mac_prod = \(lit(pw, 0));")
    v.line("    mac_sum = \(lit(sw, 0));")
    v.line("    if (v1_q & step) begin")
    for p in 0..<pe {
        v.line("      // lane \(p)")
        v.line("      mac_sum = first1_q ? \(lit(sw, 0)) : \(slice("acc_q", (p + 1) * sw - 1, p * sw));")
        for s in 0..<simd {
            let xs = slice(x1, (s + 1) * xb - 1, s * xb)
            let x = u.inputGrid.signed ? signExtendSelect(xs, msb: "\(x1)[\((s + 1) * xb - 1)]", from: xb, to: pw) : "{\(pw - xb)'d0, \(xs)}"
            let lane = (p * simd + s) * wb
            let w = signExtendSelect(slice("w1", lane + wb - 1, lane), msb: "w1[\(lane + wb - 1)]", from: wb, to: pw)
            v.line("      mac_prod = $signed(\(x)) * $signed(\(w));")
            v.line("      mac_sum = mac_sum + \(signExtend("mac_prod", from: pw, to: sw));")
        }
        v.line("      acc_d[\((p + 1) * sw - 1):\(p * sw)] = mac_sum;")
    }
    v.line("      if (last1_q) fin_d = acc_d;")
    v.line("    end")
    v.line("  end")
    if pw > sw {
        v.line("  // The sum is narrower than a product's width: the product's top bits never reach it.")
        v.line("  wire unused_mac_bits;")
        v.line("  assign unused_mac_bits = ^\(slice("mac_prod", pw - 1, sw));")
    }
}

/// Sign extension of a part-select whose top bit is `msb`.
private func signExtendSelect(_ expr: String, msb: String, from: Int, to: Int) -> String {
    if to == from { return expr }
    precondition(to > from)
    return "{{\(to - from){\(msb)}}, \(expr)}"
}

/// Stage 2: per PE lane, bias, cap, dropped bits and the requantization (or the raw value
/// for the last layer) of the lane's sum in `sums` (PE × sumBits) into `req_data`, combinationally;
/// per-channel parameters come from `prm2` (the folded units' parameter ROM, the parallel
/// style's constants). The caller declares `integer p` (and `i` for per-channel thresholds).
func emitRequant(_ v: inout VerilogText, _ u: MatrixVectorUnit, _ layout: ParameterLayout, sums: String = "fin_q") {
    let pe = u.folding.pe, sw = u.sumBits, aw = u.accBits, cw = u.cappedBits, tw = u.valueBits, ob = u.outputBits
    let d = u.droppedBits
    var declarations: [String] = []
    var body: [String] = []
    var unused: [String] = []
    func declare(_ name: String, _ bits: Int, signed: Bool = false) {
        declarations.append("reg  \(signed ? "signed " : "")\(range(bits)) \(name);")
    }
    /// A parameter as a `bits`-wide reg: from the ROM or a literal.
    func parameter(_ p: ChannelParameter, into name: String) {
        declare(name, p.bits, signed: !p.unsigned)
        if p.isConstant {
            body.append("\(name) = \(p.unsigned ? lit(p.bits, p.value(0)) : slit(p.bits, p.value(0)));")
        } else {
            body.append("\(name) = \(layout.select(p.name));")
        }
    }
    // Where the requantized code goes: the lane of req_data, or a code for the lookup table.
    let lane = (name: "req_data[p * \(ob) +: \(ob)]", bits: ob)
    let requantized = u.lookupCodes == nil ? lane : (name: "rq_q", bits: u.requantizedGrid?.bitWidth ?? ob)
    if u.lookupCodes != nil { declare("rq_q", requantized.bits) }
    declare("rq_sum", sw)
    declare("rq_acc", aw, signed: true)
    body.append("rq_sum = \(sums)[p * \(sw) +: \(sw)];")
    if let b = u.bias {
        parameter(b, into: "rq_bias")
        body.append("rq_acc = \(signExtend("rq_sum", from: sw, to: aw)) + rq_bias;")
    } else {
        body.append("rq_acc = \(signExtend("rq_sum", from: sw, to: aw));")
    }
    declare("rq_capped", cw, signed: true)
    if u.saturates, let cap = u.cap {
        let lo = cap.range.lowerBound, hi = cap.range.upperBound
        body.append("// Saturating \(cap.bits)-bit accumulator cap.")
        body.append("if (rq_acc > \(slit(aw, hi))) rq_capped = \(slit(cw, hi));")
        body.append("else if (rq_acc < \(slit(aw, lo))) rq_capped = \(slit(cw, lo));")
        body.append("else rq_capped = rq_acc[\(cw - 1):0];")
    } else {
        precondition(cw == aw)
        body.append("rq_capped = rq_acc;")
    }
    declare("rq_value", tw, signed: true)
    if d > 0 {
        let lowest = min(d, cw - 1)
        body.append("// Keep the most significant bits: >>> \(d), floor.")
        body.append("rq_value = rq_capped[\(cw - 1):\(lowest)];")
        if lowest > 0 { unused.append(slice("rq_capped", lowest - 1, 0)) }  // a 1-bit value keeps its only bit
    } else {
        body.append("rq_value = rq_capped;")
    }
    switch u.requantization {
    case .output:
        body.append("req_data[p * \(ob) +: \(ob)] = rq_value;")
    case let .thresholds(levels, lists, outBias, cmpBits):
        let grid = u.requantizedGrid!
        let countBits = unsignedBits(Int64(levels))
        let codeLo = min(outBias, Int64(grid.minInt)), codeHi = max(outBias + Int64(levels), Int64(grid.maxInt))
        let codeBits = max(ValueRange(codeLo, codeHi).bits, countBits + 1)
        let shared = !lists.contains { !$0.isConstant }
        declare("rq_cmp", cmpBits, signed: true)
        if levels > 0 && !shared { declare("rq_threshold", cmpBits, signed: true) }
        declare("rq_count", countBits)
        declare("rq_code", codeBits, signed: true)
        body.append("// Thresholds: count those at or below the value.")
        body.append("rq_cmp = \(signExtend("rq_value", from: tw, to: cmpBits));")
        if tw > cmpBits { unused.append(slice("rq_value", tw - 1, cmpBits)) }
        body.append("rq_count = \(lit(countBits, 0));")
        if levels > 0 && shared {
            for (i, t) in lists.enumerated() {
                body.append("if (rq_cmp >= \(slit(cmpBits, t.value(0)))) rq_count = rq_count + \(lit(countBits, 1));  // level \(i + 1)")
            }
        } else if levels > 0 {
            body.append("for (i = 0; i < \(levels); i = i + 1) begin")
            body.append("  rq_threshold = \(layout.select("thresholds", index: "i"));")
            body.append("  if (rq_cmp >= rq_threshold) rq_count = rq_count + \(lit(countBits, 1));")
            body.append("end")
        }
        body.append("rq_code = \(slit(codeBits, outBias)) + \(zeroExtend("rq_count", from: countBits, to: codeBits));")
        emitClamp(&body, "rq_code", bits: codeBits, lo: Int64(grid.minInt), hi: Int64(grid.maxInt), into: requantized, unused: &unused)
    case let .multiplyShift(roundedBias, vw, mult, shift, offset, mode, lowest):
        let grid = u.requantizedGrid!
        let mw = mult.bits, shw = shift.bits, zw = offset.bits
        let rw = max(vw + mw, Int(shift.values.max()!) + 1)
        let fw = max(rw, zw) + 1
        declare("rq_v", vw, signed: true)
        if let rb = roundedBias {
            parameter(rb, into: "rq_rounded_bias")
            body.append("rq_v = \(signExtend("rq_value", from: tw, to: vw)) + rq_rounded_bias;")
        } else {
            body.append("rq_v = \(signExtend("rq_value", from: tw, to: vw));")
        }
        if tw > vw { unused.append(slice("rq_value", tw - 1, vw)) }
        parameter(mult, into: "rq_multiplier")
        parameter(shift, into: "rq_shift")
        parameter(offset, into: "rq_offset")
        declare("rq_product", rw, signed: true)
        declare("rq_floor", rw, signed: true)
        declare("rq_f", fw, signed: true)
        declare("rq_code", fw + 1, signed: true)
        declare("rq_up", 1)
        body.append("// Fixed point: the exact product, its floor after the shift plus the offset, then \(mode.rawValue) rounding.")
        body.append("rq_product = \(signExtend("rq_v", from: vw, to: rw)) * \(signExtend("rq_multiplier", from: mw, to: rw));")
        body.append("rq_floor = rq_product >>> rq_shift;")
        body.append("rq_f = \(signExtend("rq_floor", from: rw, to: fw)) + \(signExtend("rq_offset", from: zw, to: fw));")
        let needsHalf = [.round, .halfUp, .halfDown].contains(mode)
        if mode != .floor {
            declare("rq_rem", rw)
            body.append("rq_rem = rq_product & ~({\(rw){1'b1}} << rq_shift);  // the low shift bits")
        }
        if needsHalf {
            declare("rq_half", rw)
            body.append("rq_half = {\(rw - 1)'d0, 1'b1} << rq_shift >> 1;")
        }
        let nonzero = "(rq_rem != \(lit(rw, 0)))"
        let tie = "((rq_shift != \(lit(shw, 0))) & (rq_rem == rq_half))"
        let negative = "rq_f[\(fw - 1)]"
        switch mode {
        case .round: body.append("rq_up = (rq_rem > rq_half) | (\(tie) & rq_f[0]);")
        case .halfUp: body.append("rq_up = (rq_rem > rq_half) | (\(tie) & ~\(negative));")
        case .halfDown: body.append("rq_up = (rq_rem > rq_half) | (\(tie) & \(negative));")
        case .floor: body.append("rq_up = 1'b0;")
        case .ceil: body.append("rq_up = \(nonzero);")
        case .down: body.append("rq_up = \(nonzero) & \(negative);")
        case .up: body.append("rq_up = \(nonzero) & ~\(negative);")
        }
        body.append("rq_code = \(signExtend("rq_f", from: fw, to: fw + 1)) + {\(fw)'d0, rq_up};")
        if lowest > Int64(grid.minInt) { body.append("// Lowest code \(lowest): the ReLU floor of the integer model.") }
        emitClamp(&body, "rq_code", bits: fw + 1, lo: lowest, hi: Int64(grid.maxInt), into: requantized, unused: &unused)
    }
    if let codes = u.lookupCodes {
        body.append("\(lane.name) = lookup_code(rq_q);")
        emitLookupFunction(&v, u, codes: codes)
    }
    v.line("  reg  \(range(pe * ob)) req_data;")
    for dcl in declarations { v.line("  \(dcl)") }
    v.line("  always @(*) begin")
    v.line("    req_data = \(lit(pe * ob, 0));")
    v.line("    for (p = 0; p < \(pe); p = p + 1) begin")
    for b in body { v.line("      \(b)") }
    v.line("    end")
    v.line("  end")
    if !unused.isEmpty {
        v.line("  // Bits the datapath does not need (read here so that lint sees them used).")
        v.line("  wire unused_bits;")
        v.line("  assign unused_bits = ^{\(unused.joined(separator: ", "))};")
    }
}

/// code → clamp(code, lo, hi), its low `target.bits` bits into `target.name`.
private func emitClamp(_ body: inout [String], _ name: String, bits: Int, lo: Int64, hi: Int64, into target: (name: String, bits: Int),
                       unused: inout [String]) {
    let (dest, ob) = target
    // Compared at a width holding both the code and the bounds (a narrow code on a wide grid).
    let cw = max(bits, ValueRange(lo, hi).bits)
    let code = cw == bits ? name : "$signed(\(signExtend(name, from: bits, to: cw)))"
    body.append("if (\(code) > \(slit(cw, hi))) \(dest) = \(patternLiteral(ob, hi));")
    body.append("else if (\(code) < \(slit(cw, lo))) \(dest) = \(patternLiteral(ob, lo));")
    body.append("else \(dest) = \(signExtend(name, from: bits, to: ob));")
    if bits > ob { unused.append(slice(name, bits - 1, ob)) }
}

/// The lookup-table function: the output code of every requantized code (a case per code,
/// two's complement patterns; patterns outside the grid, never produced, take the lowest code's entry).
private func emitLookupFunction(_ v: inout VerilogText, _ u: MatrixVectorUnit, codes: [Int32]) {
    let grid = u.requantizedGrid!, qb = grid.bitWidth, ob = u.outputBits
    v.line("  // Lookup-table activation: requantized code (\(qb)-bit \(grid.signed ? "signed" : "unsigned")) → output code, one entry per code.")
    v.line("  function \(range(ob)) lookup_code(input \(range(qb)) code);")
    v.line("    begin")
    v.line("      case (code)")
    for (i, c) in codes.enumerated() {
        v.line("        \(qb)'h\(twosComplementHex(Int64(grid.minInt) + Int64(i), bits: qb)): lookup_code = \(patternLiteral(ob, Int64(c)));")
    }
    if codes.count < 1 << qb { v.line("        default: lookup_code = \(patternLiteral(ob, Int64(codes[0])));") }
    v.line("      endcase")
    v.line("    end")
    v.line("  endfunction")
    v.line()
}

/// The low `bits` bits of v as an unsigned literal.
private func patternLiteral(_ bits: Int, _ v: Int64) -> String { "\(bits)'h\(twosComplementHex(v, bits: bits))" }
