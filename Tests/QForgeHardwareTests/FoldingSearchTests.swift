import HardwareTestSupport
@testable import QForgeHardware
import QForgeInteger
import XCTest

/// The folding search on hand-checked cases: a 784-64-10 MLP (784 = 2⁴·7², so SIMD is a product
/// of those) and the small dense model, whose cycle model must agree with the hardware graph's.
final class FoldingSearchTests: XCTestCase {
    let mlp = FoldingSearch(shapes: [(64, 784), (10, 64)])

    func testTargetFpsTakesTheFewestMultipliersWithinTheBudget() throws {
        // 100 MHz / 100,000 fps = 1000 cycles. Layer 0 (50,176 MACs) needs PE·SIMD ≥ 50.2: no
        // product of a divisor of 64 and one of 784 lies in 51…55, so 56, at 896 cycles; the
        // widest SIMD of the four 56s (1×56, 2×28, 4×14, 8×7). Layer 1: PE = SIMD = 1 serializes
        // its 10 accumulators within 10·64 = 640 cycles.
        let f = try mlp.forTarget(fps: 100_000, clockMHz: 100)
        XCTAssertEqual(f, [Folding(pe: 1, simd: 56), Folding(pe: 1, simd: 1)])
        XCTAssertEqual(mlp.cycles(f), 896)
        XCTAssertEqual(FoldingSearch.multipliers(f), 57)

        // 1 MHz of inferences: 100 cycles. Layer 0: ≥ 501.8 → 512 (32×16 or 64×8; 16 is the wider
        // SIMD), 98 cycles. Layer 1: 10/PE · max(64/SIMD, PE) ≤ 100 first at PE·SIMD = 8: 1×8 and
        // 2×4 both take 80 cycles (5×1 takes 2·64 = 128).
        let g = try mlp.forTarget(fps: 1_000_000, clockMHz: 100)
        XCTAssertEqual(g, [Folding(pe: 32, simd: 16), Folding(pe: 1, simd: 8)])
        XCTAssertEqual(mlp.cycles(g), 98)
        XCTAssertEqual(FoldingSearch.multipliers(g), 520)
    }

    func testUnreachableTargetsNameTheLayer() {
        // 5 cycles: the last layer sends its 10 accumulators one per cycle.
        XCTAssertThrowsError(try mlp.forTarget(fps: 20_000_000, clockMHz: 100)) { e in
            XCTAssertEqual(e as? FoldingSearchError, .unreachable(layer: "1", budget: 5, fastest: 10))
            XCTAssertTrue("\(e)".contains("layer 1 needs at least 10 even fully parallel"), "\(e)")
        }
        XCTAssertThrowsError(try mlp.forTarget(fps: 300_000_000, clockMHz: 100)) { e in
            XCTAssertTrue("\(e)".contains("less than one cycle per inference"), "\(e)")
        }
    }

    func testMaxMultipliersTakesTheFastestFoldingThatFits() throws {
        // 57 multipliers: the 896-cycle folding above; 895 cycles would need 64 in layer 0.
        let f = try mlp.forMultipliers(57)
        XCTAssertEqual(f, [Folding(pe: 1, simd: 56), Folding(pe: 1, simd: 1)])
        XCTAssertEqual(try mlp.forMultipliers(64 + 1).map { $0.pe * $0.simd }, [64, 1])
        XCTAssertEqual(mlp.cycles(try mlp.forMultipliers(64 + 1)), 784)
        // Two multipliers: everything folded.
        XCTAssertEqual(try mlp.forMultipliers(2), [Folding(pe: 1, simd: 1), Folding(pe: 1, simd: 1)])
        XCTAssertEqual(mlp.cycles([Folding(pe: 1, simd: 1), Folding(pe: 1, simd: 1)]), 50_176)
        // Plenty: layer 0 fully parallel (1 cycle), the last layer bound by its 10 words.
        let fast = try mlp.forMultipliers(1_000_000)
        XCTAssertEqual(mlp.cycles(fast), 10)
        XCTAssertThrowsError(try mlp.forMultipliers(1)) { e in
            XCTAssertEqual("\(e)", "--max-multipliers 1 is less than the 2 layers, each of which needs at least one multiplier (PE = SIMD = 1)")
        }
    }

    func testCycleModelMatchesTheHardwareGraph() throws {
        let model = smallDenseModel()
        let search = FoldingSearch(model)
        XCTAssertEqual(search.names, ["fc0", "fc1"])
        for a in search.candidates(layer: 0) {
            for b in search.candidates(layer: 1) {
                let g = try HardwareGraph(model, foldings: [a, b])
                XCTAssertEqual(search.cycles([a, b]), g.expectedCyclesPerInference, "\(a); \(b)")
            }
        }
        // Every budget: the cheapest folding meets it, and one multiplier less would not.
        for budget in 1...30 {
            guard case let .success(f) = search.cheapest(within: budget) else { continue }
            XCTAssertLessThanOrEqual(try HardwareGraph(model, foldings: f).expectedCyclesPerInference, budget)
            for i in 0..<2 {
                let cheaper = search.candidates(layer: i).filter { $0.pe * $0.simd < f[i].pe * f[i].simd }
                XCTAssertFalse(cheaper.contains { search.cycles(layer: i, $0) <= budget }, "budget \(budget), layer \(i)")
            }
        }
    }
}
