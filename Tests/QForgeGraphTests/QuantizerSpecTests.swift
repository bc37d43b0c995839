import Foundation
import QForgeGraph
import QForgeTensor
import TestSupport
import XCTest

final class QuantizerSpecTests: XCTestCase {

    func testIntegerRanges() {
        // Expected values written out, checked against QONNX min_int / max_int.
        let expected: [Int: (signed: ClosedRange<Int>, narrow: ClosedRange<Int>, unsigned: ClosedRange<Int>, unsignedNarrow: ClosedRange<Int>)] = [
            1: (-1...0, 0...0, 0...1, 0...0),
            2: (-2...1, -1...1, 0...3, 0...2),
            4: (-8...7, -7...7, 0...15, 0...14),
            8: (-128...127, -127...127, 0...255, 0...254),
            16: (-32768...32767, -32767...32767, 0...65535, 0...65534),
        ]
        for (bits, ranges) in expected {
            func range(_ signed: Bool, _ narrow: Bool) -> ClosedRange<Int> {
                let q = QuantizerSpec(bitWidth: bits, signed: signed, narrow: narrow, scale: [1])
                return q.minInt...q.maxInt
            }
            XCTAssertEqual(range(true, false), ranges.signed, "\(bits)-bit signed")
            XCTAssertEqual(range(true, true), ranges.narrow, "\(bits)-bit signed narrow")
            XCTAssertEqual(range(false, false), ranges.unsigned, "\(bits)-bit unsigned")
            XCTAssertEqual(range(false, true), ranges.unsignedNarrow, "\(bits)-bit unsigned narrow")
            // The general formulas.
            let half = 1 << (bits - 1), full = 1 << bits
            XCTAssertEqual(ranges.signed, -half...(half - 1))
            XCTAssertEqual(ranges.narrow, (-half + 1)...(half - 1))
            XCTAssertEqual(ranges.unsigned, 0...(full - 1))
        }
        let bipolar = QuantizerSpec(bitWidth: 1, scale: [1], kind: .bipolar)
        XCTAssertEqual(bipolar.minInt...bipolar.maxInt, -1...1)
        let sm = QuantizerSpec(bitWidth: 8, scale: [1], kind: .signMagnitude)
        XCTAssertEqual(sm.minInt...sm.maxInt, -127...127)
        // Out-of-range widths never trap.
        for bits in [-5, 0, 17, 64, 1000, Int.max, Int.min] {
            let q = QuantizerSpec(bitWidth: bits, scale: [1])
            XCTAssertLessThanOrEqual(q.minInt, q.maxInt)
        }
    }

    func testValidSpecsPass() throws {
        for bits in [1, 2, 4, 8, 16] {
            try QuantizerSpec(bitWidth: bits, signed: false, scale: [0.1]).validate()
            if bits > 1 {
                try QuantizerSpec(bitWidth: bits, signed: true, narrow: true, scale: [0.1]).validate()
                try QuantizerSpec(bitWidth: bits, scale: [0.1], kind: .signMagnitude).validate()
            }
        }
        try QuantizerSpec(bitWidth: 1, signed: true, scale: [1]).validate()
        try QuantizerSpec(bitWidth: 1, scale: [0.5], kind: .bipolar).validate()
        try QuantizerSpec(bitWidth: 8, scale: [0.5, 0.25, 1.0 / 1024, Float.leastNonzeroMagnitude], zeroPoint: [0], axis: 0,
                          scaleIsPowerOfTwo: true).validate()
        try QuantizerSpec(bitWidth: 8, signed: false, scale: [0.5, 0.1], zeroPoint: [128, 3], axis: 1).validate()
    }

    func testValidationErrors() {
        for bits in [0, -1, 33, 64] {
            let e = assertGraphError(.bitWidthOutOfRange(bits)) { try QuantizerSpec(bitWidth: bits, scale: [1]).validate() }
            XCTAssertEqual(e?.description, "bit width \(bits) is outside 1…32")
        }
        for bad in [Float(0), -1, .infinity, -.infinity, -0.0, -.leastNonzeroMagnitude] {
            assertGraphError(.invalidScale(index: 1, value: bad)) {
                try QuantizerSpec(bitWidth: 8, scale: [1, bad], zeroPoint: [0], axis: 0).validate()
            }
        }
        do {
            try QuantizerSpec(bitWidth: 8, scale: [.nan]).validate()
            XCTFail("NaN scale passed")
        } catch let error as GraphError {
            guard case .invalidScale(0, let v) = error.kind, v.isNaN else { return XCTFail("\(error)") }
            XCTAssertEqual(error.description, "scale[0] = nan must be finite and greater than 0")
        } catch {
            XCTFail("\(error)")
        }
        let e = assertGraphError(.scaleZeroPointMismatch(scales: 3, zeroPoints: 2)) {
            try QuantizerSpec(bitWidth: 8, scale: [1, 2, 3], zeroPoint: [0, 0], axis: 0).validate()
        }
        XCTAssertEqual(e?.description, "3 scale values but 2 zero points (need 1 zero point or one per scale)")
        assertGraphError(.scaleZeroPointMismatch(scales: 1, zeroPoints: 0)) { try QuantizerSpec(bitWidth: 8, scale: [1], zeroPoint: []).validate() }
        assertGraphError(.invalidQuantizer(problem: "scale is empty")) { try QuantizerSpec(bitWidth: 8, scale: []).validate() }
        assertGraphError(.invalidQuantizer(problem: "zeroPoint[0] = nan must be finite")) {
            try QuantizerSpec(bitWidth: 8, scale: [1], zeroPoint: [.nan]).validate()
        }
        assertGraphError(.invalidQuantizer(problem: "2 per-channel scales need an axis")) { try QuantizerSpec(bitWidth: 8, scale: [1, 2]).validate() }
        assertGraphError(.invalidQuantizer(problem: "axis -1 must be non-negative")) { try QuantizerSpec(bitWidth: 8, scale: [1], axis: -1).validate() }
        assertGraphError(.invalidQuantizer(problem: "a bipolar quantizer has bit width 1, not 2")) {
            try QuantizerSpec(bitWidth: 2, scale: [1], kind: .bipolar).validate()
        }
        assertGraphError(.invalidQuantizer(problem: "a bipolar quantizer has zero point 0")) {
            try QuantizerSpec(bitWidth: 1, scale: [1], zeroPoint: [1], kind: .bipolar).validate()
        }
        assertGraphError(.invalidQuantizer(problem: "a sign-magnitude quantizer is signed")) {
            try QuantizerSpec(bitWidth: 4, signed: false, scale: [1], kind: .signMagnitude).validate()
        }
        assertGraphError(.invalidQuantizer(problem: "a sign-magnitude quantizer needs at least 2 bits")) {
            try QuantizerSpec(bitWidth: 1, scale: [1], kind: .signMagnitude).validate()
        }
        assertGraphError(.invalidQuantizer(problem: "1-bit signed narrow range holds only 0")) {
            try QuantizerSpec(bitWidth: 1, signed: true, narrow: true, scale: [1]).validate()
        }
        assertGraphError(.invalidQuantizer(problem: "1-bit unsigned narrow range holds only 0")) {
            try QuantizerSpec(bitWidth: 1, signed: false, narrow: true, scale: [1]).validate()
        }
        assertGraphError(.invalidQuantizer(problem: "scaleIsPowerOfTwo is set but scale[1] = 0.3 is not a power of two")) {
            try QuantizerSpec(bitWidth: 8, scale: [0.5, 0.3], axis: 0, scaleIsPowerOfTwo: true).validate()
        }
    }

    func testRoundingModesMatchQONNXTable() {
        // The rounding table of the QONNX IntQuant documentation.
        let inputs: [Float] = [5.5, 2.5, 1.6, 1.1, 1.0, -1.0, -1.1, -1.6, -2.5, -5.5]
        let table: [RoundingMode: [Float]] = [
            .round: [6, 2, 2, 1, 1, -1, -1, -2, -2, -6],
            .ceil: [6, 3, 2, 2, 1, -1, -1, -1, -2, -5],
            .floor: [5, 2, 1, 1, 1, -1, -2, -2, -3, -6],
            .up: [6, 3, 2, 2, 1, -1, -2, -2, -3, -6],
            .down: [5, 2, 1, 1, 1, -1, -1, -1, -2, -5],
            .halfUp: [6, 3, 2, 1, 1, -1, -1, -2, -3, -6],
            .halfDown: [5, 2, 2, 1, 1, -1, -1, -2, -2, -5],
        ]
        XCTAssertEqual(Set(table.keys), Set(RoundingMode.allCases))
        for (mode, expected) in table {
            XCTAssertEqual(inputs.map(mode.apply), expected, mode.rawValue)
        }
        // Large values are already integral; HALF_DOWN must not lose them.
        for mode in RoundingMode.allCases {
            XCTAssertEqual(mode.apply(Float(8_388_609)), 8_388_609, mode.rawValue)
            XCTAssertEqual(mode.apply(Float(-16_777_216)), -16_777_216, mode.rawValue)
            XCTAssertTrue(mode.apply(Float.nan).isNaN)
            XCTAssertEqual(mode.apply(Float.infinity), .infinity)
        }
        XCTAssertEqual(RoundingMode.halfDown.apply(Float(8_388_607.5)), 8_388_607)
        XCTAssertEqual(RoundingMode.halfUp.apply(Float(8_388_607.5)), 8_388_608)
        XCTAssertEqual(RoundingMode.round.apply(Float(0.49999997)), 0)

        XCTAssertEqual(RoundingMode(qonnxName: "round"), .round)
        XCTAssertEqual(RoundingMode(qonnxName: "HALF_EVEN"), .round)
        XCTAssertEqual(RoundingMode(qonnxName: "half_up"), .halfUp)
        XCTAssertEqual(RoundingMode(qonnxName: "Floor"), .floor)
        XCTAssertNil(RoundingMode(qonnxName: "NEAREST"))
    }

    func testJSON() throws {
        let spec = QuantizerSpec(bitWidth: 4, signed: false, narrow: true, roundingMode: .floor, scale: [0.5, 0.25],
                                 zeroPoint: [1, 2], axis: 0, kind: .int, scaleIsPowerOfTwo: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let data = try encoder.encode(spec)
        XCTAssertEqual(String(decoding: data, as: UTF8.self),
                       #"{"axis":0,"bitWidth":4,"kind":"int","narrow":true,"roundingMode":"FLOOR","scale":[0.5,0.25],"#
                       + #""scaleIsPowerOfTwo":true,"signed":false,"zeroPoint":[1,2]}"#)
        XCTAssertEqual(try JSONDecoder().decode(QuantizerSpec.self, from: data), spec)
        // Per-tensor: no axis key.
        let perTensor = try encoder.encode(QuantizerSpec(bitWidth: 8, scale: [0.1]))
        XCTAssertFalse(String(decoding: perTensor, as: UTF8.self).contains("axis"))
        let minimal = try JSONDecoder().decode(QuantizerSpec.self, from: Data(#"{"bitWidth": 2, "scale": [1]}"#.utf8))
        XCTAssertEqual(minimal, QuantizerSpec(bitWidth: 2, scale: [1]))
        XCTAssertThrowsError(try JSONDecoder().decode(QuantizerSpec.self, from: Data(#"{"scale": [1]}"#.utf8)))
    }
}
