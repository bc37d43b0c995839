import QForgeTensor

// Safetensors (https://github.com/huggingface/safetensors) container:
//
//     [8 bytes]  N, little-endian UInt64: the header length
//     [N bytes]  UTF-8 JSON object, optionally padded with trailing spaces:
//                {"__metadata__": {"key": "value", ...},
//                 "tensor.name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//     [rest]     the data section; offsets are relative to its start, little-endian,
//                row-major, tensors back to back with no gaps and nothing after the last.

/// Element types of the safetensors format that this reader understands.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// True for the integer and boolean types (readable as `IntTensor`).
    public var isInteger: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: return false
        default: return true
        }
    }
}

/// One tensor's header entry, validated.
public struct SafetensorsTensorInfo: Equatable, Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range in the data section (`data_offsets`).
    public let begin: Int
    public let end: Int

    /// Number of elements (the product of `shape`; 1 for a scalar).
    public var elementCount: Int { (end - begin) / dtype.byteSize }
}

/// A parsed and fully validated safetensors file held in memory.
///
/// Creating one checks the whole container (see `GraphError.Kind` for each failure); the
/// accessors then convert tensors on demand, so a file whose header is fine cannot fail later
/// except for a missing name or an integer accessor used on a float tensor.
public struct SafetensorsFile: Sendable {
    /// The path or label used in error messages.
    public let fileName: String
    /// N, the header length in bytes (a multiple of 8 for files this writer produces).
    public let headerLength: Int
    /// The string-to-string `__metadata__` (empty when absent or null).
    public let metadata: [String: String]
    /// Every tensor entry by name.
    public let infos: [String: SafetensorsTensorInfo]

    private let bytes: [UInt8]
    private let dataStart: Int

    /// Tensor names in byte order of their UTF-8.
    public var tensorNames: [String] { Safetensors.sortedNames(infos.keys) }

    /// Reads and validates the file at `path`.
    public init(path: String) throws {
        try self.init(bytes: try FileIO.readAll(path), fileName: path)
    }

    /// Validates `bytes` as a safetensors file; `fileName` labels the errors.
    public init(bytes: [UInt8], fileName: String = "<memory>") throws {
        func fail(_ kind: GraphError.Kind) -> GraphError { GraphError(kind, file: fileName) }

        guard bytes.count >= 8 else { throw fail(.fileTooShort(size: bytes.count)) }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(bytes.count - 8) else {
            throw fail(.headerLengthExceedsFile(headerLength: n, fileSize: bytes.count))
        }
        let headerLength = Int(n)
        let header = Array(bytes[8..<(8 + headerLength)])
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart

        // UTF-8 check: decoding repairs invalid sequences, so a lossless round trip means valid.
        guard String(decoding: header, as: UTF8.self).utf8.elementsEqual(header) else { throw fail(.headerNotUTF8) }

        let root: HeaderJSON.Value
        do {
            root = try HeaderJSON.parse(header)
        } catch let e as HeaderJSON.DuplicateKey {
            throw fail(.duplicateHeaderKey(e.key))
        } catch let e as HeaderJSON.ParseError {
            throw fail(.headerNotJSON(detail: e.description))
        }
        guard case .object(let members) = root else { throw fail(.headerNotObject(found: root.kindDescription)) }
        guard header.first == UInt8(ascii: "{") else {
            throw fail(.headerNotObject(found: "whitespace before '{'"))
        }

        var metadata: [String: String] = [:]
        var infos: [String: SafetensorsTensorInfo] = [:]
        for (key, value) in members {
            if key == "__metadata__" {
                switch value {
                case .null: break
                case .object(let pairs):
                    for (k, v) in pairs {
                        guard case .string(let s) = v else {
                            throw fail(.metadataValueNotString(key: k, found: v.kindDescription))
                        }
                        metadata[k] = s
                    }
                default:
                    throw fail(.metadataNotObject(found: value.kindDescription))
                }
                continue
            }
            let info = try SafetensorsFile.parseEntry(name: key, value: value, dataLength: dataLength, fail: fail)
            guard infos.updateValue(info, forKey: key) == nil else { throw fail(.duplicateHeaderKey(key)) }
        }

        // Layout: sorted by offsets, the tensors must tile the data section exactly.
        let ordered = infos.values.sorted {
            ($0.begin, $0.end) != ($1.begin, $1.end)
                ? ($0.begin, $0.end) < ($1.begin, $1.end)
                : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
        }
        var expected = 0
        var previous = ""
        for info in ordered {
            if info.begin < expected {
                throw fail(.overlappingTensors(tensor: info.name, begin: info.begin, previous: previous, previousEnd: expected))
            }
            if info.begin > expected {
                throw fail(.gapBeforeTensor(tensor: info.name, begin: info.begin, expectedBegin: expected))
            }
            // Empty tensors occupy no bytes; they never "contain" the next tensor's start.
            if info.end > info.begin { previous = info.name }
            expected = info.end
        }
        guard expected == dataLength else { throw fail(.dataLengthMismatch(dataLength: dataLength, tensorsEnd: expected)) }

        self.fileName = fileName
        self.headerLength = headerLength
        self.metadata = metadata
        self.infos = infos
        self.bytes = bytes
        self.dataStart = dataStart
    }

    private static func parseEntry(name: String, value: HeaderJSON.Value, dataLength: Int,
                                   fail: (GraphError.Kind) -> GraphError) throws -> SafetensorsTensorInfo {
        guard case .object(let fields) = value else { throw fail(.entryNotObject(tensor: name, found: value.kindDescription)) }
        func field(_ key: String) throws -> HeaderJSON.Value {
            guard let v = fields.first(where: { $0.key == key })?.value else { throw fail(.missingField(tensor: name, field: key)) }
            return v
        }
        let dtypeValue = try field("dtype")
        let shapeValue = try field("shape")
        let offsetsValue = try field("data_offsets")

        guard case .string(let dtypeName) = dtypeValue else {
            throw fail(.invalidField(tensor: name, field: "dtype", problem: "must be a string, found \(dtypeValue.kindDescription)"))
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else { throw fail(.unknownDType(tensor: name, dtype: dtypeName)) }

        guard case .array(let dims) = shapeValue else {
            throw fail(.invalidField(tensor: name, field: "shape",
                                     problem: "must be an array of non-negative integers, found \(shapeValue.kindDescription)"))
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (i, d) in dims.enumerated() {
            guard let v = d.nonNegativeInt else {
                throw fail(.invalidField(tensor: name, field: "shape",
                                         problem: "[\(i)] must be a non-negative integer, found \(d.kindDescription)"))
            }
            shape.append(v)
        }

        guard case .array(let offsets) = offsetsValue, offsets.count == 2 else {
            throw fail(.invalidField(tensor: name, field: "data_offsets",
                                     problem: "must be [begin, end], found \(offsetsValue.kindDescription)"))
        }
        guard let begin = offsets[0].nonNegativeInt, let end = offsets[1].nonNegativeInt else {
            throw fail(.invalidField(tensor: name, field: "data_offsets",
                                     problem: "must be two non-negative integers that fit in 64 bits"))
        }

        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail(.shapeOverflow(tensor: name, shape: shape)) }
            count = product
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw fail(.shapeOverflow(tensor: name, shape: shape)) }

        guard begin <= end, end <= dataLength else {
            throw fail(.offsetsOutOfRange(tensor: name, begin: begin, end: end, dataLength: dataLength))
        }
        guard end - begin == byteCount else {
            throw fail(.sizeMismatch(tensor: name, shape: shape, dtype: dtype.rawValue,
                                     expectedBytes: byteCount, actualBytes: end - begin))
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    // MARK: Accessors

    /// The header entry of `name`.
    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let info = infos[name] else { throw GraphError(.tensorNotFound(name: name), file: fileName) }
        return info
    }

    /// Tensor `name` converted to Float32 (F64 and the integer types round to nearest;
    /// BOOL reads as 0 or 1).
    public func tensor(_ name: String) throws -> Tensor {
        let info = try info(name)
        let n = info.elementCount
        let base = dataStart + info.begin
        return bytes.withUnsafeBytes { raw in
            Tensor(shape: info.shape) { out in
                func each(_ convert: (Int) -> Float) { for i in 0..<n { out[i] = convert(base + i * info.dtype.byteSize) } }
                switch info.dtype {
                case .f32:
                    #if _endian(little)
                    UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[base..<(base + 4 * n)]))
                    #else
                    each { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: UInt32.self))) }
                    #endif
                case .f64: each { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: UInt64.self)))) }
                case .f16: each { Safetensors.halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: UInt16.self))) }
                case .bf16: each { Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: UInt16.self))) << 16) }
                case .i64: each { Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: Int64.self))) }
                case .i32: each { Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: Int32.self))) }
                case .i16: each { Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: Int16.self))) }
                case .i8: each { Float(Int8(bitPattern: raw[$0])) }
                case .u64: each { Float(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: UInt64.self))) }
                case .u32: each { Float(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: UInt32.self))) }
                case .u16: each { Float(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: UInt16.self))) }
                case .u8: each { Float(raw[$0]) }
                case .bool: each { raw[$0] == 0 ? 0 : 1 }
                }
            }
        }
    }

    /// Tensor `name` as integers, for the integer and BOOL dtypes (BOOL reads as 0 or 1).
    /// Floating-point dtypes are an error rather than a silent rounding.
    public func intTensor(_ name: String) throws -> IntTensor {
        let info = try info(name)
        guard info.dtype.isInteger else {
            throw GraphError(.notIntegerDType(tensor: name, dtype: info.dtype.rawValue), file: fileName)
        }
        let n = info.elementCount
        let size = info.dtype.byteSize
        let base = dataStart + info.begin
        var values = [Int](repeating: 0, count: n)
        var tooLarge: UInt64?
        bytes.withUnsafeBytes { raw in
            for i in 0..<n {
                let at = base + i * size
                switch info.dtype {
                case .i64: values[i] = Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int64.self)))
                case .i32: values[i] = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int32.self)))
                case .i16: values[i] = Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int16.self)))
                case .i8: values[i] = Int(Int8(bitPattern: raw[at]))
                case .u64:
                    let v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))
                    if let exact = Int(exactly: v) { values[i] = exact } else if tooLarge == nil { tooLarge = v }
                case .u32: values[i] = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                case .u16: values[i] = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                case .u8: values[i] = Int(raw[at])
                case .bool: values[i] = raw[at] == 0 ? 0 : 1
                case .f64, .f32, .f16, .bf16: break
                }
            }
        }
        if let tooLarge { throw GraphError(.integerOutOfRange(tensor: name, value: tooLarge), file: fileName) }
        return IntTensor(shape: info.shape, scalars: values)
    }

    /// Every tensor, converted to Float32.
    public func tensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for name in infos.keys { out[name] = try tensor(name) }
        return out
    }
}

/// Reading and writing safetensors files.
public enum Safetensors {
    /// Reads and validates the file at `path`.
    public static func read(_ path: String) throws -> SafetensorsFile {
        try SafetensorsFile(path: path)
    }

    /// Writes `tensors` as F32 and `intTensors` as I64, with `metadata` as `__metadata__`.
    ///
    /// Tensors are laid out in byte order of their UTF-8 names; the header is padded with
    /// spaces to a multiple of 8 bytes so the data section is 8-byte aligned. Names are
    /// checked before anything touches the disk, and the file is written to a temporary
    /// sibling and renamed over `path`, so a failed write leaves an existing file intact.
    public static func write(tensors: [String: Tensor], intTensors: [String: IntTensor] = [:],
                             metadata: [String: String] = [:], to path: String) throws {
        let plan: Plan
        do {
            plan = try Plan(tensors: tensors, intTensors: intTensors, metadata: metadata)
        } catch let error as GraphError {
            throw error.inFile(path)
        }
        try FileIO.replaceAtomically(path) { sink in try plan.emit(sink) }
    }

    /// The bytes `write` would put in the file.
    public static func encode(tensors: [String: Tensor], intTensors: [String: IntTensor] = [:],
                              metadata: [String: String] = [:]) throws -> [UInt8] {
        let plan = try Plan(tensors: tensors, intTensors: intTensors, metadata: metadata)
        var out: [UInt8] = []
        out.reserveCapacity(plan.totalSize)
        try plan.emit { out.append(contentsOf: $0) }
        return out
    }

    /// Names in byte order of their UTF-8 (the layout order of the writer).
    static func sortedNames<S: Sequence>(_ names: S) -> [String] where S.Element == String {
        names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// IEEE 754 binary16 to binary32 (exact: every half is a float).
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign: Float = (h & 0x8000) != 0 ? -1 : 1
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        switch exponent {
        case 0: return sign * Float(mantissa) * 0x1p-24
        case 31:
            let bits = UInt32(h & 0x8000) << 16 | 0x7F80_0000 | mantissa << 13
            return Float(bitPattern: bits)
        default:
            let bits = UInt32(h & 0x8000) << 16 | UInt32(exponent + 112) << 23 | mantissa << 13
            return Float(bitPattern: bits)
        }
    }

    /// What the writer will emit: the padded header and the tensors in layout order.
    struct Plan {
        enum Item {
            case float(Tensor)
            case int(IntTensor)
        }
        var header: [UInt8]
        var items: [Item]
        var totalSize: Int

        init(tensors: [String: Tensor], intTensors: [String: IntTensor], metadata: [String: String]) throws {
            for name in Safetensors.sortedNames(Array(tensors.keys) + Array(intTensors.keys)) {
                if name.isEmpty { throw GraphError(.invalidTensorName(name: name, problem: "names must not be empty")) }
                if name == "__metadata__" {
                    throw GraphError(.invalidTensorName(name: name, problem: "the name is reserved for the metadata"))
                }
                if tensors[name] != nil && intTensors[name] != nil { throw GraphError(.duplicateTensorName(name)) }
            }
            var entries: [String] = []
            if !metadata.isEmpty {
                let pairs = Safetensors.sortedNames(metadata.keys).map {
                    HeaderJSON.quoted($0) + ":" + HeaderJSON.quoted(metadata[$0] ?? "")
                }
                entries.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
            }
            var items: [Item] = []
            var offset = 0
            for name in Safetensors.sortedNames(Array(tensors.keys) + Array(intTensors.keys)) {
                let dtype: String, shape: [Int], byteCount: Int
                if let t = tensors[name] {
                    (dtype, shape, byteCount) = ("F32", t.shape, t.count * 4)
                    items.append(.float(t))
                } else if let t = intTensors[name] {
                    (dtype, shape, byteCount) = ("I64", t.shape, t.count * 8)
                    items.append(.int(t))
                } else {
                    continue
                }
                let dims = shape.map(String.init).joined(separator: ",")
                entries.append(HeaderJSON.quoted(name) + ":{\"dtype\":\"\(dtype)\",\"shape\":[\(dims)],"
                               + "\"data_offsets\":[\(offset),\(offset + byteCount)]}")
                offset += byteCount
            }
            var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
            header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
            self.header = header
            self.items = items
            self.totalSize = 8 + header.count + offset
        }

        func emit(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try sink($0) }
            try header.withUnsafeBytes { try sink($0) }
            for item in items {
                switch item {
                case .float(let t):
                    #if _endian(little)
                    try t.withUnsafeBufferPointer { try sink(UnsafeRawBufferPointer($0)) }
                    #else
                    let le = t.scalars.map { $0.bitPattern.littleEndian }
                    try le.withUnsafeBytes { try sink($0) }
                    #endif
                case .int(let t):
                    // Converted in chunks so a large tensor does not need a second full copy.
                    let chunk = 1 << 16
                    var start = 0
                    while start < t.count {
                        let end = Swift.min(start + chunk, t.count)
                        let le = t.scalars[start..<end].map { Int64($0).littleEndian }
                        try le.withUnsafeBytes { try sink($0) }
                        start = end
                    }
                }
            }
        }
    }
}
