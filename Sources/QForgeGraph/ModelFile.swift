import Foundation
import QForgeTensor

/// A QForge model file: a safetensors file whose tensors are the weights under their dotted
/// parameter paths (PyTorch layout, so PyTorch's `safetensors` reads them) and whose
/// `__metadata__` carries the graph:
///
///     "format":         "qforge"
///     "qforge_graph":   the graph's JSON (`Graph.jsonData()`)
///     "qforge_version": the writer's version ("0.1.0")
///     …                 any extra metadata given to `save`
public enum ModelFile {
    /// `__metadata__["format"]` of a QForge model file.
    public static let format = "qforge"
    /// Version written to `__metadata__["qforge_version"]`.
    public static let version = "0.1.0"
    /// Metadata keys written by `save`; `extraMetadata` may not set them.
    public static let formatKey = "format"
    public static let graphKey = "qforge_graph"
    public static let versionKey = "qforge_version"
    static let reservedKeys: Set<String> = [formatKey, graphKey, versionKey]

    /// Validates `graph` against `tensors` (`Graph.validate(initializerShapes:)`), then writes
    /// the model file atomically: on any error nothing at `path` changes.
    ///
    /// `tensors` must contain every initializer the graph names; tensors the graph does not
    /// name are written too (they load back in `tensors`).
    public static func save(graph: Graph, tensors: [String: Tensor], to path: String,
                            extraMetadata: [String: String] = [:]) throws {
        do {
            for key in Safetensors.sortedNames(extraMetadata.keys) where reservedKeys.contains(key) {
                throw GraphError(.reservedMetadataKey(key))
            }
            try graph.validate(initializerShapes: tensors.mapValues(\.shape))
            let json = String(decoding: try graph.jsonData(), as: UTF8.self)
            var metadata = extraMetadata
            metadata[formatKey] = format
            metadata[graphKey] = json
            metadata[versionKey] = version
            try Safetensors.write(tensors: tensors, metadata: metadata, to: path)
        } catch let error as GraphError {
            throw error.inFile(path)
        }
    }

    /// Reads a model file: the graph (decoded and validated against the tensors), every
    /// tensor as Float32, and the full `__metadata__`. A safetensors file without a QForge
    /// graph is an error (`GraphError.Kind.noGraph`); read it with `loadWeights`.
    public static func load(_ path: String) throws -> (graph: Graph, tensors: [String: Tensor], metadata: [String: String]) {
        let file = try SafetensorsFile(path: path)
        do {
            guard let json = file.metadata[graphKey] else { throw GraphError(.noGraph) }
            let graph = try Graph(jsonData: Data(json.utf8))
            try graph.validate(initializerShapes: file.infos.mapValues(\.shape))
            return (graph, try file.tensors(), file.metadata)
        } catch let error as GraphError {
            throw error.inFile(path)
        }
    }

    /// Reads the tensors (as Float32) and `__metadata__` of any safetensors file, with or
    /// without a QForge graph.
    public static func loadWeights(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        let file = try SafetensorsFile(path: path)
        return (try file.tensors(), file.metadata)
    }
}
