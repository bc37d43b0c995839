import QForgeInteger
import QForgeTensor

// Convolutions and max-pool in the folded style.
//
// Feature maps travel between units pixel by pixel (row-major), the channels of a pixel
// fastest: beat b of a stream of L lanes carries codes b·L … b·L + L − 1 of the map in HWC
// order. The integer model keeps NCHW; the lowering permutes weights (and the testbench the
// input vectors) so that every number is the integer model's.
//
// A convolution is a matrix-vector unit whose input buffer is a line buffer of a few input
// rows (LineBuffer.swift) and whose read side is a sliding-window generator: for each output
// pixel it walks the kh × kw window, SIMD channels per cycle, and reads code 0 where the
// window lies in the zero padding (as `IntegerOps.conv2d`'s im2col does). The K = kh·kw·C
// weight columns of a row are stored in that walk's order: (ky, kx, c), c fastest. SIMD must
// divide C so that a slice never straddles two pixels (one slice is all padding or none).

/// The geometry of a convolution's input, window and output.
public struct SlidingWindow: Equatable, Sendable {
    public var channels: Int
    public var height: Int
    public var width: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var stride: Int
    public var padding: Int

    public var outHeight: Int { (height + 2 * padding - kernelHeight) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernelWidth) / stride + 1 }
    public var outputPixels: Int { outHeight * outWidth }
    /// Codes of one input feature map.
    public var frame: Int { channels * height * width }

    public var description: String {
        "\(kernelHeight)×\(kernelWidth) stride \(stride) padding \(padding) over \(channels)×\(height)×\(width)"
    }
}

/// A streaming max-pool between two units (or the input and the first unit): `lanes` codes of
/// one pixel per beat in, the same lanes out. Windows must tile the padded map (stride =
/// kernel), so each input code belongs to at most one window; padded positions count as −∞
/// (`IntegerOps.maxPool2d`), and rows and columns past the last whole window are dropped.
public struct PoolUnit: Equatable, Sendable {
    /// The integer layer whose code ops hold the pool.
    public var layerName: String
    /// The unit it feeds.
    public var before: Int
    /// Its position among the pools in front of that unit.
    public var position: Int
    public var module: String
    public var channels: Int
    public var height: Int
    public var width: Int
    public var kernel: Int
    public var stride: Int
    public var padding: Int
    public var lanes: Int
    public var grid: IntQuantGrid

    public var outHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
    public var groups: Int { channels / lanes }
    public var inputBeats: Int { height * width * groups }
    public var outputBeats: Int { outHeight * outWidth * groups }

    /// The input beat that completes output beat j (the window's last real code of that lane group).
    func completingBeat(_ j: Int) -> Int {
        let g = j % groups, pixel = j / groups
        let oy = pixel / outWidth, ox = pixel % outWidth
        let y = min(oy * stride - padding + kernel - 1, height - 1), x = min(ox * stride - padding + kernel - 1, width - 1)
        return (y * width + x) * groups + g
    }
}

/// What a stream carries between units: a flat vector, or a C × H × W map in HWC order.
enum StreamLayout: Equatable {
    case flat(Int)
    case spatial(channels: Int, height: Int, width: Int)

    var count: Int {
        switch self {
        case let .flat(n): return n
        case let .spatial(c, h, w): return c * h * w
        }
    }
}

/// Weight rows [M, C, kh, kw] → [M, kh·kw·C]: column (ky·kw + kx)·C + c, the window walk's order.
func windowOrderedWeights(_ w: QTensor) -> QTensor {
    let (m, c, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let k = c * kh * kw
    var out = [Int32](repeating: 0, count: m * k)
    for r in 0..<m {
        for ci in 0..<c {
            for ky in 0..<kh {
                for kx in 0..<kw { out[r * k + (ky * kw + kx) * c + ci] = w.values[r * k + (ci * kh + ky) * kw + kx] }
            }
        }
    }
    return QTensor(shape: [m, k], values: out)
}

/// Dense weight columns in NCHW flatten order → HWC stream order: column (y·W + x)·C + c reads
/// the model's column (c·H + y)·W + x.
func streamOrderedColumns(_ w: QTensor, channels c: Int, height h: Int, width: Int) -> QTensor {
    let m = w.shape[0], k = w.shape[1]
    precondition(k == c * h * width, "streamOrderedColumns: \(k) columns for a \(c)×\(h)×\(width) map")
    var out = [Int32](repeating: 0, count: m * k)
    for r in 0..<m {
        for y in 0..<h {
            for x in 0..<width {
                for ci in 0..<c { out[r * k + (y * width + x) * c + ci] = w.values[r * k + (ci * h + y) * width + x] }
            }
        }
    }
    return QTensor(shape: [m, k], values: out)
}

/// Stream position q of a C × H × W map (HWC) → its index in the model's NCHW order.
func modelIndex(streamPosition q: Int, channels c: Int, height h: Int, width w: Int) -> Int {
    let ci = q % c, x = (q / c) % w, y = q / (c * w)
    return (ci * h + y) * w + x
}

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

/// The stages in front of the first dense unit, in stream order: pools and convolution units.
func frontStages(units: [MatrixVectorUnit], pools: [PoolUnit]) -> [FrontStage] {
    var stages: [FrontStage] = []
    for u in units {
        stages += pools.filter { $0.before == u.index }.sorted { $0.position < $1.position }.map { .pool($0) }
        guard let lb = u.lineBuffer else { return stages }
        stages.append(.conv(u, lb))
    }
    let next = units.count
    return stages + pools.filter { $0.before == next }.sorted { $0.position < $1.position }.map { .pool($0) }
}

/// The line buffer of a convolution unit: the fewest rows (from those its window needs at
/// once) with which the stages in front of it, this unit last, run at the slowest one's
/// rate in the cycle model, so that the buffer costs no throughput.
func lineBuffer(for unit: MatrixVectorUnit, window: SlidingWindow, inputBeats: Int,
                units: [MatrixVectorUnit], pools: [PoolUnit]) -> LineBuffer {
    let minimum = LineBuffer.minimumRows(window)
    var lb = LineBuffer(window: window, lanes: unit.inLanes, simd: unit.folding.simd, rows: minimum)
    // Beyond a whole map and a window more, rows cannot help: the writer never gets further ahead.
    let most = window.height + window.kernelHeight + window.stride
    let previous = frontStages(units: units, pools: pools.filter { $0.before <= unit.index })
    let inferences = previous.count + 4
    while lb.rows < most {
        var u = unit
        u.lineBuffer = lb
        let front = FrontTiming(inputBeats: inputBeats, stages: previous + [.conv(u, lb)])
        if front.interval(inferences: inferences) <= front.bound { break }
        lb.rows += 1
    }
    return lb
}

extension HardwareGraph {
    /// Lowers every layer: the pools of its code ops, its product (dense, or a convolution over
    /// the stream's map), its folding. Errors name the layer and what to change.
    static func lower(_ model: IntegerModel, foldings: [Folding]?, prefix: String)
        throws -> (units: [MatrixVectorUnit], pools: [PoolUnit], inputLanes: Int, spatialInput: Bool) {
        let shape = model.inputShape
        let first = model.layers[0]
        let spatialInput = shape.count == 3 && (first.product.kind != .gemm || first.codeOps.contains { if case .maxPool = $0 { return true } else { return false } })
        var layout: StreamLayout = spatialInput ? .spatial(channels: shape[0], height: shape[1], width: shape[2]) : .flat(shape.reduce(1, *))
        var units: [MatrixVectorUnit] = [], pools: [PoolUnit] = []
        var lanes = 0, inputLanes = 0
        for (i, layer) in model.layers.enumerated() {
            let isLast = i == model.layers.count - 1
            if !isLast, layer.requantization == .output {
                throw HardwareError.invalid("layer \(layer.name): only the last layer may emit raw accumulators")
            }
            if i > 0, let previous = model.layers[i - 1].output, previous.grid != layer.input.grid {
                throw HardwareError.gridMismatch(layer: layer.name, problem: "reads \(layer.input.grid) but the previous layer writes \(previous.grid)")
            }
            let w = layer.product.weights
            let m = w.shape[0]
            // The folding first: the input stream's lanes follow the first unit's SIMD.
            let folding: Folding
            if case .conv = layer.product.kind {
                guard w.rank == 4 else { throw HardwareError.invalid("layer \(layer.name): convolution weights \(w.shape) must be [M, C, kh, kw]") }
                folding = foldings?[i] ?? Folding.standard(inputs: w.shape[1], outputs: m)
            } else {
                guard w.rank == 2 else { throw HardwareError.invalid("layer \(layer.name): dense weights \(w.shape) must be [M, K]") }
                folding = foldings?[i] ?? Folding.standard(inputs: w.shape[1], outputs: m)
            }
            guard folding.pe >= 1, folding.simd >= 1 else {
                throw HardwareError.folding(layer: layer.name, problem: "\(folding): PE and SIMD must be at least 1")
            }
            if i == 0 {
                // A pool in front of the first unit takes whole pixels' lane groups: lanes divide C.
                if case let .spatial(c, _, _) = layout, layer.product.kind == .gemm { inputLanes = gcd(c, folding.simd) } else { inputLanes = folding.simd }
                lanes = inputLanes
            }
            // Code ops: pools become units of their own; flatten turns the map into a vector.
            var flattenedFrom: (c: Int, h: Int, w: Int)?
            for op in layer.codeOps {
                switch op {
                case let .maxPool(k, s, p):
                    guard case let .spatial(c, h, wd) = layout else {
                        throw HardwareError.unsupportedOp(layer: layer.name, op: "max-pool \(k)×\(k)/\(s) on a flat vector (it needs a feature map)")
                    }
                    guard s == k else {
                        throw HardwareError.unsupportedOp(layer: layer.name, op: "max-pool \(k)×\(k) with stride \(s) (the streaming pool unit needs stride = kernel)")
                    }
                    guard p < k, h + 2 * p >= k, wd + 2 * p >= k else {
                        throw HardwareError.invalid("layer \(layer.name): max-pool \(k)×\(k) padding \(p) does not fit a \(h)×\(wd) map")
                    }
                    guard c % lanes == 0 else {
                        throw HardwareError.folding(layer: layer.name, problem: "the max-pool in front of it gets \(lanes) codes per beat, which does not divide its \(c) channels")
                    }
                    let position = pools.filter { $0.before == i }.count
                    let pool = PoolUnit(layerName: layer.name, before: i, position: position, module: "\(prefix)_l\(i)_pool\(position)",
                                        channels: c, height: h, width: wd, kernel: k, stride: s, padding: p, lanes: lanes, grid: layer.input.grid)
                    pools.append(pool)
                    layout = .spatial(channels: c, height: pool.outHeight, width: pool.outWidth)
                case .flatten:
                    if case let .spatial(c, h, wd) = layout { flattenedFrom = (c, h, wd) }
                    layout = .flat(layout.count)
                }
            }
            let unit: MatrixVectorUnit
            switch layer.product.kind {
            case let .conv(stride, padding):
                guard case let .spatial(c, h, wd) = layout else {
                    throw HardwareError.unsupportedOp(layer: layer.name, op: "convolution of a flat vector (it needs a feature map)")
                }
                guard !isLast else {
                    throw HardwareError.unsupportedOp(layer: layer.name, op: "a convolution as the last layer (end the model with a dense layer)")
                }
                guard w.shape[1] == c else {
                    throw HardwareError.invalid("layer \(layer.name): convolution weights \(w.shape) read \(w.shape[1]) channels, the stream has \(c)")
                }
                let window = SlidingWindow(channels: c, height: h, width: wd, kernelHeight: w.shape[2], kernelWidth: w.shape[3], stride: stride, padding: padding)
                guard stride >= 1, window.outHeight >= 1, window.outWidth >= 1 else {
                    throw HardwareError.invalid("layer \(layer.name): a \(w.shape[2])×\(w.shape[3]) window with stride \(stride) and padding \(padding) does not fit a \(h)×\(wd) map")
                }
                guard m % folding.pe == 0, c % folding.simd == 0 else {
                    throw HardwareError.folding(layer: layer.name, problem: "\(folding) does not divide the convolution (\(m) output channels need PE dividing \(m), \(c) input channels need SIMD dividing \(c): a SIMD slice stays within one pixel)")
                }
                var conv = try MatrixVectorUnit(layer, index: i, isLast: isLast, folding: folding, inLanes: lanes, prefix: prefix,
                                                weights: windowOrderedWeights(w), window: window)
                conv.lineBuffer = lineBuffer(for: conv, window: window, inputBeats: shape.reduce(1, *) / inputLanes,
                                             units: units, pools: pools)
                unit = conv
                layout = .spatial(channels: m, height: window.outHeight, width: window.outWidth)
            case .gemm:
                if case let .spatial(c, h, wd) = layout { flattenedFrom = (c, h, wd) }  // the integer model flattens implicitly
                guard w.shape[1] == layout.count else {
                    if i == 0 && pools.isEmpty {
                        throw HardwareError.invalid("the model's input shape \(shape) has \(layout.count) features, its first layer reads \(w.shape[1])")
                    }
                    throw HardwareError.invalid("layer \(layer.name): dense weights \(w.shape) read \(w.shape[1]) features, the stream carries \(layout.count)")
                }
                // The stream is HWC; the model flattened NCHW: reorder the columns to match.
                let columns = flattenedFrom.map { streamOrderedColumns(w, channels: $0.c, height: $0.h, width: $0.w) } ?? w
                unit = try MatrixVectorUnit(layer, index: i, isLast: isLast, folding: folding, inLanes: lanes, prefix: prefix, weights: columns)
                layout = .flat(m)
            }
            units.append(unit)
            lanes = folding.pe
        }
        return (units, pools, inputLanes, spatialInput)
    }
}

/// A streaming max-pool module: a running maximum per window column of the current window row
/// (one memory word of `lanes` codes per column and lane group), the finished maximum out
/// when the window's last code arrives. Accepts a beat per cycle while its output register is
/// free or being taken.
func emitPool(_ p: PoolUnit) -> String {
    let b = p.grid.bitWidth, l = p.lanes, g = p.groups, k = p.kernel
    let wo = p.outWidth, ho = p.outHeight
    let gBits = indexBits(g), xBits = indexBits(p.width), yBits = indexBits(p.height), kBits = indexBits(k)
    let oxMax = (p.width - 1 + p.padding) / k, oyMax = (p.height - 1 + p.padding) / k
    let oxBits = indexBits(oxMax + 1), oyBits = indexBits(oyMax + 1)
    let depth = wo * g, aBits = indexBits(depth)
    let addrBits = max(aBits, unsignedBits(Int64(oxMax * g + g - 1)), unsignedBits(Int64(g)))
    let signedness = p.grid.signed ? "signed " : ""
    var v = VerilogText(header: [
        "Layer \(p.before) (\(p.layerName)): max-pool \(k)×\(k) stride \(p.stride) padding \(p.padding), \(p.channels)×\(p.height)×\(p.width) → \(p.channels)×\(ho)×\(wo).",
        "Stream: \(l) \(b)-bit \(p.grid.signed ? "signed" : "unsigned") codes of one pixel per beat (channels fastest), in and out.",
    ])
    v.block("module \(p.module) (", ");") { v in
        v.line("input  wire clk_i,")
        v.line("input  wire rst_ni,")
        v.line("input  wire \(range(l * b)) in_data_i,")
        v.line("input  wire in_valid_i,")
        v.line("output wire in_ready_o,")
        v.line("output wire \(range(l * b)) out_data_o,")
        v.line("output wire out_valid_o,")
        v.line("input  wire out_ready_i")
    }
    v.line()
    v.line("  integer i;")
    v.line()
    v.line("  // Position of the incoming beat: lane group, column and row, and the window it falls in")
    v.line("  // (offset within the window, window index; windows past the last whole one are dropped).")
    v.line("  reg  \(range(gBits)) grp_q, grp_d;")
    v.line("  reg  \(range(xBits)) col_q, col_d;")
    v.line("  reg  \(range(yBits)) row_q, row_d;")
    v.line("  reg  \(range(kBits)) kx_q, kx_d, ky_q, ky_d;")
    v.line("  reg  \(range(oxBits)) ox_q, ox_d;")
    v.line("  reg  \(range(oyBits)) oy_q, oy_d;")
    v.line("  reg  \(range(l * b)) out_q, out_d;")
    v.line("  reg  out_valid_q, out_valid_d;")
    v.line("  reg  \(range(l * b)) max_mem [0:\(depth - 1)];  // running maxima of the current window row")
    v.line("  wire in_fire, in_window, first, last, last_grp, last_col, last_row;")
    v.line("  wire \(range(addrBits)) addr;")
    v.line("  reg  \(range(l * b)) running, merged;")
    v.line("  reg  \(signedness)\(range(b)) a, m;")
    v.line()
    v.line("  assign in_ready_o = ~out_valid_q | out_ready_i;")
    v.line("  assign in_fire = in_valid_i & in_ready_o;")
    v.line("  assign out_data_o = out_q;")
    v.line("  assign out_valid_o = out_valid_q;")
    v.line("  assign last_grp = grp_q == \(lit(gBits, Int64(g - 1)));")
    v.line("  assign last_col = col_q == \(lit(xBits, Int64(p.width - 1)));")
    v.line("  assign last_row = row_q == \(lit(yBits, Int64(p.height - 1)));")
    var insideTerms: [String] = []
    if oxMax >= wo { insideTerms.append("(ox_q < \(lit(oxBits, Int64(wo))))") }
    if oyMax >= ho { insideTerms.append("(oy_q < \(lit(oyBits, Int64(ho))))") }
    v.line("  assign in_window = \(insideTerms.isEmpty ? "1'b1" : insideTerms.joined(separator: " & "));")
    let firstCol = p.padding == 0 ? "(kx_q == \(lit(kBits, 0)))" : "((kx_q == \(lit(kBits, 0))) | (col_q == \(lit(xBits, 0))))"
    let firstRow = p.padding == 0 ? "(ky_q == \(lit(kBits, 0)))" : "((ky_q == \(lit(kBits, 0))) | (row_q == \(lit(yBits, 0))))"
    v.line("  assign first = \(firstCol) & \(firstRow);")
    v.line("  assign last = ((kx_q == \(lit(kBits, Int64(k - 1)))) | last_col) & ((ky_q == \(lit(kBits, Int64(k - 1)))) | last_row);")
    let ox = addrBits == oxBits ? "ox_q" : zeroExtend("ox_q", from: oxBits, to: addrBits)
    let grp = addrBits == gBits ? "grp_q" : zeroExtend("grp_q", from: gBits, to: addrBits)
    v.line("  assign addr = \(g == 1 ? ox : "\(ox) * \(lit(addrBits, Int64(g))) + \(grp)");")
    v.line()
    v.line("  // The new running maximum of each lane: the code itself on a window's first code.")
    v.line("  always @(*) begin")
    v.line("    running = max_mem[addr[\(aBits - 1):0]];")
    v.line("    merged = in_data_i;")
    v.line("    a = \(lit(b, 0));")
    v.line("    m = \(lit(b, 0));")
    v.line("    for (i = 0; i < \(l); i = i + 1) begin")
    v.line("      a = in_data_i[i * \(b) +: \(b)];")
    v.line("      m = running[i * \(b) +: \(b)];")
    v.line("      if (!first && m > a) merged[i * \(b) +: \(b)] = m;")
    v.line("    end")
    v.line("  end")
    if addrBits > aBits {
        v.line("  wire unused_addr;")
        v.line("  assign unused_addr = ^addr[\(addrBits - 1):\(aBits)];")
    }
    v.line()
    v.line("  always @(posedge clk_i) begin")
    v.line("    if (in_fire & in_window) max_mem[addr[\(aBits - 1):0]] <= merged;")
    v.line("  end")
    v.line()
    v.line("  always @(*) begin")
    v.line("    grp_d = grp_q;")
    v.line("    col_d = col_q;")
    v.line("    row_d = row_q;")
    v.line("    kx_d = kx_q;")
    v.line("    ky_d = ky_q;")
    v.line("    ox_d = ox_q;")
    v.line("    oy_d = oy_q;")
    v.line("    out_d = out_q;")
    v.line("    out_valid_d = out_valid_q & ~out_ready_i;")
    v.line("    if (in_fire) begin")
    v.line("      if (in_window & last) begin")
    v.line("        out_d = merged;")
    v.line("        out_valid_d = 1'b1;")
    v.line("      end")
    v.line("      grp_d = last_grp ? \(lit(gBits, 0)) : grp_q + \(lit(gBits, 1));")
    v.line("      if (last_grp) begin")
    v.line("        if (last_col) begin")
    v.line("          col_d = \(lit(xBits, 0));")
    v.line("          kx_d = \(lit(kBits, Int64(p.padding)));")
    v.line("          ox_d = \(lit(oxBits, 0));")
    v.line("          row_d = last_row ? \(lit(yBits, 0)) : row_q + \(lit(yBits, 1));")
    v.line("          if (last_row) begin")
    v.line("            ky_d = \(lit(kBits, Int64(p.padding)));")
    v.line("            oy_d = \(lit(oyBits, 0));")
    v.line("          end else if (ky_q == \(lit(kBits, Int64(k - 1)))) begin")
    v.line("            ky_d = \(lit(kBits, 0));")
    v.line("            oy_d = oy_q + \(lit(oyBits, 1));")
    v.line("          end else begin")
    v.line("            ky_d = ky_q + \(lit(kBits, 1));")
    v.line("          end")
    v.line("        end else begin")
    v.line("          col_d = col_q + \(lit(xBits, 1));")
    v.line("          if (kx_q == \(lit(kBits, Int64(k - 1)))) begin")
    v.line("            kx_d = \(lit(kBits, 0));")
    v.line("            ox_d = ox_q + \(lit(oxBits, 1));")
    v.line("          end else begin")
    v.line("            kx_d = kx_q + \(lit(kBits, 1));")
    v.line("          end")
    v.line("        end")
    v.line("      end")
    v.line("    end")
    v.line("  end")
    v.line()
    let regs: [(String, Int, Int64)] = [("grp", gBits, 0), ("col", xBits, 0), ("row", yBits, 0), ("kx", kBits, Int64(p.padding)),
                                         ("ky", kBits, Int64(p.padding)), ("ox", oxBits, 0), ("oy", oyBits, 0), ("out", l * b, 0), ("out_valid", 1, 0)]
    v.line("  always @(posedge clk_i or negedge rst_ni) begin")
    v.line("    if (!rst_ni) begin")
    for (name, bits, value) in regs { v.line("      \(name)_q <= \(lit(bits, value));") }
    v.line("    end else begin")
    for (name, _, _) in regs { v.line("      \(name)_q <= \(name)_d;") }
    v.line("    end")
    v.line("  end")
    v.line()
    v.line("endmodule")
    return v.text
}
