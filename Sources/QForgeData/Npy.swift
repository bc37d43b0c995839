import Foundation
import QForgeTensor

/// The elements of a `.npy` array, in the file's element type.
public enum NpyData: Equatable, Sendable {
    case float32([Float])
    case uint8([UInt8])
    case int64([Int64])

    /// Number of elements.
    public var count: Int {
        switch self {
        case .float32(let v): return v.count
        case .uint8(let v): return v.count
        case .int64(let v): return v.count
        }
    }
}

/// An array read from a NumPy `.npy` file (C order, little-endian).
public struct NpyArray: Equatable, Sendable {
    /// Dimensions, outermost first; `[]` for a 0-d array.
    public var shape: [Int]
    /// The elements in row-major order.
    public var data: NpyData
    /// The file the array came from ("" when built in memory); used in error messages.
    public var path: String

    public init(shape: [Int], data: NpyData, path: String = "") {
        self.shape = shape
        self.data = data
        self.path = path
    }

    /// The elements as a Float32 tensor of the same shape (uint8 and int64 are converted
    /// numerically; int64 magnitudes above 2^24 round to the nearest Float).
    public func asTensor() -> Tensor {
        Tensor(shape: shape) { out in
            switch data {
            case .float32(let v): for i in 0..<out.count { out[i] = v[i] }
            case .uint8(let v): for i in 0..<out.count { out[i] = Float(v[i]) }
            case .int64(let v): for i in 0..<out.count { out[i] = Float(v[i]) }
            }
        }
    }

    /// The elements as integers. Float32 arrays are accepted only when every element is a
    /// whole number; otherwise `DataError.invalidValue` names the first offending element.
    public func asIntTensor() throws -> IntTensor {
        switch data {
        case .uint8(let v): return IntTensor(shape: shape, scalars: v.map { Int($0) })
        case .int64(let v): return IntTensor(shape: shape, scalars: v.map { Int($0) })
        case .float32(let v):
            var out = [Int](repeating: 0, count: v.count)
            for (i, x) in v.enumerated() {
                guard x.isFinite, x == x.rounded(), abs(x) < 9.0e18 else {
                    throw DataError.invalidValue(path: path, detail: "element \(i) is \(x), not an integer")
                }
                out[i] = Int(x)
            }
            return IntTensor(shape: shape, scalars: out)
        }
    }
}

// MARK: - Reading

private let npyMagic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

/// Reads a `.npy` file (format versions 1.0, 2.0 and 3.0; gzip-compressed files are
/// decompressed transparently).
///
/// Supported element types: float32 `'<f4'`, uint8 `'|u1'` (also `'<u1'`, `'>u1'`) and int64
/// `'<i8'`. Fortran-ordered arrays are rejected unless at most one dimension exceeds 1 (then
/// the two orders coincide).
///
/// - Throws: `DataError.badMagic`, `.badHeader` (unsupported version, unparsable dictionary,
///   missing key, bad shape), `.fortranOrder`, `.unsupportedDtype`, `.bigEndian`,
///   `.truncated` / `.trailingBytes` (data shorter / longer than the shape says), or a
///   file error.
public func readNpy(_ path: String) throws -> NpyArray {
    let format = "NumPy .npy"
    let bytes = try readFileBytes(path)
    guard bytes.count >= 6, Array(bytes[0..<6]) == npyMagic else {
        let shown = bytes.prefix(6).map { String(format: "%02x", $0) }.joined(separator: " ")
        throw DataError.badMagic(path: path, format: format,
                                 detail: "starts with [\(shown)], expected 93 4e 55 4d 50 59 (\"\\x93NUMPY\")")
    }
    guard bytes.count >= 10 else {
        throw DataError.truncated(path: path, format: format, detail: "file ends after \(bytes.count) bytes, inside the version and header length")
    }
    let major = bytes[6], minor = bytes[7]
    let headerLength: Int, headerStart: Int
    switch (major, minor) {
    case (1, 0):
        headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        headerStart = 10
    case (2, 0), (3, 0):
        guard bytes.count >= 12 else {
            throw DataError.truncated(path: path, format: format, detail: "file ends after \(bytes.count) bytes, inside the header length")
        }
        headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        headerStart = 12
    default:
        throw DataError.badHeader(path: path, format: format,
                                  detail: "format version \(major).\(minor) not supported (supported: 1.0, 2.0, 3.0)")
    }
    let dataStart = headerStart + headerLength
    guard dataStart <= bytes.count else {
        throw DataError.truncated(path: path, format: format, detail:
            "header length is \(headerLength) bytes but the file ends \(bytes.count - headerStart) bytes after it starts")
    }
    // v1/v2 headers are latin-1, v3 UTF-8; the keys and values we accept are ASCII either way.
    let headerText = major == 3 ? String(decoding: bytes[headerStart..<dataStart], as: UTF8.self)
                                : String(bytes[headerStart..<dataStart].map { Character(Unicode.Scalar($0)) })
    let header: NpyHeader
    do {
        header = try NpyHeader(parsing: headerText)
    } catch let e as NpyHeaderParseError {
        throw DataError.badHeader(path: path, format: format, detail: e.message)
    }

    // Element type.
    let itemSize: Int
    enum Kind { case f4, u1, i8 }
    let kind: Kind
    switch header.descr {
    case "<f4": kind = .f4; itemSize = 4
    case "|u1", "<u1", ">u1", "=u1": kind = .u1; itemSize = 1
    case "<i8": kind = .i8; itemSize = 8
    case ">f4", ">i8":
        throw DataError.bigEndian(path: path, dtype: header.descr)
    default:
        throw DataError.unsupportedDtype(path: path, dtype: header.descr)
    }
    if header.fortranOrder && header.shape.filter({ $0 > 1 }).count > 1 {
        throw DataError.fortranOrder(path: path)
    }
    guard let count = checkedProduct(header.shape), let byteCount = checkedProduct([count, itemSize]) else {
        throw DataError.badHeader(path: path, format: format, detail: "shape \(header.shape) is too large")
    }
    let found = bytes.count - dataStart
    let describe = "shape \(pythonTuple(header.shape)) of '\(header.descr)' needs \(byteCount) bytes of data, found \(found)"
    if found < byteCount { throw DataError.truncated(path: path, format: format, detail: describe) }
    if found > byteCount {
        throw DataError.trailingBytes(path: path, format: format, detail: describe + " (\(found - byteCount) extra)")
    }

    let data: NpyData = bytes.withUnsafeBytes { raw in
        // `bytes` holds at least the 10-byte preamble, so it has a base address.
        guard let base = raw.baseAddress else { return .uint8([]) }
        let src = base + dataStart
        switch kind {
        case .u1:
            return .uint8(Array(UnsafeBufferPointer(start: src.assumingMemoryBound(to: UInt8.self), count: count)))
        case .f4:
            return .float32([Float](unsafeUninitializedCapacity: count) { out, n in
                for i in 0..<count {
                    out[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
                n = count
            })
        case .i8:
            return .int64([Int64](unsafeUninitializedCapacity: count) { out, n in
                for i in 0..<count {
                    out[i] = Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                }
                n = count
            })
        }
    }
    return NpyArray(shape: header.shape, data: data, path: path)
}

// MARK: - Writing

/// Writes `t` as a float32 (`'<f4'`) `.npy` file that `numpy.load` reads back.
public func writeNpy(_ t: Tensor, to path: String) throws {
    var bytes = npyHeaderBytes(descr: "<f4", shape: t.shape)
    bytes.reserveCapacity(bytes.count + 4 * t.count)
    t.withUnsafeBufferPointer { buf in
        for v in buf { appendLittleEndian(&bytes, UInt64(v.bitPattern), size: 4) }
    }
    try writeFileBytes(bytes, to: path)
}

/// Writes `t` as an int64 (`'<i8'`) `.npy` file that `numpy.load` reads back.
public func writeNpy(_ t: IntTensor, to path: String) throws {
    var bytes = npyHeaderBytes(descr: "<i8", shape: t.shape)
    bytes.reserveCapacity(bytes.count + 8 * t.count)
    for v in t.scalars { appendLittleEndian(&bytes, UInt64(bitPattern: Int64(v)), size: 8) }
    try writeFileBytes(bytes, to: path)
}

private func appendLittleEndian(_ out: inout [UInt8], _ v: UInt64, size: Int) {
    for k in 0..<size { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
}

/// `(3,)`, `(2, 3)`, `()` — Python's tuple spelling.
func pythonTuple(_ shape: [Int]) -> String {
    shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
}

/// Magic, version, header length and the header dictionary, padded with spaces and ending
/// in '\n' so the data starts at a multiple of 64 bytes (as numpy does). Version 1.0 unless
/// the header needs more than 65535 bytes, then 2.0.
func npyHeaderBytes(descr: String, shape: [Int]) -> [UInt8] {
    let dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(pythonTuple(shape)), }"
    func build(prefix: Int) -> String {
        let unpadded = prefix + dict.utf8.count + 1
        let pad = (64 - unpadded % 64) % 64
        return dict + String(repeating: " ", count: pad) + "\n"
    }
    var header = build(prefix: 10)
    var out = npyMagic
    if header.utf8.count <= 0xFFFF {
        out += [1, 0]
        appendLittleEndian(&out, UInt64(header.utf8.count), size: 2)
    } else {
        header = build(prefix: 12)
        out += [2, 0]
        appendLittleEndian(&out, UInt64(header.utf8.count), size: 4)
    }
    out += Array(header.utf8)
    return out
}

// MARK: - Header dictionary parser

struct NpyHeaderParseError: Error { let message: String }

/// The three entries of a `.npy` header: a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
struct NpyHeader {
    var descr: String
    var fortranOrder: Bool
    var shape: [Int]

    /// Python literal values that can appear in a header.
    indirect enum Value {
        case string(String)
        case bool(Bool)
        case int(Int)
        case none
        case sequence([Value])
        case dict([(String, Value)])
    }

    init(parsing text: String) throws {
        var parser = LiteralParser(text: Array(text.unicodeScalars))
        let value = try parser.parseValue()
        parser.skipSpace()
        guard parser.atEnd else { throw parser.error("unexpected text after the dictionary") }
        guard case .dict(let entries) = value else {
            throw NpyHeaderParseError(message: "header is not a dictionary: \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        func entry(_ key: String) throws -> Value {
            guard let v = entries.last(where: { $0.0 == key })?.1 else {
                throw NpyHeaderParseError(message: "header dictionary has no '\(key)' key")
            }
            return v
        }
        switch try entry("descr") {
        case .string(let s): descr = s
        case let other: descr = Self.render(other)  // e.g. a structured dtype: reported as unsupported
        }
        guard case .bool(let f) = try entry("fortran_order") else {
            throw NpyHeaderParseError(message: "'fortran_order' must be True or False")
        }
        fortranOrder = f
        guard case .sequence(let dims) = try entry("shape") else {
            throw NpyHeaderParseError(message: "'shape' must be a tuple of non-negative integers")
        }
        shape = try dims.map {
            guard case .int(let d) = $0, d >= 0 else {
                throw NpyHeaderParseError(message: "'shape' must be a tuple of non-negative integers")
            }
            return d
        }
    }

    static func render(_ v: Value) -> String {
        switch v {
        case .string(let s): return "'\(s)'"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .none: return "None"
        case .sequence(let items): return "[" + items.map(render).joined(separator: ", ") + "]"
        case .dict(let e): return "{" + e.map { "'\($0.0)': \(render($0.1))" }.joined(separator: ", ") + "}"
        }
    }
}

/// A small recursive-descent parser for the Python literals used in `.npy` headers.
private struct LiteralParser {
    let text: [Unicode.Scalar]
    var pos = 0

    var atEnd: Bool { pos >= text.count }

    func error(_ what: String) -> NpyHeaderParseError {
        NpyHeaderParseError(message: "\(what) at character \(pos + 1) of header '\(String(String.UnicodeScalarView(text)).trimmingCharacters(in: .whitespacesAndNewlines))'")
    }

    mutating func skipSpace() {
        while pos < text.count, text[pos].properties.isWhitespace { pos += 1 }
    }

    mutating func expect(_ c: Unicode.Scalar) throws {
        skipSpace()
        guard pos < text.count, text[pos] == c else { throw error("expected '\(c)'") }
        pos += 1
    }

    mutating func peek() -> Unicode.Scalar? {
        skipSpace()
        return pos < text.count ? text[pos] : nil
    }

    mutating func parseValue(depth: Int = 0) throws -> NpyHeader.Value {
        guard depth < 32 else { throw error("nesting too deep") }
        guard let c = peek() else { throw error("unexpected end of header") }
        switch c {
        case "{":
            pos += 1
            var entries: [(String, NpyHeader.Value)] = []
            while true {
                if peek() == "}" { pos += 1; break }
                guard case .string(let key) = try parseValue(depth: depth + 1) else { throw error("dictionary key must be a string") }
                try expect(":")
                entries.append((key, try parseValue(depth: depth + 1)))
                if peek() == "," { pos += 1; continue }
                try expect("}")
                break
            }
            return .dict(entries)
        case "(", "[":
            let close: Unicode.Scalar = c == "(" ? ")" : "]"
            pos += 1
            var items: [NpyHeader.Value] = []
            while true {
                if peek() == close { pos += 1; break }
                items.append(try parseValue(depth: depth + 1))
                if peek() == "," { pos += 1; continue }
                try expect(close)
                break
            }
            return .sequence(items)
        case "'", "\"":
            pos += 1
            var s = String.UnicodeScalarView()
            while pos < text.count, text[pos] != c {
                if text[pos] == "\\", pos + 1 < text.count { pos += 1 }
                s.append(text[pos])
                pos += 1
            }
            guard pos < text.count else { throw error("unterminated string") }
            pos += 1
            return .string(String(s))
        default:
            var word = String.UnicodeScalarView()
            while pos < text.count, text[pos].properties.isAlphabetic || ("0"..."9").contains(text[pos])
                    || text[pos] == "-" || text[pos] == "+" || text[pos] == "_" {
                word.append(text[pos])
                pos += 1
            }
            var w = String(word)
            switch w {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                if w.hasSuffix("L") || w.hasSuffix("l") { w.removeLast() }  // Python 2 long literals
                guard let i = Int(w) else { throw error(w.isEmpty ? "unexpected character '\(c)'" : "cannot parse '\(w)'") }
                return .int(i)
            }
        }
    }
}
