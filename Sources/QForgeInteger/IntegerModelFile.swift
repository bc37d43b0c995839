import Foundation
import QForgeGraph
import QForgeTensor

/// The integer model on disk: a safetensors file whose integer tensors (I64) hold each layer's
/// weights (`layers.K.weights`), exact bias (`layers.K.bias`), rounded bias
/// (`layers.K.rounded_bias`), thresholds (`layers.K.thresholds`, [channels, levels]) and
/// multipliers and shifts (`layers.K.multipliers`, `layers.K.shifts`), and whose metadata
/// `qforge_integer_model` is JSON describing everything else (grids, scales, code ops,
/// epilogues, accumulator widths).
public enum IntegerModelFile {
    static let key = "qforge_integer_model"

    struct Grid: Codable, Equatable {
        var bits: Int, signed: Bool, narrow: Bool, rounding: String, scale: Double, zeroPoint: Int
        /// Written only for bipolar grids (files without it read as false).
        var bipolar: Bool?

        init(_ g: CodeGrid) {
            bits = g.grid.bitWidth; signed = g.grid.signed; narrow = g.grid.narrow; rounding = g.grid.rounding.rawValue
            scale = g.scale; zeroPoint = g.zeroPoint; bipolar = g.bipolar ? true : nil
        }

        func codeGrid() throws -> CodeGrid {
            guard (1...32).contains(bits), signed || bits <= 31, let mode = RoundingMode(rawValue: rounding), scale > 0, scale.isFinite else {
                throw IntegerModelFileError("invalid grid \(bits) bits, rounding \(rounding), scale \(scale)")
            }
            if bipolar == true {
                guard bits == 1, !signed, zeroPoint == 0 else { throw IntegerModelFileError("a bipolar grid must be unsigned 1-bit with zero point 0, found \(bits) bits") }
                return CodeGrid.bipolar(scale: scale)
            }
            return CodeGrid(grid: IntQuantGrid(bitWidth: bits, signed: signed, narrow: narrow, rounding: mode), scale: scale, zeroPoint: zeroPoint)
        }
    }

    struct Op: Codable, Equatable {
        var op: String
        var values: [[Double]]?
        var kernel: Int?, stride: Int?, padding: Int?
    }

    struct Layer: Codable, Equatable {
        var name: String
        var codeOps: [Op]
        var product: String
        var stride: Int?, padding: Int?
        var weightShape: [Int]
        var accumulatorBits: Int
        var accumulatorCap: Int?, overflow: String?
        var droppedBits: Int
        var flipped: [Bool]
        var epilogue: [Op]
        var requantization: String
        var input: Grid
        var output: Grid?
        /// MultiplyShift's lowest code, when it has one.
        var lowestCode: Int64?
        /// A lookup-table activation: its function and input grid (the table is `layers.K.lookup`).
        var lookup: Lookup?
    }

    struct Lookup: Codable, Equatable {
        var function: String
        var input: Grid
        var lo: Int64
    }

    struct Description: Codable, Equatable {
        var format = "qforge-integer-model/1"
        var name: String
        var inputShape: [Int]
        var inputScale: Float
        var input: Grid
        var layers: [Layer]
    }

    /// Writes `model` to `path` (atomically: an existing file stays intact on failure).
    public static func save(_ model: IntegerModel, to path: String) throws {
        var ints: [String: IntTensor] = [:]
        var layers: [Layer] = []
        for (k, l) in model.layers.enumerated() {
            let p = "layers.\(k)"
            ints["\(p).weights"] = IntTensor(shape: l.product.weights.shape, scalars: l.product.weights.values.map(Int.init))
            if let b = l.product.bias { ints["\(p).bias"] = IntTensor(shape: [b.count], scalars: b.map(Int.init)) }
            if let b = l.roundedBias { ints["\(p).rounded_bias"] = IntTensor(shape: [b.count], scalars: b.map(Int.init)) }
            switch l.requantization {
            case .thresholds(let t):
                let levels = t.thresholds.first?.count ?? 0
                ints["\(p).thresholds"] = IntTensor(shape: [t.thresholds.count, levels], scalars: t.thresholds.flatMap { $0.map(Int.init) })
            case .multiplyShift(let m):
                ints["\(p).multipliers"] = IntTensor(shape: [m.multipliers.count], scalars: m.multipliers.map(Int.init))
                ints["\(p).shifts"] = IntTensor(shape: [m.shifts.count], scalars: m.shifts)
            case .output: break
            }
            if let t = l.lookup?.table { ints["\(p).lookup"] = IntTensor(shape: [t.codes.count], scalars: t.codes.map(Int.init)) }
            var lowest: Int64?
            if case .multiplyShift(let m) = l.requantization { lowest = m.lowest }
            var product = "gemm", stride: Int?, padding: Int?
            if case let .conv(s, pad) = l.product.kind { product = "conv"; stride = s; padding = pad }
            layers.append(Layer(
                name: l.name,
                codeOps: l.codeOps.map {
                    switch $0 {
                    case let .maxPool(k, s, pad): return Op(op: "maxpool", kernel: k, stride: s, padding: pad)
                    case .flatten: return Op(op: "flatten")
                    }
                },
                product: product, stride: stride, padding: padding, weightShape: l.product.weights.shape,
                accumulatorBits: l.accumulatorBits, accumulatorCap: l.accumulatorCap?.bits,
                overflow: l.accumulatorCap.map { $0.overflow == .wrap ? "wrap" : "saturate" }, droppedBits: l.droppedBits,
                flipped: l.flipped, epilogue: l.epilogue.map(encode), requantization: l.requantization.formName,
                input: Grid(l.input), output: l.output.map(Grid.init), lowestCode: lowest,
                lookup: l.lookup.map { Lookup(function: encode($0.function).op, input: Grid($0.input), lo: $0.table.lo) }))
        }
        let description = Description(name: model.name, inputShape: model.inputShape, inputScale: model.inputScale,
                                      input: Grid(model.inputQuantizer), layers: layers)
        let json = String(decoding: try JSONEncoder().encode(description), as: UTF8.self)
        try Safetensors.write(tensors: [:], intTensors: ints, metadata: [key: json], to: path)
    }

    static func encode(_ op: EpilogueOp) -> Op {
        switch op {
        case .scale(let f): return Op(op: "scale", values: [f])
        case .bias(let b): return Op(op: "bias", values: [b])
        case let .batchNorm(mean, factor, shift): return Op(op: "batchnorm", values: [mean, factor, shift])
        case .relu: return Op(op: "relu")
        case .sigmoid: return Op(op: "sigmoid")
        case .tanh: return Op(op: "tanh")
        }
    }

    static func decode(_ op: Op) throws -> EpilogueOp {
        let v = op.values ?? []
        switch (op.op, v.count) {
        case ("scale", 1): return .scale(v[0])
        case ("bias", 1): return .bias(v[0])
        case ("batchnorm", 3): return .batchNorm(mean: v[0], factor: v[1], shift: v[2])
        case ("relu", _): return .relu
        case ("sigmoid", _): return .sigmoid
        case ("tanh", _): return .tanh
        default: throw IntegerModelFileError("unknown epilogue op '\(op.op)' with \(v.count) value lists")
        }
    }

    /// Reads an integer model written by `save`.
    public static func load(_ path: String) throws -> IntegerModel {
        let file = try Safetensors.read(path)
        guard let json = file.metadata[key] else {
            throw IntegerModelFileError("\(path) is not an integer model (no '\(key)' metadata); write one with qforge compile-int")
        }
        let d: Description
        do { d = try JSONDecoder().decode(Description.self, from: Data(json.utf8)) } catch {
            throw IntegerModelFileError("\(path): unreadable integer model description")
        }
        func ints(_ name: String) throws -> [Int64]? {
            file.tensorNames.contains(name) ? try file.intTensor(name).scalars.map(Int64.init) : nil
        }
        var layers: [IntegerLayer] = []
        for (k, l) in d.layers.enumerated() {
            let p = "layers.\(k)"
            guard let w = try ints("\(p).weights"), w.count == l.weightShape.reduce(1, *), w.allSatisfy({ Int64(Int32.min)...Int64(Int32.max) ~= $0 }) else {
                throw IntegerModelFileError("\(path): layer \(l.name) has no valid weights \(p).weights")
            }
            let input = try l.input.codeGrid(), output = try l.output?.codeGrid()
            var lookup: CodeLookup?
            if let lk = l.lookup {
                let function = try decode(Op(op: lk.function)), grid = try lk.input.codeGrid()
                guard function == .sigmoid || function == .tanh, let t = try ints("\(p).lookup"),
                      t.count == grid.grid.maxInt - grid.grid.minInt + 1, lk.lo == Int64(grid.grid.minInt),
                      t.allSatisfy({ Int64(Int32.min)...Int64(Int32.max) ~= $0 }) else {
                    throw IntegerModelFileError("\(path): layer \(l.name) has no valid lookup table \(p).lookup")
                }
                lookup = CodeLookup(input: grid, function: function, table: LookupTable(lo: lk.lo, codes: t.map { Int32($0) }))
            }
            // The requantization targets the lookup table's input grid when there is one.
            let target = lookup?.input ?? output
            let kind: IntegerProduct.Kind = l.product == "conv" ? .conv(stride: l.stride ?? 1, padding: l.padding ?? 0) : .gemm
            let requant: Requantization
            switch l.requantization {
            case "thresholds":
                guard let t = try ints("\(p).thresholds"), let out = target, let shape = try? file.intTensor("\(p).thresholds").shape, shape.count == 2 else {
                    throw IntegerModelFileError("\(path): layer \(l.name) lacks its thresholds")
                }
                let lists = (0..<shape[0]).map { Array(t[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
                requant = .thresholds(MultiThreshold(thresholds: lists, outBias: Int64(out.grid.minInt), grid: out.grid))
            case "multiplier+shift", "shift":
                guard let m = try ints("\(p).multipliers"), let s = try ints("\(p).shifts"), let out = target else {
                    throw IntegerModelFileError("\(path): layer \(l.name) lacks its multipliers and shifts")
                }
                requant = .multiplyShift(MultiplyShift(multipliers: m.map { Int32(truncatingIfNeeded: $0) }, shifts: s.map { Int($0) },
                                                       offsets: [Int64(out.zeroPoint)], grid: out.grid, lowest: l.lowestCode))
            case "output": requant = .output
            default: throw IntegerModelFileError("\(path): layer \(l.name) has unknown requantization '\(l.requantization)'")
            }
            var layer = IntegerLayer(
                name: l.name,
                codeOps: try l.codeOps.map { op in
                    switch op.op {
                    case "maxpool": return .maxPool(kernel: op.kernel ?? 2, stride: op.stride ?? 2, padding: op.padding ?? 0)
                    case "flatten": return .flatten
                    default: throw IntegerModelFileError("\(path): unknown code op '\(op.op)'")
                    }
                },
                product: IntegerProduct(kind: kind, weights: QTensor(shape: l.weightShape, values: w.map { Int32($0) }), bias: try ints("\(p).bias")),
                accumulatorRange: [], accumulatorBits: 0,
                accumulatorCap: l.accumulatorCap.map { AccumulatorCap(bits: $0, overflow: l.overflow == "wrap" ? .wrap : .saturate) },
                flipped: l.flipped, roundedBias: try ints("\(p).rounded_bias"), epilogue: try l.epilogue.map(decode),
                requantization: requant, output: output, input: input)
            layer.droppedBits = l.droppedBits
            layer.lookup = lookup
            let bias = layer.product.bias
            layer = layer.withRanges()
            layer.product.bias = bias
            layers.append(layer)
        }
        return IntegerModel(name: d.name, inputShape: d.inputShape, inputQuantizer: try d.input.codeGrid(), inputScale: d.inputScale, layers: layers)
    }
}

/// A problem with an integer model file, in one line.
public struct IntegerModelFileError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}
