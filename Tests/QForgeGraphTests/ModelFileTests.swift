import Foundation
import QForgeGraph
import QForgeTensor
import XCTest

final class ModelFileTests: XCTestCase {
    func testSaveLoadRoundTrip() throws {
        let dir = try makeTempDirectory(self)
        let path = dir + "/model.safetensors"
        let (graph, tensors) = sampleGraph()
        var all = tensors
        all["optimizer.step"] = Tensor(shape: [1], scalars: [42])  // not an initializer: kept as is
        try ModelFile.save(graph: graph, tensors: all, to: path, extraMetadata: ["epochs": "3", "dataset": "digits"])

        let loaded = try ModelFile.load(path)
        XCTAssertEqual(loaded.graph, graph)
        XCTAssertEqual(Set(loaded.tensors.keys), Set(all.keys))
        for (name, t) in all {
            XCTAssertEqual(loaded.tensors[name]?.shape, t.shape, name)
            XCTAssertEqual(loaded.tensors[name].map(bits), bits(t), name)
        }
        XCTAssertEqual(loaded.metadata["format"], "qforge")
        XCTAssertEqual(loaded.metadata["qforge_version"], "0.1.0")
        XCTAssertEqual(loaded.metadata["epochs"], "3")
        XCTAssertEqual(loaded.metadata["dataset"], "digits")
        XCTAssertEqual(loaded.metadata["qforge_graph"], String(decoding: try graph.jsonData(), as: UTF8.self))

        // The same inputs give the same bytes.
        let again = dir + "/again.safetensors"
        try ModelFile.save(graph: graph, tensors: all, to: again, extraMetadata: ["epochs": "3", "dataset": "digits"])
        XCTAssertEqual(try readBytes(again), try readBytes(path))

        // Weights-only reading works on a model file too.
        let weights = try ModelFile.loadWeights(path)
        XCTAssertEqual(weights.tensors.count, all.count)
        XCTAssertEqual(weights.metadata["format"], "qforge")
    }

    func testWeightsOnlyFileHasNoGraph() throws {
        let dir = try makeTempDirectory(self)
        let path = dir + "/weights.safetensors"
        try Safetensors.write(tensors: ["layers.0.weight": Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])],
                              metadata: ["format": "pt"], to: path)
        let e = assertGraphError(.noGraph, file: path) { try ModelFile.load(path) }
        XCTAssertEqual(e?.description, path + ": has no QForge graph (no 'qforge_graph' in __metadata__);"
                       + " ModelFile.loadWeights reads its tensors")
        let weights = try ModelFile.loadWeights(path)
        XCTAssertEqual(weights.tensors["layers.0.weight"]?.scalars, [1, 2, 3, 4])
        XCTAssertEqual(weights.metadata, ["format": "pt"])
    }

    func testLoadChecksGraphAgainstTensors() throws {
        let dir = try makeTempDirectory(self)
        let path = dir + "/model.safetensors"
        let (graph, tensors) = sampleGraph()
        let json = String(decoding: try graph.jsonData(), as: UTF8.self)

        var missing = tensors
        missing["fc.bias"] = nil
        try Safetensors.write(tensors: missing, metadata: ["qforge_graph": json], to: path)
        assertGraphError(.missingInitializer("fc.bias"), file: path) { try ModelFile.load(path) }

        var wrong = tensors
        wrong["fc.weight"] = Tensor(zeros: [64, 10, 1])
        try Safetensors.write(tensors: wrong, metadata: ["qforge_graph": json], to: path)
        let e = assertGraphError(.initializerShape(node: "fc", tensor: "fc.weight", shape: [64, 10, 1], expected: "rank 2 [out, in]"),
                                 file: path) { try ModelFile.load(path) }
        XCTAssertEqual(e?.description, path + ": node 'fc' tensor 'fc.weight' has shape [64, 10, 1], expected rank 2 [out, in]")

        try Safetensors.write(tensors: tensors, metadata: ["qforge_graph": json.replacingOccurrences(of: "\"Softmax\"", with: "\"SoftArgMax\"")],
                              to: path)
        let op = assertGraphError(.unknownOp(node: "softmax", path: "nodes[8]", op: "SoftArgMax"), file: path) { try ModelFile.load(path) }
        XCTAssertTrue(op?.description.hasPrefix(path + ": unknown op 'SoftArgMax' in node 'softmax' (nodes[8]) (known: Gemm, ") ?? false)

        try Safetensors.write(tensors: tensors, metadata: ["qforge_graph": "{not json"], to: path)
        do {
            _ = try ModelFile.load(path)
            XCTFail("loaded")
        } catch let error as GraphError {
            guard case .graphJSON = error.kind else { return XCTFail("\(error)") }
            XCTAssertEqual(error.file, path)
        }

        var cyclic = graph
        cyclic.nodes.swapAt(0, 1)
        try Safetensors.write(tensors: tensors, metadata: ["qforge_graph": String(decoding: try cyclic.jsonData(), as: UTF8.self)], to: path)
        assertGraphError(.undefinedInput(node: "bn", input: "c0"), file: path) { try ModelFile.load(path) }
    }

    func testSaveRejectsBadInputsAndKeepsExistingFile() throws {
        let dir = try makeTempDirectory(self)
        let path = dir + "/model.safetensors"
        let (graph, tensors) = sampleGraph()
        try ModelFile.save(graph: graph, tensors: tensors, to: path)
        let before = try readBytes(path)

        assertGraphError(.reservedMetadataKey("qforge_graph"), file: path) {
            try ModelFile.save(graph: graph, tensors: tensors, to: path, extraMetadata: ["qforge_graph": "{}"])
        }
        var missing = tensors
        missing["conv.weight"] = nil
        assertGraphError(.missingInitializer("conv.weight"), file: path) { try ModelFile.save(graph: graph, tensors: missing, to: path) }
        var bad = graph
        bad.nodes[2].inputs = ["nothing"]
        assertGraphError(.undefinedInput(node: "relu", input: "nothing"), file: path) { try ModelFile.save(graph: bad, tensors: tensors, to: path) }
        var nan = graph
        nan.quantizers["r0"]?.zeroPoint = [.nan]
        assertGraphError(.invalidQuantizer(problem: "zeroPoint[0] = nan must be finite"), file: path) {
            try ModelFile.save(graph: nan, tensors: tensors, to: path)
        }
        var empty = tensors
        empty[""] = Tensor(shape: [1], scalars: [0])
        assertGraphError(.invalidTensorName(name: "", problem: "names must not be empty"), file: path) {
            try ModelFile.save(graph: graph, tensors: empty, to: path)
        }

        XCTAssertEqual(try readBytes(path), before)
        XCTAssertEqual(listing(dir), ["model.safetensors"])
        XCTAssertEqual(try ModelFile.load(path).graph, graph)
    }
}
