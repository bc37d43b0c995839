import Foundation
import QForgeTensor
import SwiftProtobuf

// Reading and writing ONNX files: the protobuf ModelProto (types generated from
// proto/onnx.proto into ONNX/onnx.pb.swift), tensor data inline or in an external-data file
// beside the model, and the conversions between ONNX tensors and QForge's Float32 tensors.

/// An ONNX model decoded from its bytes, with the directory its external data lives in.
struct ONNXFile {
    let model: Onnx_ModelProto
    /// The file's name as the caller gave it (for errors), and its directory (external data).
    let fileName: String
    let directory: String
    /// External-data files already read, by location.
    private var external: [String: [UInt8]] = [:]

    /// Decodes `bytes` as a ModelProto. Protobuf errors, and bytes that decode to a message
    /// without a graph (another protobuf, or a text file that happens to parse), are
    /// `GraphError.Kind.notONNX`.
    init(bytes: [UInt8], fileName: String, directory: String) throws {
        self.fileName = fileName
        self.directory = directory
        guard !bytes.isEmpty else { throw GraphError(.notONNX(detail: "the file is empty"), file: fileName) }
        var options = BinaryDecodingOptions()
        options.messageDepthLimit = 64
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: bytes, options: options)
        } catch {
            throw GraphError(.notONNX(detail: "protobuf decoding failed (\(ONNXFile.describe(error)))"), file: fileName)
        }
        guard model.hasGraph, !model.graph.node.isEmpty else {
            throw GraphError(.notONNX(detail: "it decodes as protobuf but holds no graph nodes (ir_version \(model.irVersion), \(model.opsetImport.count) opset imports)"),
                             file: fileName)
        }
        guard model.irVersion >= 3 else {
            throw GraphError(.notONNX(detail: "ir_version \(model.irVersion) is not a version QForge reads (3 or later)"), file: fileName)
        }
        self.model = model
    }

    /// Reads the model at `path`.
    init(path: String) throws {
        let bytes = try FileIO.readAll(path)
        let url = URL(fileURLWithPath: path)
        try self.init(bytes: bytes, fileName: path, directory: url.deletingLastPathComponent().path)
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? BinaryDecodingError {
            switch e {
            case .truncated: return "the data ends in the middle of a field: the file is truncated"
            case .malformedProtobuf: return "malformed protobuf"
            case .invalidUTF8: return "a string field is not valid UTF-8"
            case .messageDepthLimit: return "messages nested too deeply"
            case .missingRequiredFields: return "required fields missing"
            default: return "\(e)"
            }
        }
        return "\(error)"
    }

    // MARK: Tensors

    /// The element count of `dims`, or an error naming the tensor.
    static func elementCount(_ dims: [Int64], tensor: String) throws -> Int {
        var n = 1
        for d in dims {
            guard d >= 0, d < Int64(Int32.max) else {
                throw GraphError(.onnx(problem: "tensor \(GraphError.quote(tensor)) has dimension \(d); dimensions must be 0…2^31"))
            }
            let (m, overflow) = n.multipliedReportingOverflow(by: Int(d))
            guard !overflow, m < (1 << 34) else {
                throw GraphError(.onnx(problem: "tensor \(GraphError.quote(tensor)) shape \(dims) is too large"))
            }
            n = m
        }
        return n
    }

    /// Element types QForge reads, with their byte size in raw data.
    enum ElementType: Int32 {
        case float = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7, bool = 9, double = 11, uint32 = 12, uint64 = 13

        var byteSize: Int {
            switch self {
            case .uint8, .int8, .bool: return 1
            case .uint16, .int16: return 2
            case .float, .int32, .uint32: return 4
            case .int64, .double, .uint64: return 8
            }
        }

        var name: String {
            switch self {
            case .float: return "FLOAT"
            case .uint8: return "UINT8"
            case .int8: return "INT8"
            case .uint16: return "UINT16"
            case .int16: return "INT16"
            case .int32: return "INT32"
            case .int64: return "INT64"
            case .bool: return "BOOL"
            case .double: return "DOUBLE"
            case .uint32: return "UINT32"
            case .uint64: return "UINT64"
            }
        }
    }

    /// The raw little-endian bytes of a tensor stored externally: `location` (relative to the
    /// model's directory, inside it), `offset` and `length`.
    mutating func externalBytes(_ t: Onnx_TensorProto) throws -> [UInt8] {
        let name = GraphError.quote(t.name)
        var entries: [String: String] = [:]
        for e in t.externalData { entries[e.key] = e.value }
        guard let location = entries["location"], !location.isEmpty else {
            throw GraphError(.onnx(problem: "tensor \(name) has data_location EXTERNAL but no 'location' entry"), file: fileName)
        }
        let parts = location.split(separator: "/", omittingEmptySubsequences: true)
        guard !location.hasPrefix("/"), !parts.contains(".."), !location.contains("\\") else {
            throw GraphError(.onnx(problem: "tensor \(name) external data location \(GraphError.quote(location)) must be a relative path inside the model's directory"),
                             file: fileName)
        }
        if external[location] == nil {
            let path = directory + "/" + location
            do {
                external[location] = try FileIO.readAll(path)
            } catch let e as GraphError {
                throw GraphError(.onnx(problem: "tensor \(name) keeps its data in \(GraphError.quote(location)), which cannot be read beside the model (\(e.kind.message)); copy the .onnx.data file next to the .onnx file"),
                                 file: fileName)
            }
        }
        let data = external[location]!
        func number(_ key: String) throws -> Int? {
            guard let s = entries[key] else { return nil }
            guard let v = Int(s), v >= 0 else {
                throw GraphError(.onnx(problem: "tensor \(name) external data \(key) \(GraphError.quote(s)) is not a non-negative integer"), file: fileName)
            }
            return v
        }
        let offset = try number("offset") ?? 0
        let length = try number("length") ?? (data.count - Swift.min(offset, data.count))
        guard offset <= data.count, length <= data.count - offset else {
            throw GraphError(.onnx(problem: "tensor \(name) external data bytes \(offset)…\(offset + length) lie outside \(GraphError.quote(location)) (\(data.count) bytes); the .onnx.data file does not belong to this model or is truncated"),
                             file: fileName)
        }
        return Array(data[offset..<(offset + length)])
    }

    /// The tensor's values as Doubles (exact for every integer type up to 2^53 and for
    /// floats), with its shape.
    mutating func values(_ t: Onnx_TensorProto) throws -> (shape: [Int], values: [Double]) {
        let name = GraphError.quote(t.name)
        guard let type = ElementType(rawValue: t.dataType) else {
            throw GraphError(.onnx(problem: "tensor \(name) has data type \(t.dataType), which QForge does not read (it reads FLOAT, DOUBLE and the integer types); export it as float32"),
                             file: fileName)
        }
        let count = try ONNXFile.elementCount(t.dims, tensor: t.name)
        let shape = t.dims.map { Int($0) }
        var raw: [UInt8]?
        if t.dataLocation == .external {
            raw = try externalBytes(t)
        } else if t.hasRawData {
            raw = [UInt8](t.rawData)
        }
        if let raw {
            guard raw.count == count * type.byteSize else {
                throw GraphError(.onnx(problem: "tensor \(name) of shape \(shape) needs \(count * type.byteSize) bytes of \(type.name) data, found \(raw.count)"),
                                 file: fileName)
            }
            return (shape, ONNXFile.decode(raw, type, count))
        }
        let values: [Double]
        switch type {
        case .float: values = t.floatData.map(Double.init)
        case .double: values = t.doubleData
        case .int64: values = t.int64Data.map(Double.init)
        case .uint32, .uint64: values = t.uint64Data.map(Double.init)
        case .int32, .int16, .int8, .uint16, .uint8, .bool: values = t.int32Data.map(Double.init)
        }
        guard values.count == count else {
            throw GraphError(.onnx(problem: "tensor \(name) of shape \(shape) holds \(values.count) values, expected \(count)"), file: fileName)
        }
        return (shape, values)
    }

    static func decode(_ raw: [UInt8], _ type: ElementType, _ count: Int) -> [Double] {
        raw.withUnsafeBytes { p -> [Double] in
            func each<T: FixedWidthInteger>(_: T.Type, _ f: (T) -> Double) -> [Double] {
                (0..<count).map { f(T(littleEndian: p.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))) }
            }
            switch type {
            case .float: return each(UInt32.self) { Double(Float(bitPattern: $0)) }
            case .double: return each(UInt64.self) { Double(bitPattern: $0) }
            case .int64: return each(Int64.self) { Double($0) }
            case .uint64: return each(UInt64.self) { Double($0) }
            case .int32: return each(Int32.self) { Double($0) }
            case .uint32: return each(UInt32.self) { Double($0) }
            case .int16: return each(Int16.self) { Double($0) }
            case .uint16: return each(UInt16.self) { Double($0) }
            case .int8: return each(Int8.self) { Double($0) }
            case .uint8, .bool: return each(UInt8.self) { Double($0) }
            }
        }
    }

    /// A tensor as Float32 (weights, scales).
    mutating func tensor(_ t: Onnx_TensorProto) throws -> Tensor {
        // The common case, float32 weights inline: copied as they are.
        if t.dataType == ElementType.float.rawValue, t.dataLocation != .external, t.hasRawData,
           let count = try? ONNXFile.elementCount(t.dims, tensor: t.name), t.rawData.count == count * 4 {
            var out = [Float](repeating: 0, count: count)
            out.withUnsafeMutableBytes { dst in t.rawData.withUnsafeBytes { src in dst.copyMemory(from: src) } }
            if UInt32(1).littleEndian != 1 { out = out.map { Float(bitPattern: $0.bitPattern.byteSwapped) } }
            return Tensor(shape: t.dims.map { Int($0) }, scalars: out)
        }
        let (shape, v) = try values(t)
        return Tensor(shape: shape, scalars: v.map { Float($0) })
    }

    // MARK: Writing

    /// The model's protobuf bytes.
    static func encode(_ model: Onnx_ModelProto) throws -> [UInt8] {
        do {
            return try model.serializedBytes()
        } catch {
            throw GraphError(.onnx(problem: "cannot encode the ONNX model: \(error)"))
        }
    }

    /// A Float32 tensor as an ONNX initializer (raw little-endian data).
    static func tensorProto(_ name: String, _ t: Tensor, shape: [Int]? = nil) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name
        p.dataType = ElementType.float.rawValue
        p.dims = (shape ?? t.shape).map(Int64.init)
        var bytes = [UInt8]()
        bytes.reserveCapacity(t.count * 4)
        for v in t.scalars { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        p.rawData = Data(bytes)
        return p
    }

    /// Integer codes as an INT8, UINT8, INT32 or INT64 initializer (values must fit the type).
    static func intTensorProto(_ name: String, _ values: [Int], shape: [Int], type: ElementType) -> Onnx_TensorProto {
        var p = Onnx_TensorProto()
        p.name = name
        p.dataType = type.rawValue
        p.dims = shape.map(Int64.init)
        switch type {
        case .int8: p.rawData = Data(values.map { UInt8(bitPattern: Int8($0)) })
        case .uint8: p.rawData = Data(values.map { UInt8($0) })
        case .int32: p.int32Data = values.map { Int32($0) }
        default: p.int64Data = values.map(Int64.init)
        }
        return p
    }
}
