// The line buffer of a convolution unit and the cycle model of the units in front of the
// first dense unit.
//
// A convolution unit keeps `rows` input rows (W·C codes each) in a circular buffer: input row
// r of the running stream of maps (map after map) lives in slot r mod rows. The writer takes
// one beat per cycle while the row it writes does not overwrite a row the window still needs;
// the window walker starts a slice of output row oy once the input rows that row reads have
// all arrived. One counter couples the two: `fill`, the complete rows counted from the first
// row of the map the walker reads (rows of the next map count on from H), less the first
// row still needed, against the row bounds of oy.
//
// The memory is `banks` simple dual-port RAMs (one write port, one registered read port, no
// reset), each `lanes` codes wide: a word of lcm(lanes, SIMD) codes spans the banks, a beat
// writes one bank, a window slice reads all banks at one address and selects its SIMD codes.
// As lanes and SIMD both divide C, a word never straddles two pixels.

/// A convolution unit's line buffer: its geometry and the row bounds of every output row.
public struct LineBuffer: Equatable, Sendable {
    public var window: SlidingWindow
    /// Codes per input beat.
    public var lanes: Int
    /// Codes per window slice.
    public var simd: Int
    /// Input rows held.
    public var rows: Int

    /// Codes of one memory word: a whole number of beats and of slices.
    public var wordCodes: Int { lanes / gcd(lanes, simd) * simd }
    /// Memories side by side, one written per beat.
    public var banks: Int { wordCodes / lanes }
    /// Window slices in one word.
    public var slicesPerWord: Int { wordCodes / simd }
    /// Words of one input row.
    public var rowWords: Int { window.width * window.channels / wordCodes }
    /// Words of each memory.
    public var depth: Int { rows * rowWords }
    /// Codes held.
    public var codes: Int { rows * window.width * window.channels }
    public var beatsPerRow: Int { window.width * window.channels / lanes }

    /// The input rows 0 ..< rowsNeeded(oy) of a map must have arrived before output row oy
    /// starts. At least one: a row whose window lies wholly in the top padding still waits for
    /// the map's first row, so that no map starts before its input (and an idle unit is empty).
    public func rowsNeeded(_ oy: Int) -> Int {
        max(1, min(window.height, oy * window.stride + window.kernelHeight - window.padding))
    }

    /// The first input row output row oy reads: earlier rows are free for the writer.
    public func firstRow(_ oy: Int) -> Int { max(0, oy * window.stride - window.padding) }

    /// Rows at the bottom of a map that no window reads (a stride that does not tile the map).
    public var trailingRows: Int { window.height - rowsNeeded(window.outHeight - 1) }

    /// The fewest rows: the window's kh rows at once (fewer when the map is shorter would do,
    /// but kh keeps a window row's slot one wrap-around from the top's).
    public static func minimumRows(_ w: SlidingWindow) -> Int { w.kernelHeight }
}

/// One stage in front of the first dense unit.
enum FrontStage {
    case pool(PoolUnit)
    case conv(MatrixVectorUnit, LineBuffer)
}

/// A cycle-by-cycle model of the input stream, pools and convolution units in front of the
/// first dense unit, as the RTL behaves with no stalls on the input and the first dense unit
/// always ready (its empty bank takes a whole inference without stalling). Beat 0 of the
/// input is taken in cycle 0.
struct FrontTiming {
    var inputBeats: Int
    var stages: [FrontStage]

    /// Words the last stage delivers per inference.
    var outputWords: Int {
        switch stages.last! {
        case let .pool(p): return p.outputBeats
        case let .conv(u, _): return u.outputWordsPerInference
        }
    }

    /// Cycles per inference of the slowest stage: input beats, pool beats, convolution slices.
    var bound: Int {
        stages.reduce(inputBeats) { b, s in
            switch s {
            case let .pool(p): return max(b, p.inputBeats)
            case let .conv(u, _): return max(b, u.cycles)
            }
        }
    }

    /// The cycle at which each output word of the first `inferences` inferences is taken.
    func outputTimes(inferences: Int) -> [Int] {
        /// What a stage's cycle needs, flattened once: a pool's completing beats; a conv's row
        /// bounds per output row, beats per input row, slices per output row and synapse fold.
        struct Stage {
            var pool = false
            var beats = 0
            var completes: [Bool] = []
            var need: [Int] = [], first: [Int] = []
            var rows = 0, height = 0, sf = 1, rowSlices = 0
        }
        struct State {
            var beat = 0, outValid = false
            var rows = 0, oy = 0, slice = 0, sf = 0, v1 = false, last1 = false, v2 = false
        }
        let params: [Stage] = stages.map { stage in
            switch stage {
            case let .pool(p):
                var completes = [Bool](repeating: false, count: p.inputBeats)
                for j in 0..<p.outputBeats { completes[p.completingBeat(j)] = true }
                return Stage(pool: true, beats: p.inputBeats, completes: completes)
            case let .conv(u, lb):
                let w = lb.window
                return Stage(beats: lb.beatsPerRow, need: (0..<w.outHeight).map(lb.rowsNeeded), first: (0..<w.outHeight).map(lb.firstRow),
                             rows: lb.rows, height: w.height, sf: u.synapseFold, rowSlices: w.outWidth * u.neuronFold * u.synapseFold)
            }
        }
        var states = [State](repeating: State(), count: stages.count)
        let total = inputBeats * inferences, wanted = outputWords * inferences
        var taken = 0, times: [Int] = []
        times.reserveCapacity(wanted)
        var cycle = 0
        let n = stages.count
        var ready = [Bool](repeating: false, count: n + 1)
        ready[n] = true  // the first dense unit's empty bank
        // A design that stops moving is a bug in the model or the RTL, not a long wait.
        let limit = (bound + inputBeats) * (inferences + 2) * 4 + 10_000
        while times.count < wanted {
            precondition(cycle < limit, "FrontTiming: no progress after \(cycle) cycles")
            // Ready signals from the consumer back to the input.
            for i in stride(from: n - 1, through: 0, by: -1) {
                let s = states[i]
                ready[i] = params[i].pool ? !s.outValid || ready[i + 1] : s.rows < params[i].first[s.oy] + params[i].rows
            }
            if states[n - 1].outValid { times.append(cycle) }
            var valid = taken < total
            if valid && ready[0] { taken += 1 }
            for i in 0..<n {
                let out = ready[i + 1], fire = valid && ready[i]
                var s = states[i]
                valid = s.outValid  // what the next stage sees this cycle
                if params[i].pool {
                    s.outValid = fire && params[i].completes[s.beat] ? true : s.outValid && !out
                    if fire { s.beat = s.beat + 1 == params[i].beats ? 0 : s.beat + 1 }
                } else {
                    let c = params[i]
                    let step = !s.outValid || out
                    let issue = step && s.rows >= c.need[s.oy]
                    if step {
                        s.outValid = s.v2
                        s.v2 = s.v1 && s.last1
                        s.v1 = issue
                        s.last1 = s.sf == c.sf - 1
                    }
                    if fire {
                        s.beat += 1
                        if s.beat == c.beats { s.beat = 0; s.rows += 1 }
                    }
                    if issue {
                        s.sf = s.sf + 1 == c.sf ? 0 : s.sf + 1
                        s.slice += 1
                        if s.slice == c.rowSlices {
                            s.slice = 0
                            s.oy += 1
                            if s.oy == c.need.count { s.oy = 0; s.rows -= c.height }
                        }
                    }
                }
                states[i] = s
            }
            cycle += 1
        }
        return times
    }

    /// Cycles between the last words of the last two of `inferences` inferences.
    func interval(inferences: Int) -> Int {
        let t = outputTimes(inferences: inferences), n = outputWords
        return t[inferences * n - 1] - t[(inferences - 1) * n - 1]
    }
}

// MARK: - RTL

/// The memory of line buffers: one write port, one registered read port with enable, no
/// reset, no initial contents (an inferred simple dual-port block RAM).
func emitRam(prefix: String) -> String {
    var v = VerilogText(header: ["Simple dual-port memory: one write port, synchronous read with enable; no reset (an inferred block RAM)."])
    v.line("module \(prefix)_ram #(")
    v.line("  parameter integer Width = 8,")
    v.line("  parameter integer Depth = 2,")
    v.line("  parameter integer AddrWidth = 1")
    v.line(") (")
    v.line("  input  wire clk_i,")
    v.line("  input  wire wr_en_i,")
    v.line("  input  wire [AddrWidth-1:0] wr_addr_i,")
    v.line("  input  wire [Width-1:0] wr_data_i,")
    v.line("  input  wire rd_en_i,")
    v.line("  input  wire [AddrWidth-1:0] rd_addr_i,")
    v.line("  output reg  [Width-1:0] rd_data_o")
    v.line(");")
    v.line()
    v.line("  reg [Width-1:0] mem [0:Depth-1];")
    v.line()
    v.line("  always @(posedge clk_i) begin")
    v.line("    if (wr_en_i) mem[wr_addr_i] <= wr_data_i;")
    v.line("  end")
    v.line()
    v.line("  always @(posedge clk_i) begin")
    v.line("    if (rd_en_i) rd_data_o <= mem[rd_addr_i];")
    v.line("  end")
    v.line()
    v.line("endmodule")
    return v.text
}

/// Widths and constants of a convolution unit's line-buffer logic.
struct LineBufferRTL {
    let lb: LineBuffer
    var w: SlidingWindow { lb.window }
    /// Word address in a memory, word within a row, bank, fill counter, slot.
    var addrBits: Int { indexBits(lb.depth) }
    var rowWordBits: Int { indexBits(lb.rowWords) }
    var bankBits: Int { indexBits(lb.banks) }
    /// The fill counter: complete rows from the walker's map start, plus the trailing rows.
    var fillBits: Int { unsignedBits(Int64(max(w.height + lb.rows + lb.trailingRows, (w.outHeight - 1) * w.stride + w.kernelHeight + w.padding))) }
    var slotBits: Int { indexBits(lb.rows) }
    var slotSumBits: Int { unsignedBits(Int64(2 * lb.rows)) }
    /// The slot of input row −padding of the first map (rows start in slot 0).
    var firstTop: Int { (lb.rows - w.padding % lb.rows) % lb.rows }

    /// The window counters, fastest first: slice within a word (when a word holds several),
    /// word within the pixel, kernel column and row, output column and row.
    var counters: [(name: String, count: Int)] {
        (lb.slicesPerWord > 1 ? [("cj", lb.slicesPerWord)] : []) + [("cw", w.channels / lb.wordCodes), ("kx", w.kernelWidth),
                                                                     ("ky", w.kernelHeight), ("ox", w.outWidth), ("oy", w.outHeight)]
    }

    /// Registers with their reset values: writer, window counters, slots.
    var registers: [(name: String, bits: Int, reset: Int64)] {
        (lb.banks > 1 ? [("wbank", bankBits, 0)] : []) + [("wr_addr", addrBits, 0), ("wr_word", rowWordBits, 0),
                                                          ("fill", fillBits, Int64(lb.trailingRows))]
            + counters.map { ($0.name, indexBits($0.count), 0) }
            + [("top", slotBits, Int64(firstTop)), ("frame_top", slotBits, Int64(firstTop))]
    }

    /// Registers that travel with the memory read: padding flag and slice within the word.
    var readRegisters: [(name: String, bits: Int)] {
        [("pad1", 1)] + (lb.slicesPerWord > 1 ? [("cj1", indexBits(lb.slicesPerWord))] : [])
    }
}

/// Declarations of a convolution unit's line buffer: writer, fill counter, window counters
/// and slots. `data_ready` says that the rows of the current output row are in.
func declareLineBuffer(_ v: inout VerilogText, _ u: MatrixVectorUnit, _ lb: LineBuffer) {
    let r = LineBufferRTL(lb: lb), w = lb.window
    v.line("  // Line buffer: \(lb.rows) input rows of \(w.width)×\(w.channels) codes in a circular buffer (input row n of the")
    if lb.banks == 1 {
        v.line("  // stream of maps in slot n mod \(lb.rows)), one memory of \(lb.depth) words × \(lb.lanes) codes (a beat, \(lb.slicesPerWord) slice\(lb.slicesPerWord == 1 ? "" : "s")).")
    } else {
        v.line("  // stream of maps in slot n mod \(lb.rows)), \(lb.banks) memories of \(lb.depth) words × \(lb.lanes) codes (a beat each): a word of")
        v.line("  // \(lb.wordCodes) codes (\(lb.slicesPerWord) slice\(lb.slicesPerWord == 1 ? "" : "s")) spans them.")
    }
    v.line("  // The writer takes a beat while its row overwrites no row still needed; the window starts a slice")
    v.line("  // once the rows of its output row are in. fill = complete rows counted from the first row of the")
    v.line("  // map being read\(lb.trailingRows == 0 ? "." : ", plus \(lb.trailingRows) (the rows at its bottom no window reads).")")
    for (name, bits, _) in r.registers { v.line("  reg  \(range(bits)) \(name)_q, \(name)_d;") }
    for (name, bits) in r.readRegisters { v.line("  reg  \(range(bits)) \(name)_q, \(name)_d;") }
    v.line("  wire wr_en, row_done, data_ready;")
    v.line("  wire last_\(r.counters.map(\.name).joined(separator: ", last_"));")
    for (name, count) in r.counters { v.line("  assign last_\(name) = \(name)_q == \(lit(indexBits(count), Int64(count - 1)));") }
}

/// The logic of a convolution unit's line buffer: row bounds of the current output row,
/// writer handshake, window address, the memories and the selected slice `x1` (code 0 in the
/// padding). Comes after `step` is declared.
func emitLineBufferLogic(_ v: inout VerilogText, _ u: MatrixVectorUnit, _ lb: LineBuffer, prefix: String) {
    let r = LineBufferRTL(lb: lb), w = lb.window
    let fb = r.fillBits, xb = u.inputBits, simd = lb.simd
    let h = Int64(w.height), p = Int64(w.padding), t = Int64(lb.trailingRows), rows = Int64(lb.rows)
    let oyBits = indexBits(w.outHeight)
    v.line("  // Row bounds of output row oy: input rows 0 .. need−1 of its map must be in (fill ≥ need\(t == 0 ? "" : " + \(t)")); rows")
    v.line("  // before its first row are free, so the writer may fill up to that row + \(rows) (fill < limit).")
    v.line("  reg  \(range(fb)) oy_rows, row_end, row_need, row_limit;")
    v.line("  always @(*) begin")
    v.line("    oy_rows = \(w.stride == 1 ? zeroExtend("oy_q", from: oyBits, to: fb) : "\(zeroExtend("oy_q", from: oyBits, to: fb)) * \(lit(fb, Int64(w.stride)))");")
    v.line("    row_end = oy_rows + \(lit(fb, Int64(w.kernelHeight)));")
    if p == 0 {
        v.line("    row_need = \(t == 0 ? "" : "(")row_end > \(lit(fb, h)) ? \(lit(fb, h)) : row_end\(t == 0 ? "" : ") + \(lit(fb, t))");")
        v.line("    row_limit = oy_rows + \(lit(fb, rows + t));")
    } else {
        v.line("    if (row_end <= \(lit(fb, p))) row_need = \(lit(fb, 1 + t));  // wholly in the padding: wait for the first row")
        v.line("    else if (row_end > \(lit(fb, h + p))) row_need = \(lit(fb, h + t));")
        v.line("    else row_need = row_end - \(lit(fb, p))\(t == 0 ? "" : " + \(lit(fb, t))");")
        v.line("    row_limit = oy_rows < \(lit(fb, p)) ? \(lit(fb, rows + t)) : oy_rows - \(lit(fb, p)) + \(lit(fb, rows + t));")
    }
    v.line("  end")
    v.line("  assign in_ready_o = fill_q < row_limit;")
    v.line("  assign wr_en = in_valid_i & in_ready_o;")
    let lastBank = lb.banks > 1 ? " & (wbank_q == \(lit(r.bankBits, Int64(lb.banks - 1))))" : ""
    v.line("  assign row_done = wr_en & (wr_word_q == \(lit(r.rowWordBits, Int64(lb.rowWords - 1))))\(lastBank);")
    v.line("  assign data_ready = fill_q >= row_need;")
    v.line()

    // Address of the current slice: slot·rowWords + input column·(C/word) + word in the pixel.
    let rowMax = (w.outHeight - 1) * w.stride + w.kernelHeight - 1, colMax = (w.outWidth - 1) * w.stride + w.kernelWidth - 1
    let pixelWords = w.channels / lb.wordCodes
    let ab = unsignedBits(Int64(max(lb.rows * lb.rowWords + (colMax + 1) * pixelWords, rowMax + 1, colMax + 1)))
    let bits = Dictionary(uniqueKeysWithValues: r.counters.map { ($0.name, indexBits($0.count)) })
    func ext(_ name: String, _ to: Int) -> String { zeroExtend("\(name)_q", from: bits[name]!, to: to) }
    func times(_ e: String, _ k: Int, _ width: Int) -> String { k == 1 ? e : "\(e) * \(lit(width, Int64(k)))" }
    var pad: [String] = []
    if p > 0 { pad += ["(win_row < \(lit(ab, p)))", "(win_col < \(lit(ab, p)))"] }
    if rowMax >= w.height + w.padding { pad.append("(win_row >= \(lit(ab, h + p)))") }
    if colMax >= w.width + w.padding { pad.append("(win_col >= \(lit(ab, Int64(w.width + w.padding))))") }
    let sb = r.slotSumBits, ab2 = r.addrBits
    v.line("  // Window address: padded row and column of the kernel position, the slot of its row (top = slot of")
    v.line("  // input row oy·\(w.stride) − \(p)), the word (slot·\(lb.rowWords) + input column·\(pixelWords) + word in the pixel), and")
    v.line("  // whether it lies in the padding (then the address is not used).")
    let usesRow = pad.contains { $0.contains("win_row") }
    v.line("  reg  \(range(ab)) \(usesRow ? "win_row, " : "")win_col, win_full;")
    v.line("  reg  \(range(sb)) win_slot_sum;")
    v.line("  reg  \(range(r.slotBits)) win_slot;")
    v.line("  reg  \(range(ab2)) win_addr;")
    v.line("  reg  win_pad;")
    v.line("  always @(*) begin")
    if usesRow { v.line("    win_row = \(times(ext("oy", ab), w.stride, ab)) + \(ext("ky", ab));") }
    v.line("    win_col = \(times(ext("ox", ab), w.stride, ab)) + \(ext("kx", ab));")
    v.line("    win_pad = \(pad.isEmpty ? "1'b0" : pad.joined(separator: " | "));")
    v.line("    win_slot_sum = \(zeroExtend("top_q", from: r.slotBits, to: sb)) + \(zeroExtend("ky_q", from: bits["ky"]!, to: sb));")
    v.line("    if (win_slot_sum >= \(lit(sb, rows))) win_slot_sum = win_slot_sum - \(lit(sb, rows));")
    v.line("    win_slot = win_slot_sum[\(r.slotBits - 1):0];")
    let offset = Int64(w.padding * pixelWords)
    v.line("    win_full = \(times(zeroExtend("win_slot", from: r.slotBits, to: ab), lb.rowWords, ab)) + \(times("win_col", pixelWords, ab)) + \(ext("cw", ab))"
           + (offset > 0 ? " - \(lit(ab, offset));" : ";"))
    v.line("    win_addr = \(ab == ab2 ? "win_full" : "win_full[\(ab2 - 1):0]");")
    v.line("  end")
    if ab > ab2 {
        v.line("  wire unused_win_bits;")
        v.line("  assign unused_win_bits = ^win_full[\(ab - 1):\(ab2)];")
    }
    v.line()

    // Next slots: the top moves down `stride` rows per output row, to the next map's first row after the last.
    v.line("  // Slots after this output row: stride rows down, or the next map's row −\(p) after the last row.")
    v.line("  reg  \(range(sb)) top_step, frame_step;")
    v.line("  reg  \(range(r.slotBits)) top_next, frame_next;")
    v.line("  always @(*) begin")
    v.line("    top_step = \(zeroExtend("top_q", from: r.slotBits, to: sb)) + \(lit(sb, Int64(w.stride % lb.rows)));")
    v.line("    if (top_step >= \(lit(sb, rows))) top_step = top_step - \(lit(sb, rows));")
    v.line("    top_next = top_step[\(r.slotBits - 1):0];")
    v.line("    frame_step = \(zeroExtend("frame_top_q", from: r.slotBits, to: sb)) + \(lit(sb, Int64(w.height % lb.rows)));")
    v.line("    if (frame_step >= \(lit(sb, rows))) frame_step = frame_step - \(lit(sb, rows));")
    v.line("    frame_next = frame_step[\(r.slotBits - 1):0];")
    v.line("  end")
    v.line("  wire unused_slot_bits;  // a slot below \(rows) needs only the low bits")
    v.line("  assign unused_slot_bits = ^{\(slice("win_slot_sum", sb - 1, r.slotBits)), \(slice("top_step", sb - 1, r.slotBits)), \(slice("frame_step", sb - 1, r.slotBits))};")
    v.line()

    // The memories: bank j holds codes j·lanes … of every word; all read at once.
    let laneBits = lb.lanes * xb
    v.line("  wire \(range(lb.wordCodes * xb)) rd_word;")
    for j in 0..<lb.banks {
        let enable = lb.banks == 1 ? "wr_en" : "wr_en & (wbank_q == \(lit(r.bankBits, Int64(j))))"
        v.line("  \(prefix)_ram #(")
        v.line("    .Width(\(laneBits)),")
        v.line("    .Depth(\(lb.depth)),")
        v.line("    .AddrWidth(\(ab2))")
        v.line("  ) u_line\(lb.banks == 1 ? "" : "\(j)") (")
        v.line("    .clk_i    (clk_i),")
        v.line("    .wr_en_i  (\(enable)),")
        v.line("    .wr_addr_i(wr_addr_q),")
        v.line("    .wr_data_i(in_data_i),")
        v.line("    .rd_en_i  (step),")
        v.line("    .rd_addr_i(win_addr),")
        v.line("    .rd_data_o(\(lb.banks == 1 ? "rd_word" : "rd_word[\((j + 1) * laneBits - 1):\(j * laneBits)]"))")
        v.line("  );")
    }
    v.line()
    v.line("  // The slice read last cycle: its SIMD codes of the word, or code 0 in the padding.")
    v.line("  reg  \(range(simd * xb)) x1;")
    v.line("  always @(*) begin")
    if lb.slicesPerWord == 1 {
        v.line("    x1 = rd_word;")
    } else {
        let cjBits = indexBits(lb.slicesPerWord)
        v.line("    x1 = rd_word[\(simd * xb - 1):0];")
        for j in 1..<lb.slicesPerWord {
            v.line("    if (cj1_q == \(lit(cjBits, Int64(j)))) x1 = rd_word[\((j + 1) * simd * xb - 1):\(j * simd * xb)];")
        }
    }
    v.line("    if (pad1_q) x1 = \(lit(simd * xb, 0));")
    v.line("  end")
}

/// The writer step and the issue step of a convolution unit (inside the unit's combinational
/// block, after the defaults): beats advance the bank, word and row; a complete row adds to
/// `fill`; the window counters advance with the synapse fold; after the last neuron fold of a
/// pixel the next pixel begins, after a row the top slot moves down, after the map the next
/// map's rows count from its first.
func emitLineBufferSteps(_ v: inout VerilogText, _ u: MatrixVectorUnit, _ lb: LineBuffer, sfBits: Int, nfBits: Int, waBits: Int) {
    let r = LineBufferRTL(lb: lb), w = lb.window
    for (name, _, _) in r.registers { v.line("    \(name)_d = \(name)_q;") }
    for (name, _) in r.readRegisters { v.line("    \(name)_d = \(name)_q;") }
    let bits = Dictionary(uniqueKeysWithValues: r.counters.map { ($0.name, indexBits($0.count)) })
    func advance(_ name: String) -> String {
        "\(name)_d = last_\(name) ? \(lit(bits[name]!, 0)) : \(name)_q + \(lit(bits[name]!, 1));"
    }
    let ab = r.addrBits, rb = r.rowWordBits, fb = r.fillBits
    v.line("    if (wr_en) begin")
    var indent = "      "
    if lb.banks > 1 {
        let bb = r.bankBits, lastBank = "wbank_q == \(lit(bb, Int64(lb.banks - 1)))"
        v.line("      wbank_d = \(lastBank) ? \(lit(bb, 0)) : wbank_q + \(lit(bb, 1));")
        v.line("      if (\(lastBank)) begin")
        indent = "        "
    }
    v.line("\(indent)wr_addr_d = wr_addr_q == \(lit(ab, Int64(lb.depth - 1))) ? \(lit(ab, 0)) : wr_addr_q + \(lit(ab, 1));")
    v.line("\(indent)wr_word_d = wr_word_q == \(lit(rb, Int64(lb.rowWords - 1))) ? \(lit(rb, 0)) : wr_word_q + \(lit(rb, 1));")
    if lb.banks > 1 { v.line("      end") }
    v.line("    end")
    v.line("    if (row_done) fill_d = fill_q + \(lit(fb, 1));")
    v.line("    if (step) begin")
    v.line("      pad1_d = win_pad;")
    if lb.slicesPerWord > 1 { v.line("      cj1_d = cj_q;") }
    v.line("    end")
    v.line("    if (issue) begin")
    v.line("      sf_d = last_sf ? \(lit(sfBits, 0)) : sf_q + \(lit(sfBits, 1));")
    v.line("      waddr_d = waddr_q + \(lit(waBits, 1));")
    // The channel-side counters carry into the kernel column, then the kernel row.
    let inner = r.counters.map(\.name).prefix { $0 != "ox" }
    var carry: [String] = []
    for name in inner {
        let condition = carry.isEmpty ? "" : "if (\(carry.map { "last_\($0)" }.joined(separator: " & "))) "
        v.line("      \(condition)\(advance(name))")
        carry.append(name)
    }
    v.line("      if (last_sf) begin")
    v.line("        nf_d = last_nf ? \(lit(nfBits, 0)) : nf_q + \(lit(nfBits, 1));")
    v.line("        if (last_nf) begin  // the output pixel is done")
    v.line("          waddr_d = \(lit(waBits, 0));")
    v.line("          \(advance("ox"))")
    v.line("          if (last_ox) begin  // the output row is done")
    v.line("            \(advance("oy"))")
    v.line("            top_d = top_next;")
    v.line("            if (last_oy) begin  // the map is done: the next map's rows count from its first")
    v.line("              top_d = frame_next;")
    v.line("              frame_top_d = frame_next;")
    v.line("              fill_d = fill_d - \(lit(fb, Int64(w.height)));")
    v.line("            end")
    v.line("          end")
    v.line("        end")
    v.line("      end")
    v.line("    end")
}
