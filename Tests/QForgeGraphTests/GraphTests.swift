import Foundation
import QForgeGraph
import QForgeTensor
import TestSupport
import XCTest

final class GraphJSONTests: XCTestCase {

    func testRoundTripAndDeterminism() throws {
        let graph = sampleGraph().graph
        try graph.validate()
        let data = try graph.jsonData()
        XCTAssertEqual(try Graph(jsonData: data), graph)
        XCTAssertEqual(try graph.jsonData(), data, "encoding is deterministic")
        XCTAssertEqual(try Graph(jsonData: try graph.jsonData(prettyPrinted: true)), graph)
        // Re-encoding the decoded graph gives the same bytes.
        XCTAssertEqual(try Graph(jsonData: data).jsonData(), data)

        let text = String(decoding: data, as: UTF8.self)
        // Plain, tag-free attribute values; null for the batch dimension; sorted keys.
        XCTAssertTrue(text.contains(#""kernel_shape":[3,3]"#), text)
        XCTAssertTrue(text.contains(#""rounding_mode":"ROUND""#), text)
        XCTAssertTrue(text.contains(#""shape":[null,1,8,8]"#), text)
        XCTAssertTrue(text.hasPrefix(#"{"initializers":["#), text)
        XCTAssertTrue(text.contains(#"],"inputs":[{"name":"x","shape":[null,1,8,8]}],"metadata":{"producer":"QForge tests"},"#
                                    + #""name":"tiny-cnn","nodes":[{"attributes":{"dilations":[1,1],"group":1,"kernel_shape":[3,3],"#
                                    + #""pads":[1,1,1,1],"strides":[1,1]},"inputs":["x","conv.weight","conv.bias"],"name":"conv","#
                                    + #""op":"Conv","outputs":["c0"]},"#), text)
        XCTAssertTrue(text.contains(#""outputs":[{"name":"probs","shape":[null,10]}],"quantizers":{"fc.weight":"#), text)
    }

    func testHandWrittenJSONWithDefaults() throws {
        let json = """
            {"name": "mlp", "inputs": [{"name": "x", "shape": [null, 784]}], "outputs": [{"name": "y", "shape": [null, 10]}],
             "nodes": [{"name": "layers.0", "op": "Gemm", "inputs": ["x", "layers.0.weight"], "outputs": ["y"]}],
             "initializers": ["layers.0.weight"],
             "quantizers": {"layers.0.weight": {"bitWidth": 8, "scale": [0.5], "roundingMode": "half_even"}}}
            """
        let graph = try Graph(jsonString: json)
        XCTAssertEqual(graph.nodes[0].op, .gemm)
        XCTAssertEqual(graph.nodes[0].attributes, [:])
        XCTAssertEqual(graph.metadata, [:])
        XCTAssertEqual(graph.inputs[0].shape, [nil, 784])
        let q = try XCTUnwrap(graph.quantizers["layers.0.weight"])
        XCTAssertEqual(q, QuantizerSpec(bitWidth: 8, signed: true, narrow: false, roundingMode: .round, scale: [0.5],
                                        zeroPoint: [0], axis: nil, kind: .int, scaleIsPowerOfTwo: false))
        try graph.validate()
    }

    func testAttributeValuesDecodeIntsFirst() throws {
        let node = Node(name: "n", op: .identity, inputs: ["x"], outputs: ["y"], attributes: [
            "i": 3, "f": 0.1, "whole": .float(2), "s": "text", "is": .ints([1, -2]), "fs": .floats([0.5, 1.5]),
            "wholes": .floats([1, 2]), "empty": .floats([]),
        ])
        let data = try JSONEncoder().encode(node)
        let back = try JSONDecoder().decode(Node.self, from: data)
        XCTAssertEqual(back, node, "ints and integral floats compare equal after the round trip")
        XCTAssertEqual(back.attributes["whole"]?.intValue, 2, "an integral float comes back as an int")
        XCTAssertEqual(back.attributes["whole"]?.floatValue, 2)
        XCTAssertEqual(back.attributes["f"]?.floatValue, 0.1)
        XCTAssertEqual(back.attributes["f"]?.intValue, nil)
        XCTAssertEqual(back.attributes["wholes"]?.floatsValue, [1, 2])
        XCTAssertEqual(back.attributes["fs"]?.floatsValue, [0.5, 1.5])
        XCTAssertEqual(back.attributes["is"]?.intsValue, [1, -2])
        XCTAssertEqual(back.attributes["empty"]?.intsValue, [])
        XCTAssertEqual(back.attributes["s"]?.stringValue, "text")
        XCTAssertNotEqual(AttributeValue.int(1), .float(1.5))
        XCTAssertNotEqual(AttributeValue.ints([1]), .floats([1, 2]))
        XCTAssertNotEqual(AttributeValue.string("1"), .int(1))
    }

    func testFloatValuesSurviveJSONExactly() throws {
        // Random Float32 bit patterns through attributes and quantizer scales.
        var rng = SystemRandomNumberGenerator()
        var values: [Float] = [0.1, 1e-5, 3.4028235e38, 1.1754944e-38, .leastNonzeroMagnitude, 16_777_216, 16_777_218, 0.3]
        while values.count < 2000 {
            let v = Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))
            if v.isFinite { values.append(v) }
        }
        let node = Node(name: "n", op: .identity, inputs: ["x"], outputs: ["y"], attributes: ["v": .floats(values)])
        let back = try JSONDecoder().decode(Node.self, from: try JSONEncoder().encode(node))
        let decoded = try XCTUnwrap(back.attributes["v"]?.floatsValue)
        XCTAssertEqual(decoded.map(\.bitPattern), values.map { $0 == 0 ? Float(0).bitPattern : $0.bitPattern })
    }

    func testUnknownOpNamesNodeAndListsKnownOps() throws {
        let json = """
            {"name": "g", "inputs": [], "outputs": [],
             "nodes": [{"name": "a", "op": "Relu", "inputs": [], "outputs": ["b"]},
                       {"name": "layers.2", "op": "Convolution3D", "inputs": ["b"], "outputs": ["c"]}]}
            """
        let e = assertGraphError(.unknownOp(node: "layers.2", path: "nodes[1]", op: "Convolution3D")) { try Graph(jsonString: json) }
        XCTAssertEqual(e?.description, "unknown op 'Convolution3D' in node 'layers.2' (nodes[1]) (known: Gemm, MatMul, Conv,"
                       + " BatchNormalization, Relu, Sigmoid, Tanh, MaxPool, Flatten, Reshape, Transpose, Add, Mul, Softmax,"
                       + " Dropout, Identity, Quant, BipolarQuant, Trunc, MultiThreshold)")
    }

    func testUnknownEnumValuesInQuantizers() throws {
        func graph(_ quantizer: String) -> String {
            #"{"name": "g", "inputs": [{"name": "x", "shape": [1]}], "outputs": [], "nodes": [], "quantizers": {"x": \#(quantizer)}}"#
        }
        assertGraphError(.unknownValue(what: "rounding mode", path: "quantizers.x.roundingMode", value: "STOCHASTIC",
                                       known: ["ROUND", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "DOWN", "UP"])) {
            try Graph(jsonString: graph(#"{"bitWidth": 4, "scale": [1], "roundingMode": "STOCHASTIC"}"#))
        }
        assertGraphError(.unknownValue(what: "quantizer kind", path: "quantizers.x.kind", value: "float",
                                       known: ["int", "bipolar", "signMagnitude"])) {
            try Graph(jsonString: graph(#"{"bitWidth": 4, "scale": [1], "kind": "float"}"#))
        }
    }

    func testMalformedJSONGivesPathedErrors() throws {
        func expectJSONError(_ json: String, path: String, contains: String, line: UInt = #line) {
            do {
                _ = try Graph(jsonString: json)
                XCTFail("decoded", line: line)
            } catch let error as GraphError {
                guard case .graphJSON(let p, let detail) = error.kind else { return XCTFail("\(error)", line: line) }
                XCTAssertEqual(p, path, line: line)
                XCTAssertTrue(contains.isEmpty || detail.contains(contains), "\(detail)", line: line)
                XCTAssertFalse(error.description.contains("\n"), line: line)
            } catch {
                XCTFail("\(error)", line: line)
            }
        }
        expectJSONError(#"{"name": "g", "inputs": [], "outputs": []}"#, path: "", contains: "missing key 'nodes'")
        expectJSONError(#"{"name": 3, "inputs": [], "outputs": [], "nodes": []}"#, path: "name", contains: "expected a string")
        expectJSONError(#"{"name": "g", "inputs": [{"name": "x"}], "outputs": [], "nodes": []}"#,
                        path: "inputs[0]", contains: "missing key 'shape'")
        expectJSONError(#"{"name": "g", "inputs": [], "outputs": [], "nodes": [{"name": "n", "op": "Relu", "inputs": ["x"], "outputs": ["y"], "attributes": {"k": {"a": 1}}}]}"#,
                        path: "nodes[0].attributes.k", contains: "an attribute must be")
        expectJSONError(#"{"name": "g", "inputs": [], "outputs": [], "nodes": [{"name": "n", "op": "Relu", "inputs": ["x"], "outputs": ["y"], "attributes": {"k": 1e60}}]}"#,
                        path: "nodes[0].attributes.k", contains: "Float32")
        expectJSONError("not json", path: "", contains: "")
        expectJSONError("[]", path: "", contains: "")
    }

    func testNonFiniteValuesCannotBeEncoded() throws {
        var graph = sampleGraph().graph
        graph.nodes[1].attributes["epsilon"] = .float(.nan)
        do {
            _ = try graph.jsonData()
            XCTFail("encoded NaN")
        } catch let error as GraphError {
            guard case .graphEncoding(let path, _) = error.kind else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "nodes[1].attributes.epsilon")
        }
    }

    func testGraphHelpers() {
        let graph = sampleGraph().graph
        XCTAssertEqual(graph.producer(of: "r0")?.name, "relu")
        XCTAssertEqual(graph.consumers(of: "r0").map(\.name), ["act_q"])
        XCTAssertEqual(graph.node(named: "fc")?.op, .gemm)
        XCTAssertNil(graph.producer(of: "x"))
    }
}

final class GraphValidationTests: XCTestCase {
    /// x → Relu → y, the smallest valid graph, for mutation.
    func base() -> Graph {
        Graph(name: "g", inputs: [ValueInfo(name: "x", shape: [nil, 4])], outputs: [ValueInfo(name: "y", shape: [nil, 4])],
              nodes: [Node(name: "relu", op: .relu, inputs: ["x"], outputs: ["y"])])
    }

    func node(_ name: String, _ op: OpType, _ inputs: [String], _ outputs: [String] = ["out"],
              _ attributes: [String: AttributeValue] = [:]) -> Graph {
        var g = base()
        g.nodes.append(Node(name: name, op: op, inputs: inputs, outputs: outputs, attributes: attributes))
        g.initializers = ["w", "b", "s", "z", "bits", "t"]
        return g
    }

    func testValidGraphsPass() throws {
        try base().validate()
        try sampleGraph().graph.validate()
        // A graph output may be a graph input; Reshape may take its shape as an input; Trunc has 5 to 7 inputs.
        var g = base()
        g.outputs.append(ValueInfo(name: "x", shape: [nil, 4]))
        try g.validate()
        try node("r", .reshape, ["y", "s"]).validate()
        try node("r", .reshape, ["y"], ["out"], ["shape": .ints([-1, 2])]).validate()
        try node("t", .trunc, ["y", "s", "z", "bits", "bits"]).validate()
        try node("t", .trunc, ["y", "s", "z", "bits", "s", "z", "bits"]).validate()
        try node("d", .dropout, ["y"], ["out", "mask"], ["ratio": 0]).validate()
        try node("m", .multiThreshold, ["y", "t"], ["out"], ["out_dtype": "UINT4", "out_scale": 1, "out_bias": -0.5]).validate()
    }

    func testNames() throws {
        var g = base()
        g.inputs[0].name = ""
        assertGraphError(.emptyName(what: "graph input 0")) { try g.validate() }
        g = base(); g.initializers = [""]
        assertGraphError(.emptyName(what: "initializer 0")) { try g.validate() }
        g = base(); g.nodes[0].name = ""
        assertGraphError(.emptyName(what: "node nodes[0] (Relu)")) { try g.validate() }
        g = base(); g.nodes[0].inputs = [""]
        assertGraphError(.emptyName(what: "an input of node 'relu'")) { try g.validate() }
        g = base(); g.nodes[0].outputs = [""]
        assertGraphError(.emptyName(what: "an output of node 'relu'")) { try g.validate() }
        g = base(); g.outputs[0].name = ""
        assertGraphError(.emptyName(what: "graph output 0")) { try g.validate() }
    }

    func testDuplicates() throws {
        var g = base()
        g.nodes.append(Node(name: "relu", op: .relu, inputs: ["y"], outputs: ["z"]))
        let e = assertGraphError(.duplicateNodeName("relu")) { try g.validate() }
        XCTAssertEqual(e?.description, "two nodes are named 'relu'")

        g = base()
        g.nodes.append(Node(name: "again", op: .relu, inputs: ["y"], outputs: ["y"]))
        let r = assertGraphError(.valueRedefined(value: "y", by: "node 'again'", previous: "node 'relu'")) { try g.validate() }
        XCTAssertEqual(r?.description, "value 'y' defined by node 'again' is already defined by node 'relu'")

        g = base(); g.initializers = ["x"]
        assertGraphError(.valueRedefined(value: "x", by: "initializer", previous: "graph input")) { try g.validate() }
        g = base(); g.inputs.append(ValueInfo(name: "x", shape: [1]))
        assertGraphError(.valueRedefined(value: "x", by: "graph input", previous: "graph input")) { try g.validate() }
        g = base(); g.nodes[0].outputs = ["x"]
        assertGraphError(.valueRedefined(value: "x", by: "node 'relu'", previous: "graph input")) { try g.validate() }
        g = base(); g.outputs.append(g.outputs[0])
        assertGraphError(.duplicateGraphOutput("y")) { try g.validate() }
    }

    func testTopologicalOrder() throws {
        var g = base()
        g.nodes.insert(Node(name: "early", op: .sigmoid, inputs: ["y"], outputs: ["z"]), at: 0)
        let e = assertGraphError(.undefinedInput(node: "early", input: "y")) { try g.validate() }
        XCTAssertEqual(e?.description,
                       "node 'early' input 'y' is not a graph input, an initializer, or the output of an earlier node")
        g = base(); g.nodes[0].inputs = ["y"]
        assertGraphError(.undefinedInput(node: "relu", input: "y")) { try g.validate() }
        g = base(); g.outputs[0].name = "nowhere"
        assertGraphError(.undefinedGraphOutput("nowhere")) { try g.validate() }
    }

    func testInputShapes() throws {
        var g = base()
        g.inputs[0].shape = [nil, -4]
        assertGraphError(.invalidInputShape(input: "x", shape: [nil, -4])) { try g.validate() }
    }

    func testInputAndOutputCounts() throws {
        let cases: [(OpType, [String], String)] = [
            (.gemm, ["y"], "2 to 3"), (.gemm, ["y", "w", "b", "b"], "2 to 3"), (.matMul, ["y"], "2"), (.conv, ["y"], "2 to 3"),
            (.batchNormalization, ["y", "s", "b", "z"], "5"), (.relu, ["y", "y"], "1"), (.sigmoid, [], "1"), (.tanh, ["y", "w"], "1"),
            (.maxPool, ["y", "w"], "1"), (.flatten, [], "1"), (.reshape, ["y", "s", "s"], "1 to 2"), (.transpose, ["y", "w"], "1"),
            (.add, ["y"], "2"), (.mul, ["y", "y", "y"], "2"), (.softmax, [], "1"), (.dropout, ["y", "s", "s", "s"], "1 to 3"),
            (.identity, ["y", "y"], "1"), (.quant, ["y", "s", "z"], "4"), (.bipolarQuant, ["y"], "2"),
            (.trunc, ["y", "s", "z", "bits"], "5 to 7"), (.multiThreshold, ["y"], "2"),
        ]
        XCTAssertEqual(Set(cases.map(\.0.rawValue)), Set(OpType.allCases.map(\.rawValue)), "every op is covered")
        for (op, inputs, expected) in cases {
            assertGraphError(.wrongInputCount(node: "n", op: op.rawValue, count: inputs.count, expected: expected)) {
                try node("n", op, inputs, ["out"], op == .maxPool ? ["kernel_shape": .ints([2])] : [:]).validate()
            }
        }
        let e = assertGraphError(.wrongInputCount(node: "layers.0", op: "Gemm", count: 1, expected: "2 to 3")) {
            try node("layers.0", .gemm, ["y"]).validate()
        }
        XCTAssertEqual(e?.description, "node 'layers.0' (Gemm) has 1 input, expected 2 to 3")
        assertGraphError(.wrongOutputCount(node: "n", op: "Relu", count: 2, expected: "1")) { try node("n", .relu, ["y"], ["a", "b"]).validate() }
        assertGraphError(.wrongOutputCount(node: "n", op: "Relu", count: 0, expected: "1")) { try node("n", .relu, ["y"], []).validate() }
        assertGraphError(.wrongOutputCount(node: "n", op: "Dropout", count: 3, expected: "1 to 2")) {
            try node("n", .dropout, ["y"], ["a", "b", "c"]).validate()
        }
    }

    func testAttributes() throws {
        func expect(_ op: OpType, _ inputs: [String], _ attributes: [String: AttributeValue], _ name: String, _ problem: String,
                    line: UInt = #line) {
            assertGraphError(.invalidAttribute(node: "n", attribute: name, problem: problem), {
                try node("n", op, inputs, ["out"], attributes).validate()
            }, line: line)
        }
        expect(.conv, ["y", "w"], ["strides": 2], "strides", "must be a list of integers, found 2")
        expect(.conv, ["y", "w"], ["group": .float(1.5)], "group", "must be an integer, found 1.5")
        expect(.conv, ["y", "w"], ["strides": .ints([1, 0])], "strides", "must be all ≥ 1, found [1, 0]")
        expect(.conv, ["y", "w"], ["dilations": .ints([0])], "dilations", "must be all ≥ 1, found [0]")
        expect(.conv, ["y", "w"], ["pads": .ints([1, -1, 1, 1])], "pads", "must be all ≥ 0, found [1, -1, 1, 1]")
        expect(.conv, ["y", "w"], ["pads": .ints([1, 1, 1])], "pads", "must have a begin and an end per spatial axis, found 3 values")
        expect(.conv, ["y", "w"], ["group": 0], "group", "must be ≥ 1, found 0")
        expect(.maxPool, ["y"], [:], "kernel_shape", "is required for MaxPool")
        expect(.maxPool, ["y"], ["kernel_shape": .ints([2, 0])], "kernel_shape", "must be all ≥ 1, found [2, 0]")
        expect(.batchNormalization, ["y", "s", "b", "z", "t"], ["epsilon": "small"], "epsilon", "must be a number, found 'small'")
        expect(.batchNormalization, ["y", "s", "b", "z", "t"], ["epsilon": -1], "epsilon", "must be ≥ 0, found -1.0")
        expect(.flatten, ["y"], ["axis": .ints([1])], "axis", "must be an integer, found [1]")
        expect(.reshape, ["y"], [:], "shape", "is required when Reshape has no shape input")
        expect(.reshape, ["y"], ["shape": .ints([-1, -1])], "shape", "may infer (−1) at most one dimension")
        expect(.reshape, ["y"], ["shape": .ints([-2])], "shape", "entries must be ≥ −1, found [-2]")
        expect(.transpose, ["y"], ["perm": .ints([0, 2])], "perm", "must be a permutation of 0..<2, found [0, 2]")
        expect(.dropout, ["y"], ["ratio": 1], "ratio", "must be in [0, 1), found 1.0")
        expect(.quant, ["y", "s", "z", "bits"], ["signed": 2], "signed", "must be 0 or 1, found 2")
        expect(.quant, ["y", "s", "z", "bits"], ["narrow": "yes"], "narrow", "must be an integer, found 'yes'")
        expect(.quant, ["y", "s", "z", "bits"], ["rounding_mode": "NEAREST"], "rounding_mode",
               "is 'NEAREST', known: ROUND, HALF_UP, HALF_DOWN, FLOOR, CEIL, DOWN, UP")
        expect(.trunc, ["y", "s", "z", "bits", "bits"], ["rounding_mode": 1], "rounding_mode", "must be a string, found 1")
        expect(.multiThreshold, ["y", "t"], ["out_scale": .float(.infinity)], "out_scale", "must be a number, found inf")
        // Unknown attributes are kept and not checked; lowercase QONNX rounding modes are fine.
        try node("n", .quant, ["y", "s", "z", "bits"], ["out"], ["rounding_mode": "floor", "extra": .floats([1])]).validate()
        let e = assertGraphError(.invalidAttribute(node: "n", attribute: "perm", problem: "must be a permutation of 0..<2, found [0, 2]")) {
            try node("n", .transpose, ["y"], ["out"], ["perm": .ints([0, 2])]).validate()
        }
        XCTAssertEqual(e?.description, "node 'n' attribute 'perm' must be a permutation of 0..<2, found [0, 2]")
    }

    func testQuantizers() throws {
        var g = base()
        g.quantizers["nowhere"] = QuantizerSpec(bitWidth: 8, scale: [1])
        assertGraphError(.quantizerTargetUnknown("nowhere")) { try g.validate() }
        g = base()
        g.quantizers["y"] = QuantizerSpec(bitWidth: 33, scale: [1])
        let e = assertGraphError(.bitWidthOutOfRange(33)) { try g.validate() }
        XCTAssertEqual(e?.context, "quantizer 'y'")
        XCTAssertEqual(e?.description, "quantizer 'y': bit width 33 is outside 1…32")
        g.quantizers["y"] = QuantizerSpec(bitWidth: 8, scale: [1])
        try g.validate()
    }

    func testInitializerShapes() throws {
        let (graph, tensors) = sampleGraph()
        let shapes = tensors.mapValues(\.shape)
        try graph.validate(initializerShapes: shapes)

        func expect(_ kind: GraphError.Kind, _ change: (inout [String: [Int]]) -> Void, graph g: Graph = graph, line: UInt = #line) {
            var s = shapes
            change(&s)
            assertGraphError(kind, { try g.validate(initializerShapes: s) }, line: line)
        }
        expect(.missingInitializer("fc.bias")) { $0["fc.bias"] = nil }
        expect(.initializerShape(node: "fc", tensor: "fc.weight", shape: [640], expected: "rank 2 [out, in]")) { $0["fc.weight"] = [640] }
        expect(.initializerShape(node: "fc", tensor: "fc.bias", shape: [11], expected: "[10] (one bias per output)")) { $0["fc.bias"] = [11] }
        expect(.initializerShape(node: "conv", tensor: "conv.weight", shape: [4, 9], expected: "rank 3 to 5 [out, in/group, kernel…]")) {
            $0["conv.weight"] = [4, 9]
        }
        expect(.initializerShape(node: "conv", tensor: "conv.weight", shape: [4, 1, 5, 5], expected: "kernel dimensions [3, 3] from kernel_shape")) {
            $0["conv.weight"] = [4, 1, 5, 5]
        }
        expect(.initializerShape(node: "conv", tensor: "conv.bias", shape: [3], expected: "[4] (one bias per output channel)")) {
            $0["conv.bias"] = [3]
        }
        expect(.initializerShape(node: "bn", tensor: "bn.running_var", shape: [5], expected: "[4] like the other BatchNormalization parameters")) {
            $0["bn.running_var"] = [5]
        }
        expect(.initializerShape(node: "bn", tensor: "bn.weight", shape: [2, 2], expected: "rank 1 [C]")) { $0["bn.weight"] = [2, 2] }
        expect(.initializerShape(node: "act_q", tensor: "act_q.bitwidth", shape: [2], expected: "a single bit width value")) {
            $0["act_q.bitwidth"] = [2]
        }
        var grouped = graph
        grouped.nodes[0].attributes["group"] = 3
        expect(.initializerShape(node: "conv", tensor: "conv.weight", shape: [4, 1, 3, 3],
                                 expected: "an output channel count divisible by group 3"), { _ in }, graph: grouped)

        // Per-channel quantizer of fc.weight: 10 scales on axis 0.
        expect(.invalidQuantizer(problem: "10 scales for 12 channels on axis 0")) { $0["fc.weight"] = [12, 64]; $0["fc.bias"] = [12] }
        var badAxis = graph
        badAxis.quantizers["fc.weight"]?.axis = 2
        expect(.invalidQuantizer(problem: "axis 2 is outside tensor shape [10, 64]"), { _ in }, graph: badAxis)
    }
}
