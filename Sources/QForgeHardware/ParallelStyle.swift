import QForgeInteger
import QForgeTensor

/// How a design computes its layers.
public enum HardwareStyle: String, Codable, CaseIterable, Sendable {
    /// Per layer a PE × SIMD array of MACs over weights in ROM (`MatrixVectorUnit`).
    case folded
    /// Every layer one pipeline stage: all M·K products at once over weights that are
    /// constants in the RTL, one inference per clock.
    case parallel
}

extension HardwareGraph {
    /// The largest fully parallel design `parallel` builds by default: Σ M·K over the layers
    /// (one constant multiplier per weight). FINN's TFC (784-64-64-64-10, 59,008 weights) fits;
    /// beyond it Verilator's C++ compile and Yosys' synthesis of the adder trees take minutes
    /// and the area stops making sense next to a folded design.
    public static let parallelMultiplierLimit = 65_536

    /// Σ M·K of a dense integer model: the multipliers of its fully parallel design.
    public static func parallelMultipliers(_ model: IntegerModel) -> Int {
        model.layers.reduce(0) { $0 + $1.product.weights.count }
    }

    /// The fully parallel design of a dense integer model: every layer one pipeline stage
    /// (PE = M, SIMD = K: the whole input vector against all weights in one cycle), weights as
    /// constants, the requantization of the folded units, one inference per clock.
    ///
    /// Input stream: the whole input vector per beat (feature k in bits [k·b, k·b + b), b the
    /// input code width, padded to whole bytes). Output stream: all the last accumulators per
    /// beat, channel c sign-extended to whole bytes at [c·B, c·B + B) (B = `roundUpToBytes(valueBits)`),
    /// `tlast` on every beat; with `argmax`, the index of the largest per beat instead.
    /// Convolutions and max-pool are errors naming the layer; so is a model of more than
    /// `multiplierLimit` multipliers (Σ M·K).
    public static func parallel(_ model: IntegerModel, prefix: String = "qf", argmax: Bool = false,
                                multiplierLimit: Int = HardwareGraph.parallelMultiplierLimit) throws -> HardwareGraph {
        for layer in model.layers {
            if case let .conv(s, p) = layer.product.kind {
                let shape = layer.product.weights.shape.map(String.init).joined(separator: "×")
                throw HardwareError.unsupportedOp(layer: layer.name, op: "convolution \(shape) stride \(s) padding \(p) in the fully parallel style (dense layers only); use --style folded")
            }
            for op in layer.codeOps {
                if case let .maxPool(k, s, _) = op {
                    throw HardwareError.unsupportedOp(layer: layer.name, op: "max-pool \(k)×\(k)/\(s) in the fully parallel style (dense layers only); use --style folded")
                }
            }
        }
        let multipliers = parallelMultipliers(model)
        guard multipliers <= multiplierLimit else {
            throw HardwareError.invalid("a fully parallel design of \(model.name) needs \(multipliers) multipliers (Σ M·K over its layers), more than the limit of \(multiplierLimit); use --style folded (optionally with --max-multipliers or --target-fps), or raise the limit with --max-multipliers \(multipliers)")
        }
        let full = model.layers.map { Folding(pe: $0.product.weights.shape[0], simd: $0.product.weights.shape.dropFirst().reduce(1, *)) }
        var g = try HardwareGraph(model, foldings: full, prefix: prefix, argmax: argmax)
        g.style = .parallel
        for i in g.units.indices { g.units[i].module = "\(prefix)_l\(i)_dense" }
        return g
    }

    /// The parallel style takes an input vector every cycle.
    var parallelCyclesPerInference: Int { 1 }

    /// One register per layer (and one for the argmax): an input accepted at a clock edge
    /// leaves the last stage's register `units.count` edges later.
    var parallelLatency: Int { units.count + (argmax ? 1 : 0) }
}
