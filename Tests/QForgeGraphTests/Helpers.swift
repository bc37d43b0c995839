import Foundation
import QForgeGraph
import QForgeTensor
import XCTest

/// Runs `body`, asserts it throws a `GraphError` of exactly `kind`, that the description is
/// one line, and (when `file` is given) that the error names that file. Returns the error.
@discardableResult
func assertGraphError<T>(_ kind: GraphError.Kind, file: String? = nil, _ body: () throws -> T,
                         sourceFile: StaticString = #filePath, line: UInt = #line) -> GraphError? {
    do {
        let value = try body()
        XCTFail("expected \(kind), got a result: \(value)", file: sourceFile, line: line)
        return nil
    } catch let error as GraphError {
        XCTAssertEqual(error.kind, kind, file: sourceFile, line: line)
        XCTAssertFalse(error.description.contains("\n"), "description spans lines: \(error.description)",
                       file: sourceFile, line: line)
        if let file {
            XCTAssertEqual(error.file, file, file: sourceFile, line: line)
            XCTAssertTrue(error.description.hasPrefix(file + ": "), "description \(error.description) does not name \(file)",
                          file: sourceFile, line: line)
        }
        return error
    } catch {
        XCTFail("expected GraphError \(kind), got \(type(of: error)): \(error)", file: sourceFile, line: line)
        return nil
    }
}

/// A fresh empty directory, removed when the test case ends.
func makeTempDirectory(_ testCase: XCTestCase) throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("qforge-graph-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    testCase.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

func readBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A safetensors file built by hand: the 8-byte length (or `length` when given), the header
/// text, then `data`.
func handBuilt(header: String, data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    return handBuilt(headerBytes: h, data: data, length: length)
}

func handBuilt(headerBytes h: [UInt8], data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    let n = length ?? UInt64(h.count)
    var out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) }
    out += h
    out += data
    return out
}

func floatBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v -> [UInt8] in
        let bits = v.bitPattern
        return (0..<4).map { UInt8(truncatingIfNeeded: bits >> (8 * UInt32($0))) }
    }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(hex.utf8).makeIterator()
    while let a = chars.next(), let b = chars.next() {
        out.append(UInt8(String(decoding: [a, b], as: UTF8.self), radix: 16) ?? 0)
    }
    return out
}

/// Bit patterns, so NaN payloads and −0 compare exactly.
func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

/// Files in `directory` (to check that no temporary file was left behind).
func listing(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

/// A small conv net touching most op types, with its weights.
func sampleGraph() -> (graph: Graph, tensors: [String: Tensor]) {
    func t(_ shape: [Int], _ seed: Float) -> Tensor {
        Tensor(shape: shape) { out in for i in 0..<out.count { out[i] = seed + Float(i) * 0.25 - 3 } }
    }
    let tensors: [String: Tensor] = [
        "conv.weight": t([4, 1, 3, 3], 0.5),
        "conv.bias": t([4], 1),
        "bn.weight": t([4], 2), "bn.bias": t([4], 3), "bn.running_mean": t([4], 4), "bn.running_var": Tensor(repeating: 1, shape: [4]),
        "fc.weight": t([10, 64], 5),
        "fc.bias": t([10], 6),
        "act_q.scale": Tensor(shape: [], scalars: [0.125]),
        "act_q.zeropt": Tensor(shape: [], scalars: [0]),
        "act_q.bitwidth": Tensor(shape: [], scalars: [8]),
    ]
    let graph = Graph(
        name: "tiny-cnn",
        inputs: [ValueInfo(name: "x", shape: [nil, 1, 8, 8])],
        outputs: [ValueInfo(name: "probs", shape: [nil, 10])],
        nodes: [
            Node(name: "conv", op: .conv, inputs: ["x", "conv.weight", "conv.bias"], outputs: ["c0"],
                 attributes: ["kernel_shape": .ints([3, 3]), "strides": .ints([1, 1]), "pads": .ints([1, 1, 1, 1]),
                              "dilations": .ints([1, 1]), "group": 1]),
            Node(name: "bn", op: .batchNormalization,
                 inputs: ["c0", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"], outputs: ["b0"],
                 attributes: ["epsilon": 1e-5, "momentum": 0.1]),
            Node(name: "relu", op: .relu, inputs: ["b0"], outputs: ["r0"]),
            Node(name: "act_q", op: .quant, inputs: ["r0", "act_q.scale", "act_q.zeropt", "act_q.bitwidth"], outputs: ["q0"],
                 attributes: ["signed": 0, "narrow": 0, "rounding_mode": "ROUND"]),
            Node(name: "pool", op: .maxPool, inputs: ["q0"], outputs: ["p0"],
                 attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]),
            Node(name: "flatten", op: .flatten, inputs: ["p0"], outputs: ["f0"], attributes: ["axis": 1]),
            Node(name: "dropout", op: .dropout, inputs: ["f0"], outputs: ["d0"], attributes: ["ratio": 0.25]),
            Node(name: "fc", op: .gemm, inputs: ["d0", "fc.weight", "fc.bias"], outputs: ["logits"]),
            Node(name: "softmax", op: .softmax, inputs: ["logits"], outputs: ["probs"], attributes: ["axis": -1]),
        ],
        initializers: ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                       "fc.weight", "fc.bias", "act_q.scale", "act_q.zeropt", "act_q.bitwidth"],
        quantizers: [
            "fc.weight": QuantizerSpec(bitWidth: 4, signed: true, narrow: true, scale: [0.5, 0.25, 0.125, 1, 2, 4, 8, 0.5, 0.5, 0.5],
                                       zeroPoint: [0], axis: 0, scaleIsPowerOfTwo: true),
            "r0": QuantizerSpec(bitWidth: 8, signed: false, roundingMode: .halfUp, scale: [0.125]),
        ],
        metadata: ["producer": "QForge tests"])
    return (graph, tensors)
}
