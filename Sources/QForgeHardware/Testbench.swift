import QForgeInteger
import QForgeTensor

/// Input codes and the integer model's expected outputs for them: what the testbench replays
/// and checks.
public struct TestVectors: Sendable {
    /// Input codes [N, features].
    public var inputs: QTensor
    /// The last layer's accumulators [N, outputs], from `IntegerModel.run`.
    public var outputs: AccTensor
    /// Where the inputs come from ("fashion-mnist test set", "random").
    public var source: String
    /// With layer taps: every layer's output codes but the last's (`IntegerModel.Trace.codes`),
    /// which the testbench checks on the streams between the units.
    public var layerCodes: [QTensor]?

    public var count: Int { inputs.shape[0] }

    /// Runs the integer model on `inputs` (codes, [N, …]) for the expected outputs, and keeps
    /// every layer's codes when `taps`.
    public init(model: IntegerModel, inputs: QTensor, source: String, taps: Bool = false) {
        let n = inputs.shape[0], features = inputs.count / max(n, 1)
        self.inputs = inputs.reshaped(to: [n, features])
        let trace = model.run(inputs.reshaped(to: [n] + model.inputShape))
        outputs = trace.outputs
        layerCodes = taps ? trace.codes : nil
        self.source = source
    }

    /// The tap file of unit `u` (not the last): its output stream, one word of PE codes per
    /// line (lane p in bits [p·b, p·b + b)), in stream order (a map pixel by pixel, HWC).
    func tapHex(_ u: MatrixVectorUnit) -> String {
        let codes = layerCodes![u.index], perSample = codes.count / max(count, 1), pe = u.folding.pe
        var lines: [String] = []
        lines.reserveCapacity(count * u.outputWordsPerInference)
        for n in 0..<count {
            for word in 0..<u.outputWordsPerInference {
                var w = BitWord()
                for p in 0..<pe {
                    let q = word * pe + p
                    let index = u.window.map { modelIndex(streamPosition: q, channels: u.outputs, height: $0.outHeight, width: $0.outWidth) } ?? q
                    w.append(Int64(codes.values[n * perSample + index]), bits: u.outputBits)
                }
                lines.append(w.hex)
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `count` random input vectors over the input grid, with its extremes: all lowest, all
    /// highest, alternating, then per first-layer channel the inputs that reach its largest
    /// and smallest accumulator, then uniform codes (a third of those only at the two ends).
    public static func randomInputs(_ model: IntegerModel, count: Int, seed: UInt64) -> QTensor {
        let grid = model.inputQuantizer.grid
        let k = model.inputShape.reduce(1, *)
        let lo = Int32(grid.minInt), hi = Int32(grid.maxInt)
        var rng = SeededRandom(seed: seed)
        var values: [Int32] = []
        values.reserveCapacity(count * k)
        let w = model.layers[0].product.weights
        // Extremes of the first layer's rows, when that layer reads the input as it is (no pool).
        let extremes = w.rank == 2 && w.shape[1] == k ? IntegerOps.extremeInputs(weight: w, inputs: lo...hi) : nil
        let channels = w.shape[0]
        for j in 0..<count {
            switch j {
            case 0: values += [Int32](repeating: lo, count: k)
            case 1: values += [Int32](repeating: hi, count: k)
            case 2: values += (0..<k).map { $0 % 2 == 0 ? lo : hi }
            case 3..<(3 + 2 * channels) where extremes != nil && (j - 3) < 2 * min(channels, 8):
                let c = (j - 3) / 2, t = (j - 3) % 2 == 0 ? extremes!.maximizing : extremes!.minimizing
                values += t.values[(c * k)..<((c + 1) * k)]
            default:
                let ends = j % 3 == 0
                values += (0..<k).map { _ in
                    ends ? (rng.next() & 1 == 0 ? lo : hi) : Int32(Int64(lo) + Int64(rng.next() % UInt64(Int64(hi) - Int64(lo) + 1)))
                }
            }
        }
        return QTensor(shape: [count] + model.inputShape, values: values)
    }

    /// The input file: one line per beat, `lanes` codes per beat (lane l in bits [l·b, l·b + b)).
    func inputHex(_ g: HardwareGraph) -> String {
        let b = g.inputGrid.bitWidth, lanes = g.inputLanes, k = inputs.shape[1]
        var lines: [String] = []
        lines.reserveCapacity(count * g.inputBeats)
        for n in 0..<count {
            for beat in 0..<g.inputBeats {
                var w = BitWord()
                for l in 0..<lanes {
                    // A feature map streams pixel by pixel (HWC); the vectors hold the model's NCHW order.
                    let q = beat * lanes + l
                    let feature = g.spatialInput ? modelIndex(streamPosition: q, channels: g.inputShape[0], height: g.inputShape[1], width: g.inputShape[2]) : q
                    w.append(Int64(inputs.values[n * k + feature]), bits: b)
                }
                w.append(0, bits: g.inputDataBits - lanes * b)
                lines.append(w.hex)
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The expected-output file: one accumulator per line, `outputDataBits` wide (two's complement),
    /// or with argmax one index per inference; with `outputLanes` > 1 (the parallel style) one
    /// line per inference, lane c in bits [c·B, c·B + B) (B = outputDataBits / lanes).
    func expectedHex(_ g: HardwareGraph) -> String {
        let words = g.argmax ? IntegerOps.argmax(outputs).map(Int64.init) : outputs.values
        guard g.outputLanes > 1 else { return words.map { twosComplementHex($0, bits: g.outputDataBits) }.joined(separator: "\n") + "\n" }
        let lanes = g.outputLanes, bits = g.outputDataBits / lanes
        return (0..<(words.count / lanes)).map { n -> String in
            var w = BitWord()
            for c in 0..<lanes { w.append(words[n * lanes + c], bits: bits) }
            return w.hex
        }.joined(separator: "\n") + "\n"
    }
}

/// The self-checking testbench: replays the input vectors with seeded random stalls on the
/// input valid and the output ready, checks every output word and `tlast` against the expected
/// file, then sends a burst of samples without stalls to measure latency and the interval
/// between inferences. Plusargs: `+samples=N`, `+seed=S`, `+stall=PERCENT` (default 30).
/// Prints `FAIL` lines, `QFORGE cycles=… latency=… interval=…`, and last `N passed, M failed`.
/// With `taps` (the folded style), it also checks every word on the stream after each unit but
/// the last against `vectors/tap<i>.hex`, counts a sample failed when any of its words
/// differs anywhere, and names each failed sample's first differing layer.
func emitTestbench(_ g: HardwareGraph, vectors: Int, timingSamples: Int, taps: Bool = false) -> String {
    let tapped = taps ? Array(g.units.dropLast()) : []
    let ib = g.inputDataBits, ob = g.outputDataBits, beats = g.inputBeats, words = g.outputWords
    let timeout = 20 * (g.expectedLatency + 2 * g.expectedCyclesPerInference) + 10_000
    // A max-pool that drops trailing rows or columns, or a convolution whose windows skip the
    // map's last rows, sends its last output before the input's last beats (and the units
    // before it keep working on them): the timing burst then waits until every input beat is
    // taken and `Drain` more cycles, so that it enters an empty design.
    let drains = g.pools.contains { $0.completingBeat($0.outputBeats - 1) != $0.inputBeats - 1 }
        || g.units.contains { ($0.lineBuffer?.trailingRows ?? 0) > 0 }
    var v = VerilogText(header: [
        "Self-checking testbench of \(g.top): random stalls on both streams, every output word checked.",
        "Plusargs: +samples=N (default all \(vectors)), +seed=S, +stall=PERCENT (default 30). Ends with \"N passed, M failed\".",
    ])
    v.line("module \(g.prefix)_tb;")
    v.line()
    v.line("  localparam integer InBeats = \(beats);")
    v.line("  localparam integer OutWords = \(words);")
    v.line("  localparam integer Vectors = \(vectors);")
    v.line("  localparam integer TimingSamples = \(timingSamples);")
    v.line("  localparam integer ExpectedLatency = \(g.expectedLatency);")
    v.line("  localparam integer ExpectedInterval = \(g.expectedCyclesPerInference);")
    v.line("  localparam integer Timeout = \(timeout);")
    if drains { v.line("  localparam integer Drain = \(g.expectedLatency);") }
    v.line()
    v.line("  reg clk = 1'b0;")
    v.line("  always #5 clk = ~clk;")
    v.line()
    v.line("  reg  [\(ib - 1):0] in_mem [0:\(vectors * beats - 1)];")
    v.line("  reg  [\(ob - 1):0] exp_mem [0:\(vectors * words - 1)];")
    if !tapped.isEmpty {
        v.line("  // Layer taps: the stream after each unit but the last, checked word by word; bit i of")
        v.line("  // tap_bad[s] (out_bad[s]) marks a difference of sample s after unit i (at the output).")
        for u in tapped {
            v.line("  reg  [\(u.folding.pe * u.outputBits - 1):0] tap\(u.index)_mem [0:\(vectors * u.outputWordsPerInference - 1)];")
            v.line("  integer tap\(u.index)_count;")
        }
        v.line("  reg  [\(tapped.count - 1):0] tap_bad [0:\(vectors - 1)];")
        v.line("  reg  out_bad [0:\(vectors - 1)];")
        v.line("  integer tap_sample, tap_layer, tap_first;")
    }
    v.line("  reg  rst_n = 1'b0;")
    v.line("  reg  [\(ib - 1):0] s_data = \(ib)'d0;")
    v.line("  reg  s_valid = 1'b0;")
    v.line("  wire s_ready;")
    v.line("  wire [\(ob - 1):0] m_data;")
    v.line("  wire m_valid, m_last;")
    v.line("  reg  m_ready = 1'b0;")
    v.line()
    v.line("  \(g.top) dut (")
    v.line("    .clk_i          (clk),")
    v.line("    .rst_ni         (rst_n),")
    v.line("    .s_axis_tdata_i (s_data),")
    v.line("    .s_axis_tvalid_i(s_valid),")
    v.line("    .s_axis_tready_o(s_ready),")
    v.line("    .m_axis_tdata_o (m_data),")
    v.line("    .m_axis_tvalid_o(m_valid),")
    v.line("    .m_axis_tready_i(m_ready),")
    v.line("    .m_axis_tlast_o (m_last)")
    v.line("  );")
    v.line()
    v.line("  // xorshift32: the same stall pattern in every simulator for a given seed.")
    v.line("  function [31:0] xorshift(input [31:0] x);")
    v.line("    reg [31:0] y;")
    v.line("    begin")
    v.line("      y = x ^ (x << 13);")
    v.line("      y = y ^ (y >> 17);")
    v.line("      xorshift = y ^ (y << 5);")
    v.line("    end")
    v.line("  endfunction")
    v.line()
    v.line("  integer samples, seed, stall, phase, cycle, idle;")
    v.line("  integer in_next, in_total, in_taken, out_count, out_total, word, sample;")
    v.line("  integer passed, failed, timing_failed, reports, first_in, previous_done, latency, interval\(drains ? ", drain" : "");")
    v.line("  reg [31:0] rng_in, rng_out;")
    v.line("  reg sample_bad;")
    v.line("  reg [\(ob - 1):0] expected;")
    v.line()
    v.line("  initial begin")
    v.line("    if (!$value$plusargs(\"samples=%d\", samples)) samples = Vectors;")
    v.line("    if (samples > Vectors) samples = Vectors;")
    v.line("    if (samples < 1) samples = 1;")
    v.line("    if (!$value$plusargs(\"seed=%d\", seed)) seed = 1;")
    v.line("    if (!$value$plusargs(\"stall=%d\", stall)) stall = 30;")
    v.line("    $readmemh(\"vectors/input.hex\", in_mem);")
    v.line("    $readmemh(\"vectors/expected.hex\", exp_mem);")
    if !tapped.isEmpty {
        for u in tapped {
            v.line("    $readmemh(\"vectors/tap\(u.index).hex\", tap\(u.index)_mem);")
            v.line("    tap\(u.index)_count = 0;")
        }
        v.line("    for (tap_sample = 0; tap_sample < Vectors; tap_sample = tap_sample + 1) begin")
        v.line("      tap_bad[tap_sample] = \(tapped.count)'d0;")
        v.line("      out_bad[tap_sample] = 1'b0;")
        v.line("    end")
    }
    v.line("    rng_in = 32'h9e3779b9 ^ seed;")
    v.line("    rng_out = 32'h6a09e667 ^ (seed * 7 + 1);")
    v.line("    phase = 0;")
    v.line("    cycle = 0;")
    v.line("    idle = 0;")
    v.line("    in_next = 0;")
    v.line("    in_taken = 0;")
    v.line("    in_total = samples * InBeats;")
    v.line("    out_count = 0;")
    v.line("    out_total = samples * OutWords;")
    v.line("    passed = 0;")
    v.line("    failed = 0;")
    v.line("    timing_failed = 0;")
    v.line("    reports = 0;")
    v.line("    first_in = 0;")
    v.line("    previous_done = 0;")
    v.line("    latency = 0;")
    v.line("    interval = 0;")
    v.line("    sample_bad = 1'b0;")
    if drains { v.line("    drain = 0;") }
    v.line("  end")
    v.line()
    v.line("  // Phase 0: all samples with random stalls. Phase 1: a burst of TimingSamples without stalls")
    v.line("  // into the empty design, for latency (first input beat to last output beat of the first")
    v.line("  // sample) and the interval between the last two samples' last beats.")
    v.line("  always @(posedge clk) begin")
    v.line("    cycle = cycle + 1;")
    v.line("    if (cycle == 4) rst_n <= 1'b1;")
    v.line("    if (rst_n) begin")
    v.line("      idle = idle + 1;")
    v.line("      if (s_valid && s_ready) begin")
    v.line("        if (in_taken == 0) first_in = cycle;")
    v.line("        in_taken = in_taken + 1;")
    v.line("      end")
    v.line("      if (!s_valid || s_ready) begin")
    v.line("        rng_in = xorshift(rng_in);")
    v.line("        if (in_next < in_total && (phase == 1 || rng_in % 100 >= stall)) begin")
    v.line("          s_data <= in_mem[((in_next / InBeats) % samples) * InBeats + in_next % InBeats];")
    v.line("          s_valid <= 1'b1;")
    v.line("          in_next = in_next + 1;")
    v.line("        end else begin")
    v.line("          s_valid <= 1'b0;")
    v.line("        end")
    v.line("      end")
    for u in tapped {
        let words = u.outputWordsPerInference
        v.line("      if (phase == 0 && dut.l\(u.index)_valid && dut.l\(u.index)_ready) begin")
        v.line("        if (tap\(u.index)_count < samples * \(words) && dut.l\(u.index)_data !== tap\(u.index)_mem[tap\(u.index)_count])")
        v.line("          tap_bad[tap\(u.index)_count / \(words)][\(u.index)] = 1'b1;")
        v.line("        tap\(u.index)_count = tap\(u.index)_count + 1;")
        v.line("      end")
    }
    v.line("      if (m_valid && m_ready) begin")
    v.line("        idle = 0;")
    v.line("        word = out_count % OutWords;")
    v.line("        sample = out_count / OutWords;")
    v.line("        expected = exp_mem[(sample % samples) * OutWords + word];")
    v.line("        if (m_data !== expected || m_last !== (word == OutWords - 1)) begin")
    v.line("          sample_bad = 1'b1;")
    v.line("          if (reports < 20) begin")
    v.line("            if (phase == 0) $display(\"FAIL sample %0d output %0d: got %h, expected %h, tlast %b\",")
    v.line("                                     sample, word, m_data, expected, m_last);")
    v.line("            else $display(\"FAIL timing burst sample %0d output %0d: got %h, expected %h, tlast %b\",")
    v.line("                          sample % samples, word, m_data, expected, m_last);")
    v.line("          end")
    v.line("          reports = reports + 1;")
    v.line("        end")
    v.line("        if (word == OutWords - 1) begin")
    v.line("          if (phase == 0) begin")
    if !tapped.isEmpty { v.line("            out_bad[sample] = sample_bad;") }
    v.line("            if (sample_bad) failed = failed + 1;")
    v.line("            else passed = passed + 1;")
    v.line("          end else begin")
    v.line("            if (sample_bad) timing_failed = timing_failed + 1;")
    v.line("            if (sample == 0) latency = cycle - first_in;")
    v.line("            if (sample == TimingSamples - 1) interval = cycle - previous_done;")
    v.line("            previous_done = cycle;")
    v.line("          end")
    v.line("          sample_bad = 1'b0;")
    v.line("        end")
    v.line("        out_count = out_count + 1;")
    v.line("      end")
    v.line("      rng_out = xorshift(rng_out);")
    v.line("      m_ready <= phase == 1 || rng_out % 100 >= stall;")
    if drains {
        v.line("      if (out_count == out_total && in_taken == in_total) drain = drain + 1;")
        v.line("      if (out_count == out_total && in_taken == in_total && (phase == 1 || drain > Drain)) begin")
    } else {
        v.line("      if (out_count == out_total) begin")
    }
    v.line("        if (phase == 0) begin")
    v.line("          phase = 1;")
    v.line("          in_next = 0;")
    v.line("          in_taken = 0;")
    v.line("          in_total = TimingSamples * InBeats;")
    v.line("          out_count = 0;")
    v.line("          out_total = TimingSamples * OutWords;")
    v.line("          m_ready <= 1'b1;")
    v.line("        end else begin")
    v.line("          finish_run;")
    v.line("        end")
    v.line("      end")
    v.line("      if (idle > Timeout) begin")
    v.line("        $display(\"FAIL timeout: no output for %0d cycles (phase %0d, %0d of %0d words)\", Timeout, phase, out_count, out_total);")
    v.line("        if (phase == 0) failed = samples - passed;")
    v.line("        else timing_failed = TimingSamples;")
    v.line("        finish_run;")
    v.line("      end")
    v.line("    end")
    v.line("  end")
    v.line()
    v.line("  task finish_run;")
    v.line("    begin")
    v.line("      if (reports > 20) $display(\"... %0d more mismatching words\", reports - 20);")
    if !tapped.isEmpty {
        // Samples are judged on every tapped word too; each failed one names its first differing layer.
        v.line("      if (phase == 1) begin")
        v.line("        passed = 0;")
        v.line("        failed = 0;")
        v.line("        reports = 0;")
        v.line("        for (tap_sample = 0; tap_sample < samples; tap_sample = tap_sample + 1) begin")
        v.line("          if (tap_bad[tap_sample] == \(tapped.count)'d0 && !out_bad[tap_sample]) begin")
        v.line("            passed = passed + 1;")
        v.line("          end else begin")
        v.line("            failed = failed + 1;")
        v.line("            tap_first = \(tapped.count);")
        v.line("            for (tap_layer = \(tapped.count - 1); tap_layer >= 0; tap_layer = tap_layer - 1)")
        v.line("              if (tap_bad[tap_sample][tap_layer]) tap_first = tap_layer;")
        v.line("            if (reports < 20) begin")
        v.line("              case (tap_first)")
        for u in g.units {
            v.line("                \(u.index): $display(\"FAIL sample %0d: first differing layer %0d (\(u.layerName))\", tap_sample, tap_first);")
        }
        v.line("                default: ;")
        v.line("              endcase")
        v.line("            end")
        v.line("            reports = reports + 1;")
        v.line("          end")
        v.line("        end")
        v.line("        if (reports > 20) $display(\"... %0d more failed samples\", reports - 20);")
        v.line("      end")
    }
    v.line("      if (timing_failed > 0) $display(\"FAIL %0d samples of the timing burst mismatched\", timing_failed);")
    v.line("      $display(\"QFORGE cycles=%0d latency=%0d interval=%0d expected_latency=%0d expected_interval=%0d\",")
    v.line("               cycle, latency, interval, ExpectedLatency, ExpectedInterval);")
    v.line("      $display(\"%0d passed, %0d failed\", passed, failed + timing_failed);")
    v.line("      $finish;")
    v.line("    end")
    v.line("  endtask")
    v.line()
    v.line("endmodule")
    return v.text
}
