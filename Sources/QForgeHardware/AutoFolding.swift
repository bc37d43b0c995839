import QForgeInteger

/// Chooses the foldings of a folded design from a goal: a frame rate at a clock, or a budget
/// of multipliers.
///
/// A dense layer of K inputs and M outputs at PE | M and SIMD | K takes K/SIMD × M/PE cycles
/// per input vector on PE · SIMD multipliers, so for a cycle budget B the cheapest folding of
/// a layer is the divisor pair with the smallest product PE · SIMD ≥ M·K/B. Two stages of
/// `HardwareGraph.expectedCyclesPerInference` depend on the folding too and count against B:
/// the input stream (K/SIMD beats for the first layer) and the last layer, whose serializer sends
/// one accumulator per cycle (M/PE · max(K/SIMD, PE) cycles, never fewer than M). A convolution
/// of K = kh·kw·C takes output pixels × K/SIMD × M/PE cycles per input map, SIMD dividing C;
/// a max-pool takes one beat per cycle, its input codes over the lanes of the layer in front
/// (that layer's PE, or the input's lanes), and counts against that layer. Layers are
/// independent given B, so each takes its cheapest folding within B: the slowest sets the
/// throughput and none is faster than it needs to be.
public struct FoldingSearch: Sendable {
    /// [M, K] per layer.
    public var shapes: [(outputs: Int, inputs: Int)]
    /// Layer names for errors.
    public var names: [String]
    /// Output vectors per inference: a convolution's output pixels, 1 for a dense layer.
    public var pixels: [Int]
    /// What SIMD must divide: a convolution's input channels, a dense layer's K.
    public var simdDivides: [Int]
    /// Codes per inference into each pool behind layer i (in front of layer i + 1).
    public var poolCodesAfter: [[Int]]
    /// Codes per inference into each pool in front of the first layer.
    public var poolCodesBefore: [Int] = []
    /// Input features per inference, and the input's channels when the first layer is dense
    /// over a feature map (its input lanes are then gcd(C, SIMD), whole pixels for a pool).
    public var inputFeatures: Int
    public var inputChannels: Int?

    public init(shapes: [(outputs: Int, inputs: Int)], names: [String]? = nil) {
        precondition(!shapes.isEmpty && shapes.allSatisfy { $0.outputs > 0 && $0.inputs > 0 }, "FoldingSearch: empty layers")
        self.shapes = shapes
        self.names = names ?? shapes.indices.map { "\($0)" }
        pixels = shapes.map { _ in 1 }
        simdDivides = shapes.map(\.inputs)
        poolCodesAfter = shapes.map { _ in [] }
        inputFeatures = shapes[0].inputs
    }

    /// The layers of an integer model: dense layers by their weights; convolutions and pools
    /// by the geometry the hardware graph gives them (lowered at its standard folding).
    public init(_ model: IntegerModel) {
        self.init(shapes: model.layers.map { ($0.product.weights.shape[0], $0.product.weights.shape.dropFirst().reduce(1, *)) },
                  names: model.layers.map(\.name))
        inputFeatures = model.inputShape.reduce(1, *)
        guard let g = try? HardwareGraph(model), g.units.count == shapes.count else { return }
        for u in g.units {
            if let w = u.window {
                pixels[u.index] = w.outputPixels
                simdDivides[u.index] = w.channels
            }
        }
        for p in g.pools {
            let codes = p.channels * p.height * p.width
            if p.before == 0 { poolCodesBefore.append(codes) } else { poolCodesAfter[p.before - 1].append(codes) }
        }
        if g.spatialInput, g.units[0].window == nil { inputChannels = model.inputShape[0] }
    }

    /// Cycles per inference layer `i` contributes at `f` (its own, the input stream's and the
    /// pools' in front for the first layer, the pools' behind it, the serializer's for the last).
    public func cycles(layer i: Int, _ f: Folding) -> Int {
        let (m, k) = shapes[i]
        var c = pixels[i] * (k / f.simd) * (m / f.pe)
        if i == 0 {
            let lanes = inputChannels.map { gcd($0, f.simd) } ?? f.simd
            c = ([c, inputFeatures / lanes] + poolCodesBefore.map { $0 / lanes }).max()!
        }
        c = ([c] + poolCodesAfter[i].map { $0 / f.pe }).max()!
        if i == shapes.count - 1 { c = max(c, (m / f.pe) * max(k / f.simd, f.pe)) }
        return c
    }

    /// Cycles per inference of a whole folding: the slowest layer.
    public func cycles(_ foldings: [Folding]) -> Int { foldings.indices.map { cycles(layer: $0, foldings[$0]) }.max()! }

    public static func multipliers(_ foldings: [Folding]) -> Int { foldings.reduce(0) { $0 + $1.pe * $1.simd } }

    /// Every folding of layer `i`, cheapest first; among equal multiplier counts the faster,
    /// then the one with the wider SIMD (fewer weight rows in parallel, the same cycles).
    func candidates(layer i: Int) -> [Folding] {
        let all = divisors(shapes[i].outputs).flatMap { pe in divisors(simdDivides[i]).map { Folding(pe: pe, simd: $0) } }
        return all.sorted { a, b in
            let (pa, pb) = (a.pe * a.simd, b.pe * b.simd)
            if pa != pb { return pa < pb }
            let (ca, cb) = (cycles(layer: i, a), cycles(layer: i, b))
            if ca != cb { return ca < cb }
            return a.simd > b.simd
        }
    }

    /// The fewest cycles layer `i` can take (PE = M, SIMD = K or C; M for the last layer).
    public func fastest(layer i: Int) -> Int { candidates(layer: i).map { cycles(layer: i, $0) }.min()! }

    /// The cheapest folding of every layer within `budget` cycles per inference, or the
    /// first layer that cannot meet it even fully parallel.
    public func cheapest(within budget: Int) -> Result<[Folding], FoldingSearchError> {
        var out: [Folding] = []
        for i in shapes.indices {
            guard let f = candidates(layer: i).first(where: { cycles(layer: i, $0) <= budget }) else {
                return .failure(.unreachable(layer: names[i], budget: budget, fastest: fastest(layer: i)))
            }
            out.append(f)
        }
        return .success(out)
    }

    /// The cheapest folding reaching `fps` inferences per second at `clockMHz`: every layer
    /// within ⌊clock / fps⌋ cycles.
    public func forTarget(fps: Double, clockMHz: Double) throws -> [Folding] {
        guard fps > 0, clockMHz > 0 else { throw FoldingSearchError.invalid("--target-fps and --clock-mhz must be positive") }
        let budget = Int((clockMHz * 1e6 / fps).rounded(.down))
        guard budget >= 1 else {
            throw FoldingSearchError.invalid("\(fps) inferences per second at \(clockMHz) MHz leaves less than one cycle per inference; a folded design needs at least one (the parallel style takes one per cycle at most)")
        }
        switch cheapest(within: budget) {
        case let .success(f): return f
        case let .failure(e): throw e
        }
    }

    /// The fastest folding on at most `multipliers` multipliers (Σ PE · SIMD): the smallest
    /// cycle budget whose cheapest folding fits, found by bisection (the cheapest folding's
    /// multipliers only grow as the budget shrinks).
    public func forMultipliers(_ multipliers: Int) throws -> [Folding] {
        guard multipliers >= shapes.count else {
            throw FoldingSearchError.invalid("--max-multipliers \(multipliers) is less than the \(shapes.count) layers, each of which needs at least one multiplier (PE = SIMD = 1)")
        }
        func fits(_ budget: Int) -> [Folding]? {
            guard case let .success(f) = cheapest(within: budget), Self.multipliers(f) <= multipliers else { return nil }
            return f
        }
        var lo = shapes.indices.map { fastest(layer: $0) }.max()!
        var hi = shapes.indices.map { cycles(layer: $0, Folding(pe: 1, simd: 1)) }.max()!
        guard var best = fits(hi) else { preconditionFailure("PE = SIMD = 1 everywhere fits any budget of at least one multiplier per layer") }
        while lo < hi {
            let mid = (lo + hi) / 2
            if let f = fits(mid) { best = f; hi = mid } else { lo = mid + 1 }
        }
        return fits(lo) ?? best
    }
}

/// Why no folding meets the goal, with the numbers.
public enum FoldingSearchError: Error, CustomStringConvertible, Equatable {
    case unreachable(layer: String, budget: Int, fastest: Int)
    case invalid(String)

    public var description: String {
        switch self {
        case let .unreachable(layer, budget, fastest):
            return "the target allows \(budget) cycles per inference, but layer \(layer) needs at least \(fastest) even fully parallel (PE = M, SIMD = K, or C for a convolution; the last layer sends one accumulator per cycle); lower --target-fps, raise --clock-mhz, or use --style parallel"
        case let .invalid(message): return message
        }
    }
}

/// The divisors of n, ascending.
func divisors(_ n: Int) -> [Int] { (1...n).filter { n % $0 == 0 } }
