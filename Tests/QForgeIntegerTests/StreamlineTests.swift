import Foundation
import QForgeGraph
@testable import QForgeInteger
import QForgeTensor
import XCTest

/// Streamlining hand-built graphs whose integer results can be worked out on paper.
final class StreamlineTests: XCTestCase {
    /// input (4-bit unsigned, scale 1) → Gemm with weight [[1], [−1]] (scale 1) → Relu →
    /// Quant (4-bit unsigned, scale 2, `rounding`) → Gemm [[1, 1]] (scale 1) → output.
    func tieGraph(rounding: String = "ROUND", secondScale: Float = 2) -> (Graph, [String: Tensor]) {
        func quant(_ name: String, _ input: String, _ prefix: String, signed: Int, narrow: Int = 0, mode: String = "ROUND") -> Node {
            Node(name: name, op: .quant, inputs: [input, prefix + ".scale", prefix + ".zeropt", prefix + ".bitwidth"], outputs: [name + ".q"],
                 attributes: ["signed": .int(signed), "narrow": .int(narrow), "rounding_mode": .string(mode)])
        }
        let nodes = [
            quant("in", "x", "in", signed: 0),
            quant("w1", "w1.weight", "w1", signed: 1, narrow: 1),
            Node(name: "layers.1", op: .gemm, inputs: ["in.q", "w1.q"], outputs: ["l1"], attributes: ["transB": 1]),
            Node(name: "layers.2", op: .relu, inputs: ["l1"], outputs: ["r1"]),
            quant("layers.2/act_quant", "r1", "a1", signed: 0, mode: rounding),
            quant("w2", "w2.weight", "w2", signed: 1, narrow: 1),
            Node(name: "layers.3", op: .gemm, inputs: ["layers.2/act_quant.q", "w2.q"], outputs: ["out"], attributes: ["transB": 1]),
        ]
        var t: [String: Tensor] = [
            "w1.weight": Tensor(shape: [2, 1], scalars: [1, -1]), "w2.weight": Tensor(shape: [1, 2], scalars: [1, 1]),
        ]
        for (p, s, b) in [("in", Float(1), Float(4)), ("w1", 1, 4), ("a1", secondScale, 4), ("w2", 1, 4)] {
            t[p + ".scale"] = Tensor(shape: [1], scalars: [s]); t[p + ".zeropt"] = Tensor(shape: [1], scalars: [0])
            t[p + ".bitwidth"] = Tensor(shape: [1], scalars: [b])
        }
        let g = Graph(name: "tie", inputs: [ValueInfo(name: "x", shape: [nil, 1])], outputs: [ValueInfo(name: "out", shape: [nil, 1])],
                      nodes: nodes, initializers: Array(t.keys))
        return (g, t)
    }

    func testThresholdsHonourTiesOfEachRoundingMode() throws {
        // Channel 0 sees acc = x; the code is R(x / 2): ties at x = 1, 3, 5, …
        let expected: [String: [Int64]] = [
            "ROUND": [2, 3, 6, 7, 10, 11, 14, 15],   // 0.5 → 0, 1.5 → 2, 2.5 → 2, 3.5 → 4, …
            "HALF_UP": [1, 3, 5, 7, 9, 11, 13, 15],  // 0.5 → 1, 1.5 → 2, …
            "FLOOR": [2, 4, 6, 8, 10, 12, 14, 16],   // 16 is beyond the 0…15 range: never reached
            "CEIL": [1, 3, 5, 7, 9, 11, 13, 15],
        ]
        for (mode, list) in expected {
            let (g, t) = tieGraph(rounding: mode)
            let m = try streamline(g, tensors: t)
            guard case .thresholds(let mt) = m.layers[0].requantization else { return XCTFail("\(mode): not thresholds") }
            XCTAssertEqual(Array(mt.thresholds[0].prefix(8)), list, mode)
            // Channel 1 (weight −1): acc = −x ∈ −15…0 and ReLU makes every code 0, so each
            // threshold is one past the range (never reached).
            XCTAssertTrue(mt.thresholds[1].allSatisfy { $0 == 1 }, "\(mode): \(mt.thresholds[1])")
        }
    }

    func testIntegerRunMatchesTheReferenceAndTheShiftForm() throws {
        let (g, t) = tieGraph()
        let thresholds = try streamline(g, tensors: t)
        let shift = try streamline(g, tensors: t, options: StreamlineOptions(form: .shift))
        let multiplier = try streamline(g, tensors: t, options: StreamlineOptions(form: .multiplier))
        guard case .multiplyShift(let ms) = shift.layers[0].requantization else { return XCTFail("not a shift") }
        XCTAssertEqual(ms.shifts, [1, 1])
        XCTAssertEqual(shift.layers[0].requantization.formName, "shift")
        let x = Tensor(shape: [16, 1], scalars: (0..<16).map(Float.init))
        let codes = thresholds.quantizeInput(x)
        XCTAssertEqual(codes.values, (0..<16).map(Int32.init))
        let out = thresholds.run(codes)
        // Hidden code = round-half-even(x / 2) (channel 1 is 0), and the output is their sum.
        let hidden: [Int32] = (0..<16).map { Int32((Double($0) / 2).rounded(.toNearestOrEven)) }
        XCTAssertEqual(out.codes[0].values, hidden.flatMap { [$0, 0] })
        XCTAssertEqual(out.outputs.values, hidden.map(Int64.init))
        XCTAssertEqual(thresholds.dequantized(out.outputs), hidden.map { Double($0) * 2 })
        XCTAssertEqual(shift.run(codes).outputs, out.outputs)
        XCTAssertEqual(multiplier.run(codes).outputs, out.outputs)
        // Accumulator widths: layer 1 sums one product of 0…15 and ±1: −15…15 → 5 bits.
        XCTAssertEqual(thresholds.layers[0].accumulatorBits, 5)
    }

    func testMSBTruncationDropsLowAccumulatorBits() throws {
        let (g, t) = tieGraph()
        // Layer 1's accumulator needs 5 bits (−15…15); keeping 4 drops 1: t = acc >>> 1, read as 2t.
        let m = try streamline(g, tensors: t, options: StreamlineOptions(keepMSBs: 4))
        XCTAssertEqual(m.layers[0].droppedBits, 1)
        let out = m.run(QTensor(shape: [16, 1], values: (0..<16).map(Int32.init)))
        // Code = round-half-even(2t / 2) = t = ⌊x / 2⌋ (the exact model rounds x/2 instead).
        XCTAssertEqual(out.codes[0].values, (0..<16).flatMap { [Int32($0 >> 1), 0] })
        let shift = try streamline(g, tensors: t, options: StreamlineOptions(form: .shift, keepMSBs: 4))
        XCTAssertEqual(shift.run(QTensor(shape: [16, 1], values: (0..<16).map(Int32.init))).codes[0], out.codes[0])
    }

    func testShiftFormRefusesANonPowerOfTwoChain() throws {
        let (g, t) = tieGraph(secondScale: 3)
        XCTAssertThrowsError(try streamline(g, tensors: t, options: StreamlineOptions(form: .shift))) {
            XCTAssertEqual("\($0)", "node layers.2/act_quant: the scale chain 0.3333333333333333 of channel 0 is not a power of two; use thresholds or multiplier, or train with power-of-two scales")
        }
    }

    func testFloatOpsBetweenQuantizersAreNamed() throws {
        var (g, t) = tieGraph()
        // Drop the activation quantizer: the Relu output goes straight into the next Gemm.
        g.nodes.removeAll { $0.name == "layers.2/act_quant" }
        g.nodes = g.nodes.map { n in var n = n; n.inputs = n.inputs.map { $0 == "layers.2/act_quant.q" ? "r1" : $0 }; return n }
        XCTAssertThrowsError(try streamline(g, tensors: t)) {
            XCTAssertEqual("\($0)", "node layers.3: a float Gemm between layers.2 and the next quantizer cannot be streamlined; quantize its input or output, or remove it")
        }
        // An input that is not quantized.
        (g, t) = tieGraph()
        g.nodes.removeFirst()
        g.nodes = g.nodes.map { n in var n = n; n.inputs = n.inputs.map { $0 == "in.q" ? "x" : $0 }; return n }
        XCTAssertThrowsError(try streamline(g, tensors: t)) {
            XCTAssertEqual("\($0)", "node layers.1: the input is not quantized first; quantize the model (an input Quant node) before streamlining")
        }
    }
}
