import Foundation
import QForgeGraph
import QForgeNN
import QForgeTensor

// Activations that an imported QONNX file defines by itself rather than with a Quant node:
// FINN's MultiThreshold (thresholds from the file) and QONNX's Trunc. They hold fixed numbers
// and no trainable parameter; their output is a constant for the tape (no gradient flows
// back through them). The streamliner turns both into integer thresholds
// (`OutputRule` in QForgeInteger), so they compile like a Quant after a Gemm or Conv.

/// FINN's MultiThreshold: y = outScale · #{i : x ≥ T[c][i]} + outBias, per channel c (axis 1 of
/// [N, C, …]) with one threshold list per channel, or one for all.
public struct ThresholdActivation: Layer {
    /// [C or 1, steps], each row ascending.
    public let thresholds: Tensor
    public let outScale: Float
    public let outBias: Float
    /// The file's `out_dtype` (e.g. UINT4), kept for export.
    public let outType: String

    public init(thresholds: Tensor, outScale: Float = 1, outBias: Float = 0, outType: String = "") {
        precondition(thresholds.rank == 2 && thresholds.shape[1] >= 1, "ThresholdActivation: thresholds must be [channels, steps], are \(thresholds.shape)")
        let steps = thresholds.shape[1]
        let rows = (0..<thresholds.shape[0]).flatMap { c in thresholds.scalars[(c * steps)..<((c + 1) * steps)].sorted() }
        self.thresholds = Tensor(shape: thresholds.shape, scalars: rows)
        self.outScale = outScale
        self.outBias = outBias
        self.outType = outType
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let channels = x.rank > 1 ? x.shape[1] : 1
        let per = x.count / Swift.max(1, x.shape[0] * channels)
        let steps = thresholds.shape[1], lists = thresholds.shape[0]
        let t = thresholds.scalars, v = x.scalars
        var out = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count {
            let row = lists == 1 ? 0 : (i / per) % channels
            var n = 0
            for j in 0..<steps where v[i] >= t[row * steps + j] { n += 1 }
            out[i] = outScale * Float(n) + outBias
        }
        return Tensor(shape: x.shape, scalars: out)
    }

    public var spec: LayerSpec? { nil }

    public func outputShape(for input: [Int]) throws -> [Int] {
        let channels = input.first ?? 1
        guard thresholds.shape[0] == 1 || thresholds.shape[0] == channels else {
            throw ModelError.notAChain(reason: "MultiThreshold: \(thresholds.shape[0]) threshold lists for \(channels) channels")
        }
        return input
    }
}

/// QONNX's Trunc: q = round-half-even(x / scale + zeroPoint), divided by a power of two,
/// clamped to the output grid (version 2 only), rounded by `rounding`, and rescaled.
/// Version 2 (an output scale s′): factor 2^round(log2(s′ / scale)), y = (r − zeroPoint/factor)·s′.
/// Version 1: factor 2^(input bits − output bits), no clamp, y = (r − zeroPoint)·scale.
public struct TruncActivation: Layer {
    public let scale: Float
    public let zeroPoint: Float
    public let inputBits: Int
    public let outputBits: Int
    /// Version 2's output scale; nil for version 1.
    public let outputScale: Float?
    public let signed: Bool
    public let narrow: Bool
    public let rounding: RoundingMode

    public init(scale: Float, zeroPoint: Float, inputBits: Int, outputBits: Int, outputScale: Float?,
                signed: Bool = true, narrow: Bool = false, rounding: RoundingMode = .floor) {
        self.scale = scale; self.zeroPoint = zeroPoint; self.inputBits = inputBits; self.outputBits = outputBits
        self.outputScale = outputScale; self.signed = signed; self.narrow = narrow; self.rounding = rounding
    }

    /// The power of two the integers are divided by (Float32, as the qonnx executor computes it).
    public var factor: Float {
        if let s = outputScale { return exp2(log2(s / scale).rounded(.toNearestOrEven)) }
        return exp2(Float(inputBits - outputBits))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let f = factor
        let grid = IntQuantGrid(bitWidth: outputBits, signed: signed, narrow: narrow, rounding: rounding)
        let lo = Float(grid.minInt), hi = Float(grid.maxInt)
        let out = x.scalars.map { v -> Float in
            var y = (v / scale + zeroPoint).rounded(.toNearestOrEven) / f
            if let s = outputScale {
                y = rounding.apply(Swift.min(Swift.max(y, lo), hi))
                return (y - zeroPoint / f) * s
            }
            return (rounding.apply(y) - zeroPoint) * scale
        }
        return Tensor(shape: x.shape, scalars: out)
    }

    public var spec: LayerSpec? { nil }
    public func outputShape(for input: [Int]) throws -> [Int] { input }
}

extension ThresholdActivation: GraphLowerable {
    public func lower(into b: inout GraphBuilder, name: String, input: String, inputShape: [Int]) throws -> String {
        b.tensors["\(name).thresholds"] = thresholds
        var attributes: [String: AttributeValue] = ["out_scale": .float(outScale), "out_bias": .float(outBias)]
        if !outType.isEmpty { attributes["out_dtype"] = .string(outType) }
        b.nodes.append(Node(name: name, op: .multiThreshold, inputs: [input, "\(name).thresholds"], outputs: ["\(name).out"], attributes: attributes))
        return "\(name).out"
    }
}

extension TruncActivation: GraphLowerable {
    public func lower(into b: inout GraphBuilder, name: String, input: String, inputShape: [Int]) throws -> String {
        let p = "\(name).trunc"
        b.tensors["\(p).scale"] = Tensor(shape: [1], scalars: [scale])
        b.tensors["\(p).zeropt"] = Tensor(shape: [1], scalars: [zeroPoint])
        b.tensors["\(p).in_bitwidth"] = Tensor(shape: [1], scalars: [Float(inputBits)])
        b.tensors["\(p).out_bitwidth"] = Tensor(shape: [1], scalars: [Float(outputBits)])
        var inputs = [input, "\(p).scale", "\(p).zeropt", "\(p).in_bitwidth"]
        var attributes: [String: AttributeValue] = ["rounding_mode": .string(rounding.rawValue)]
        if let s = outputScale {
            b.tensors["\(p).out_scale"] = Tensor(shape: [1], scalars: [s])
            inputs.append("\(p).out_scale")
            attributes["signed"] = .int(signed ? 1 : 0)
            attributes["narrow"] = .int(narrow ? 1 : 0)
        }
        inputs.append("\(p).out_bitwidth")
        b.nodes.append(Node(name: name, op: .trunc, inputs: inputs, outputs: ["\(name).out"], attributes: attributes))
        return "\(name).out"
    }
}

/// Rebuilds ThresholdActivation and TruncActivation from their single node.
struct FileActivationReader {
    static func read(_ group: [Node], tensors: [String: Tensor]) throws -> (any Layer)? {
        guard group.count == 1, let n = group.first, n.op == .multiThreshold || n.op == .trunc else { return nil }
        func tensor(_ i: Int) throws -> Tensor {
            guard i < n.inputs.count, let t = tensors[n.inputs[i]] else {
                throw ModelError.notAChain(reason: "node \(n.name) needs its input \(i) as a constant in the file")
            }
            return t
        }
        func single(_ i: Int, _ what: String) throws -> Float {
            let t = try tensor(i)
            guard t.count == 1, t.item.isFinite else { throw ModelError.notAChain(reason: "node \(n.name): \(what) must be one finite number, found \(t.scalars.prefix(4))") }
            return t.item
        }
        func bits(_ i: Int, _ what: String) throws -> Int {
            guard let b = Int(exactly: try single(i, what)), (1...32).contains(b) else {
                throw ModelError.notAChain(reason: "node \(n.name): \(what) must be an integer in 1...32")
            }
            return b
        }
        if n.op == .multiThreshold {
            let t = try tensor(1)
            guard t.rank == 2, t.shape[1] >= 1, !t.scalars.contains(where: \.isNaN) else {
                throw ModelError.notAChain(reason: "node \(n.name): thresholds must be [channels, steps] numbers, found shape \(t.shape)")
            }
            return ThresholdActivation(thresholds: t, outScale: n.attributes["out_scale"]?.floatValue ?? 1,
                                       outBias: n.attributes["out_bias"]?.floatValue ?? 0, outType: n.attributes["out_dtype"]?.stringValue ?? "")
        }
        guard n.inputs.count == 5 || n.inputs.count == 6 else {
            throw ModelError.notAChain(reason: "node \(n.name): a Trunc node needs 5 (version 1) or 6 (version 2) inputs")
        }
        let v2 = n.inputs.count == 6
        let scale = try single(1, "the scale")
        guard scale > 0 else { throw ModelError.notAChain(reason: "node \(n.name): the scale must be positive, found \(scale)") }
        let outScale = v2 ? try single(4, "the output scale") : nil
        if let s = outScale, !(s > 0) { throw ModelError.notAChain(reason: "node \(n.name): the output scale must be positive, found \(s)") }
        let mode = n.attributes["rounding_mode"]?.stringValue ?? "FLOOR"
        guard let rounding = RoundingMode(qonnxName: mode) else { throw ModelError.notAChain(reason: "node \(n.name): rounding_mode '\(mode)' is unknown") }
        return TruncActivation(scale: scale, zeroPoint: try single(2, "the zero point"), inputBits: try bits(3, "the input bit width"),
                               outputBits: try bits(v2 ? 5 : 4, "the output bit width"), outputScale: outScale,
                               signed: (n.attributes["signed"]?.intValue ?? 1) == 1, narrow: n.attributes["narrow"]?.intValue == 1,
                               rounding: rounding)
    }
}
