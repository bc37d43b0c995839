import Foundation

/// Element types of the IDX format (the third byte of the magic number).
/// Multi-byte types are stored big-endian.
public enum IDXDataType: UInt8, Sendable, CaseIterable {
    case uint8 = 0x08
    case int8 = 0x09
    case int16 = 0x0B
    case int32 = 0x0C
    case float32 = 0x0D
    case float64 = 0x0E

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .uint8, .int8: return 1
        case .int16: return 2
        case .int32, .float32: return 4
        case .float64: return 8
        }
    }

    /// Whether the type holds integers.
    public var isInteger: Bool { self != .float32 && self != .float64 }

    var name: String {
        switch self {
        case .uint8: return "ubyte"
        case .int8: return "sbyte"
        case .int16: return "int16"
        case .int32: return "int32"
        case .float32: return "float32"
        case .float64: return "float64"
        }
    }
}

/// An array read from an IDX file (the MNIST family of formats).
///
/// `values` holds every element converted to `Float`, in row-major order. Integer files (such
/// as label files) can be read back as exact integers with `intValues()`.
public struct IDXArray: Equatable, Sendable {
    /// The element type stored in the file.
    public var dataType: IDXDataType
    /// The dimensions from the header, outermost first.
    public var shape: [Int]
    /// All elements as `Float`, row-major.
    public var values: [Float]
    /// The file the array came from (used in error messages).
    public var path: String
    /// Exact values for int32 files, whose magnitudes can exceed Float's 24-bit mantissa.
    var exactInt32: [Int32]?

    public init(dataType: IDXDataType, shape: [Int], values: [Float], path: String = "") {
        self.dataType = dataType
        self.shape = shape
        self.values = values
        self.path = path
    }

    /// The elements as integers, e.g. class labels.
    ///
    /// Exact for the integer types. Float files are accepted only when every value is a whole
    /// number; otherwise `DataError.invalidValue` names the first offending element.
    public func intValues() throws -> [Int] {
        if let exact = exactInt32 { return exact.map { Int($0) } }
        var out = [Int](repeating: 0, count: values.count)
        for (i, v) in values.enumerated() {
            guard v.isFinite, v == v.rounded(), abs(v) < 9.0e18 else {
                throw DataError.invalidValue(path: path, detail: "element \(i) is \(v), not an integer")
            }
            out[i] = Int(v)
        }
        return out
    }
}

/// The parsed header of an IDX file and its (possibly partial) raw payload.
struct IDXRaw {
    var dataType: IDXDataType
    /// Shape of the payload actually read (the first dimension may be limited).
    var shape: [Int]
    /// The header's first dimension, before any limit.
    var declaredCount: Int
    /// Raw big-endian element bytes.
    var payload: [UInt8]
}

/// Formats a shape as `60000×28×28`.
func formatShape(_ shape: [Int]) -> String {
    shape.isEmpty ? "()" : shape.map(String.init).joined(separator: "×")
}

/// Product of `dims`, or nil on overflow.
func checkedProduct(_ dims: [Int]) -> Int? {
    var p = 1
    for d in dims {
        let (r, overflow) = p.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        p = r
    }
    return p
}

/// Reads an IDX header and payload. With `maxRecords` (< the declared first dimension) only
/// that many leading records are read and the file's total length is not checked.
func readIDXRaw(_ path: String, maxRecords: Int? = nil) throws -> IDXRaw {
    let format = "IDX"
    let reader = try ByteReader(path: path)
    let magic = try reader.read(count: 4)
    if magic.count >= 1, magic[0] != 0 || (magic.count >= 2 && magic[1] != 0) {
        let shown = magic.prefix(2).map { String(format: "0x%02X", $0) }.joined(separator: " ")
        try? reader.close()
        throw DataError.badMagic(path: path, format: format,
                                 detail: "first two bytes are \(shown), expected 0x00 0x00")
    }
    guard magic.count == 4 else {
        try reader.close()  // surfaces a gzip error first, if that is the cause
        throw DataError.truncated(path: path, format: format,
                                  detail: "file has \(magic.count) bytes, the magic number alone needs 4")
    }
    guard let type = IDXDataType(rawValue: magic[2]) else {
        try? reader.close()
        throw DataError.badMagic(path: path, format: format, detail: String(
            format: "unknown type code 0x%02X (known: 0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)",
            magic[2]))
    }
    let ndim = Int(magic[3])
    guard (1...8).contains(ndim) else {
        try? reader.close()
        throw DataError.badHeader(path: path, format: format,
                                  detail: "number of dimensions is \(ndim), expected 1 to 8")
    }
    let dimBytes = try reader.read(count: 4 * ndim)
    guard dimBytes.count == 4 * ndim else {
        try reader.close()
        throw DataError.truncated(path: path, format: format, detail:
            "header declares \(ndim) dimensions (\(4 * ndim) bytes) but the file ends after \(4 + dimBytes.count) bytes")
    }
    var shape: [Int] = []
    for d in 0..<ndim {
        let b = 4 * d
        let v = UInt32(dimBytes[b]) << 24 | UInt32(dimBytes[b + 1]) << 16 | UInt32(dimBytes[b + 2]) << 8 | UInt32(dimBytes[b + 3])
        shape.append(Int(v))
    }
    guard let elementCount = checkedProduct(shape),
          let byteCount = checkedProduct([elementCount, type.byteSize]) else {
        try? reader.close()
        throw DataError.badHeader(path: path, format: format, detail: "dimensions \(formatShape(shape)) are too large")
    }
    let declaredCount = shape[0]
    let describe = { (found: Int) -> String in
        let unit = type == .uint8 ? "" : " \(type.name) elements × \(type.byteSize) bytes"
        return "header says \(formatShape(shape))\(unit) = \(byteCount) bytes of data, found \(found)"
    }

    if let limit = maxRecords, limit >= 0, limit < declaredCount {
        // Partial read: only the first `limit` records.
        var partShape = shape
        partShape[0] = limit
        let partBytes = (byteCount / max(declaredCount, 1)) * limit
        let payload = try reader.read(count: partBytes)
        guard payload.count == partBytes else {
            try reader.close()
            throw DataError.truncated(path: path, format: format, detail: describe(payload.count))
        }
        try? reader.close()  // not at end: a gzip close here reports nothing useful
        return IDXRaw(dataType: type, shape: partShape, declaredCount: declaredCount, payload: payload)
    }

    let payload = try reader.read(count: byteCount)
    guard payload.count == byteCount else {
        try reader.close()
        throw DataError.truncated(path: path, format: format, detail: describe(payload.count))
    }
    // Anything after the data is an error; count it for the message.
    let extra = try reader.readAll().count
    try reader.close()
    if extra > 0 {
        throw DataError.trailingBytes(path: path, format: format,
                                      detail: describe(byteCount + extra) + " (\(extra) extra)")
    }
    return IDXRaw(dataType: type, shape: shape, declaredCount: declaredCount, payload: payload)
}

/// Reads an IDX file (plain or gzip-compressed), e.g. `train-labels-idx1-ubyte.gz`.
///
/// Layout: two zero bytes, a type byte (0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32,
/// 0x0D float32, 0x0E float64), a rank byte (1...8), then one big-endian UInt32 per dimension,
/// then the elements in row-major order, big-endian.
///
/// - Parameter maxRecords: read only this many leading records (entries of the first
///   dimension). When it is smaller than the file's count, the rest of the file is not read,
///   so trailing bytes or a truncated gzip stream after that point go unnoticed.
/// - Throws: `DataError.badMagic` (non-zero first bytes, unknown type code),
///   `.badHeader` (rank 0 or > 8), `.truncated`, `.trailingBytes`, or a file/gzip error.
public func readIDX(_ path: String, maxRecords: Int? = nil) throws -> IDXArray {
    let raw = try readIDXRaw(path, maxRecords: maxRecords)
    let n = raw.payload.count / raw.dataType.byteSize
    var exact: [Int32]?
    let values = raw.payload.withUnsafeBufferPointer { bytes -> [Float] in
        return [Float](unsafeUninitializedCapacity: n) { out, initialized in
            func be(_ i: Int, _ size: Int) -> UInt64 {
                var v: UInt64 = 0
                for k in 0..<size { v = v << 8 | UInt64(bytes[i * size + k]) }
                return v
            }
            switch raw.dataType {
            case .uint8:
                for i in 0..<n { out[i] = Float(bytes[i]) }
            case .int8:
                for i in 0..<n { out[i] = Float(Int8(bitPattern: bytes[i])) }
            case .int16:
                for i in 0..<n { out[i] = Float(Int16(bitPattern: UInt16(be(i, 2)))) }
            case .int32:
                var ints = [Int32](repeating: 0, count: n)
                for i in 0..<n {
                    ints[i] = Int32(bitPattern: UInt32(be(i, 4)))
                    out[i] = Float(ints[i])
                }
                exact = ints
            case .float32:
                for i in 0..<n { out[i] = Float(bitPattern: UInt32(be(i, 4))) }
            case .float64:
                for i in 0..<n { out[i] = Float(Double(bitPattern: be(i, 8))) }
            }
            initialized = n
        }
    }
    var array = IDXArray(dataType: raw.dataType, shape: raw.shape, values: values, path: path)
    array.exactInt32 = exact
    return array
}

/// Encodes an array in IDX format (big-endian), the inverse of `readIDX`. Values are
/// converted to `type` (integers truncated toward zero and clamped to the type's range).
/// Useful for tests and for exporting data in the MNIST layout.
public func encodeIDX(shape: [Int], values: [Float], as type: IDXDataType) -> [UInt8] {
    var out: [UInt8] = [0, 0, type.rawValue, UInt8(truncatingIfNeeded: shape.count)]
    for d in shape { appendBigEndian(&out, UInt64(UInt32(truncatingIfNeeded: d)), bytes: 4) }
    out.reserveCapacity(out.count + values.count * type.byteSize)
    func clamp(_ v: Float, _ lo: Double, _ hi: Double) -> Int64 {
        guard v.isFinite else { return 0 }
        return Int64(min(max(Double(v), lo), hi))
    }
    for v in values {
        switch type {
        case .uint8: out.append(UInt8(clamp(v, 0, 255)))
        case .int8: out.append(UInt8(bitPattern: Int8(clamp(v, -128, 127))))
        case .int16: appendBigEndian(&out, UInt64(UInt16(bitPattern: Int16(clamp(v, -32768, 32767)))), bytes: 2)
        case .int32: appendBigEndian(&out, UInt64(UInt32(bitPattern: Int32(clamp(v, -2147483648, 2147483647)))), bytes: 4)
        case .float32: appendBigEndian(&out, UInt64(v.bitPattern), bytes: 4)
        case .float64: appendBigEndian(&out, Double(v).bitPattern, bytes: 8)
        }
    }
    return out
}

private func appendBigEndian(_ out: inout [UInt8], _ v: UInt64, bytes: Int) {
    for k in stride(from: bytes - 1, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
}
