/// A small, strict JSON reader and writer for the safetensors header.
///
/// The header is the part of a model file an attacker controls most directly, so it gets
/// its own parser rather than Foundation's: it reports the byte where parsing failed,
/// rejects duplicate keys, keeps number literals as written (so `1.0` is not silently an
/// integer offset), bounds nesting depth, and never traps on any input.
enum HeaderJSON {
    indirect enum Value {
        case null
        case bool(Bool)
        /// The literal as written, validated against the JSON number grammar.
        case number(String)
        case string(String)
        case array([Value])
        /// Members in file order; keys are unique (the parser rejects duplicates).
        case object([(key: String, value: Value)])

        /// "a JSON array", "the string 'x'", … for error messages.
        var kindDescription: String {
            switch self {
            case .null: return "null"
            case .bool(let b): return "the boolean \(b)"
            case .number(let n): return "the number \(n.count > 40 ? String(n.prefix(40)) + "…" : n)"
            case .string(let s): return "the string \(GraphError.quote(s))"
            case .array: return "a JSON array"
            case .object: return "a JSON object"
            }
        }

        /// The value as a non-negative Int if it is a plain integer literal that fits.
        var nonNegativeInt: Int? {
            guard case .number(let literal) = self,
                  !literal.isEmpty, literal.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            return Int(literal)
        }
    }

    struct ParseError: Error {
        var message: String
        var offset: Int
        var description: String { "\(message) at byte \(offset) of the header" }
    }

    /// Deepest nesting accepted; a safetensors header needs 3.
    static let maxDepth = 64

    /// Parses one JSON value followed only by whitespace.
    static func parse(_ bytes: [UInt8]) throws -> Value {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.index < bytes.count {
            throw ParseError(message: "unexpected \(parser.describeCurrent()) after the top-level value",
                             offset: parser.index)
        }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        func describeCurrent() -> String {
            guard index < bytes.count else { return "end of header" }
            let b = bytes[index]
            if b >= 0x21 && b < 0x7F { return "character '\(Character(UnicodeScalar(b)))'" }
            return "byte 0x\(String(b, radix: 16))"
        }

        func fail(_ message: String) -> ParseError { ParseError(message: message, offset: index) }

        mutating func parseValue(depth: Int) throws -> Value {
            guard depth <= HeaderJSON.maxDepth else { throw fail("nesting deeper than \(HeaderJSON.maxDepth)") }
            guard index < bytes.count else { throw fail("unexpected end of header, expected a value") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try parseObject(depth: depth)
            case UInt8(ascii: "["): return try parseArray(depth: depth)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try expectLiteral("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
            default: throw fail("unexpected \(describeCurrent()), expected a value")
            }
        }

        mutating func expectLiteral(_ word: String) throws {
            for expected in word.utf8 {
                guard index < bytes.count, bytes[index] == expected else { throw fail("invalid literal, expected '\(word)'") }
                index += 1
            }
        }

        mutating func parseObject(depth: Int) throws -> Value {
            index += 1  // {
            var members: [(key: String, value: Value)] = []
            var seen = Set<String>()
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw fail("unexpected \(describeCurrent()), expected a string key")
                }
                let keyOffset = index
                let key = try parseString()
                guard seen.insert(key).inserted else {
                    throw DuplicateKey(key: key, offset: keyOffset)
                }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else {
                    throw fail("unexpected \(describeCurrent()), expected ':' after a key")
                }
                index += 1
                skipWhitespace()
                let value = try parseValue(depth: depth + 1)
                members.append((key, value))
                skipWhitespace()
                guard index < bytes.count else { throw fail("unexpected end of header inside an object") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                throw fail("unexpected \(describeCurrent()), expected ',' or '}'")
            }
        }

        mutating func parseArray(depth: Int) throws -> Value {
            index += 1  // [
            var elements: [Value] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(elements) }
            while true {
                skipWhitespace()
                elements.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else { throw fail("unexpected end of header inside an array") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(elements) }
                throw fail("unexpected \(describeCurrent()), expected ',' or ']'")
            }
        }

        /// Parses a number literal per RFC 8259 and returns its text.
        mutating func parseNumber() throws -> String {
            let start = index
            func digits() -> Int {
                var n = 0
                while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 { index += 1; n += 1 }
                return n
            }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 else {
                throw fail("invalid number, expected a digit")
            }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
                if index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                    throw fail("invalid number, leading zero")
                }
            } else {
                _ = digits()
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw fail("invalid number, expected a digit after '.'") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                guard digits() > 0 else { throw fail("invalid number, expected a digit in the exponent") }
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        /// Parses a string literal (the header is already known to be valid UTF-8).
        mutating func parseString() throws -> String {
            index += 1  // opening quote
            var out = String.UnicodeScalarView()
            var runStart = index
            func flushRun(_ end: Int) {
                if end > runStart {
                    out.append(contentsOf: String(decoding: bytes[runStart..<end], as: UTF8.self).unicodeScalars)
                }
            }
            while true {
                guard index < bytes.count else { throw fail("unexpected end of header inside a string") }
                let b = bytes[index]
                if b == UInt8(ascii: "\"") {
                    flushRun(index)
                    index += 1
                    return String(out)
                }
                if b < 0x20 { throw fail("unescaped control character 0x\(String(b, radix: 16)) in a string") }
                if b != UInt8(ascii: "\\") { index += 1; continue }
                flushRun(index)
                index += 1
                guard index < bytes.count else { throw fail("unexpected end of header in an escape") }
                let e = bytes[index]
                index += 1
                switch e {
                case UInt8(ascii: "\""): out.append("\"")
                case UInt8(ascii: "\\"): out.append("\\")
                case UInt8(ascii: "/"): out.append("/")
                case UInt8(ascii: "b"): out.append("\u{08}")
                case UInt8(ascii: "f"): out.append("\u{0C}")
                case UInt8(ascii: "n"): out.append("\n")
                case UInt8(ascii: "r"): out.append("\r")
                case UInt8(ascii: "t"): out.append("\t")
                case UInt8(ascii: "u"):
                    let first = try hex4()
                    var scalarValue = UInt32(first)
                    if (0xD800..<0xDC00).contains(first) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate \\u\(String(first, radix: 16)) in a string")
                        }
                        index += 2
                        let second = try hex4()
                        guard (0xDC00..<0xE000).contains(second) else {
                            throw fail("invalid low surrogate \\u\(String(second, radix: 16)) in a string")
                        }
                        scalarValue = 0x10000 + ((UInt32(first) - 0xD800) << 10) + (UInt32(second) - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(first) {
                        throw fail("unpaired surrogate \\u\(String(first, radix: 16)) in a string")
                    }
                    guard let scalar = Unicode.Scalar(scalarValue) else { throw fail("invalid \\u escape") }
                    out.append(scalar)
                default:
                    index -= 1
                    throw fail("invalid escape \\\(describeCurrent())")
                }
                runStart = index
            }
        }

        mutating func hex4() throws -> UInt16 {
            guard index + 4 <= bytes.count else { throw fail("unexpected end of header in a \\u escape") }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let b = bytes[index]
                let digit: UInt8
                switch b {
                case 0x30...0x39: digit = b - 0x30
                case 0x41...0x46: digit = b - 0x41 + 10
                case 0x61...0x66: digit = b - 0x61 + 10
                default: throw fail("invalid hex digit in a \\u escape")
                }
                value = value << 4 | UInt16(digit)
                index += 1
            }
            return value
        }
    }

    /// Thrown for a repeated object key, so the reader can report it as its own error.
    struct DuplicateKey: Error {
        var key: String
        var offset: Int
    }

    // MARK: Writing

    /// `s` as a JSON string literal: quotes, backslashes and control characters escaped,
    /// everything else written as UTF-8.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
