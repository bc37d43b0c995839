import Foundation
@testable import QForgeGraph
import QForgeTensor
import TestSupport
import XCTest

final class SafetensorsRoundTripTests: XCTestCase {
    func testRoundTripIsExact() throws {
        let special: [Float] = [0, -0.0, 1, -1, .pi, .infinity, -.infinity, .nan, Float(bitPattern: 0x7FC0_1234),
                                .leastNonzeroMagnitude, .greatestFiniteMagnitude, Float(bitPattern: 0x0001_1234), 0.1]
        let tensors: [String: Tensor] = [
            "layers.0.weight": Tensor(shape: [2, 3], scalars: [1.5, -2.25, 3, 0.125, -0.0, 1e-3]),
            "layers.0.bias": Tensor(shape: [2], scalars: [0.5, -0.5]),
            "special": Tensor(shape: [special.count], scalars: special),
            "scalar": Tensor(4),
            "empty": Tensor(zeros: [0]),
            "empty2": Tensor(zeros: [2, 0, 4]),
            "conv": Tensor(shape: [2, 1, 2, 2]) { for i in 0..<$0.count { $0[i] = Float(i) / 7 } },
        ]
        let ints: [String: IntTensor] = [
            "steps": IntTensor(shape: [], scalars: [123_456_789_012]),
            "labels": IntTensor(shape: [4], scalars: [Int(Int64.min), -1, 0, Int(Int64.max)]),
        ]
        let metadata = ["format": "pt", "note": "café \"quoted\"\nline\t\u{01}end \\ /", "": "empty key", "unicode": "日本 🎛"]
        let dir = try makeTempDirectory(self)
        let path = dir + "/weights.safetensors"
        try Safetensors.write(tensors: tensors, intTensors: ints, metadata: metadata, to: path)

        let file = try Safetensors.read(path)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(Set(file.infos.keys), Set(tensors.keys).union(ints.keys))
        for (name, t) in tensors {
            let back = try file.tensor(name)
            XCTAssertEqual(back.shape, t.shape, name)
            XCTAssertEqual(bits(back), bits(t), name)
            XCTAssertEqual(file.infos[name]?.dtype, .f32)
        }
        for (name, t) in ints {
            XCTAssertEqual(try file.intTensor(name), t)
            XCTAssertEqual(file.infos[name]?.dtype, .i64)
        }
        XCTAssertEqual(try file.tensor("steps").scalars, [Float(123_456_789_012)])

        // Header: length a multiple of 8, padded with spaces, valid JSON per Foundation too.
        let bytes = try readBytes(path)
        XCTAssertEqual(file.headerLength % 8, 0)
        XCTAssertEqual(Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16, file.headerLength)
        let header = Array(bytes[8..<(8 + file.headerLength)])
        XCTAssertEqual(header.first, UInt8(ascii: "{"))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])
        XCTAssertEqual(object["__metadata__"] as? [String: String], metadata)
        let weight = try XCTUnwrap(object["layers.0.weight"] as? [String: Any])
        XCTAssertEqual(weight["dtype"] as? String, "F32")
        XCTAssertEqual(weight["shape"] as? [Int], [2, 3])
    }

    func testLayoutIsSortedByNameAndDeterministic() throws {
        let tensors: [String: Tensor] = ["b": Tensor(shape: [1], scalars: [2]), "a": Tensor(shape: [2], scalars: [1, 1]),
                                         "B": Tensor(shape: [1], scalars: [3])]
        let one = try Safetensors.encode(tensors: tensors, metadata: ["k": "v"])
        let two = try Safetensors.encode(tensors: tensors, metadata: ["k": "v"])
        XCTAssertEqual(one, two)
        let file = try SafetensorsFile(bytes: one)
        // Byte order of names: "B" < "a" < "b".
        XCTAssertEqual(file.tensorNames, ["B", "a", "b"])
        XCTAssertEqual(file.infos["B"]?.begin, 0)
        XCTAssertEqual(file.infos["a"]?.begin, 4)
        XCTAssertEqual(file.infos["b"]?.begin, 12)
        let header = String(decoding: one[8..<(8 + file.headerLength)], as: UTF8.self)
        XCTAssertEqual(header.trimmingCharacters(in: .whitespaces),
                       #"{"__metadata__":{"k":"v"},"B":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
                       + #""a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"#
                       + #""b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#)
    }

    func testEmptyFileHasNoMetadataKey() throws {
        let bytes = try Safetensors.encode(tensors: [:])
        XCTAssertEqual(bytes, handBuilt(header: "{}      "))
        let file = try SafetensorsFile(bytes: bytes)
        XCTAssertTrue(file.infos.isEmpty)
        XCTAssertTrue(file.metadata.isEmpty)
    }

    func testWriterRejectsBadNames() throws {
        let t = Tensor(shape: [1], scalars: [1])
        assertGraphError(.invalidTensorName(name: "", problem: "names must not be empty")) {
            try Safetensors.encode(tensors: ["": t])
        }
        assertGraphError(.invalidTensorName(name: "__metadata__", problem: "the name is reserved for the metadata")) {
            try Safetensors.encode(tensors: ["__metadata__": t])
        }
        assertGraphError(.duplicateTensorName("x")) {
            try Safetensors.encode(tensors: ["x": t], intTensors: ["x": IntTensor(shape: [1], scalars: [1])])
        }
    }
}

final class SafetensorsAtomicWriteTests: XCTestCase {
    func testFailedWriteLeavesExistingFileUntouched() throws {
        let dir = try makeTempDirectory(self)
        let path = dir + "/model.safetensors"
        try Safetensors.write(tensors: ["w": Tensor(shape: [2], scalars: [1, 2])], metadata: ["v": "1"], to: path)
        let before = try readBytes(path)

        assertGraphError(.invalidTensorName(name: "", problem: "names must not be empty"), file: path) {
            try Safetensors.write(tensors: ["w": Tensor(shape: [1], scalars: [9]), "": Tensor(shape: [1], scalars: [0])], to: path)
        }
        XCTAssertEqual(try readBytes(path), before)
        XCTAssertEqual(listing(dir), ["model.safetensors"])
        XCTAssertEqual(try Safetensors.read(path).metadata, ["v": "1"])
    }

    func testRenameFailureRemovesTemporaryFile() throws {
        let dir = try makeTempDirectory(self)
        // The target is a non-empty directory: the temporary file is written, the rename fails.
        let target = dir + "/model.safetensors"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        try writeBytes([1, 2, 3], to: target + "/keep")
        do {
            try Safetensors.write(tensors: ["w": Tensor(shape: [1], scalars: [1])], to: target)
            XCTFail("writing over a directory succeeded")
        } catch let error as GraphError {
            guard case .cannotWrite = error.kind else { return XCTFail("unexpected \(error)") }
            XCTAssertTrue(error.description.hasPrefix(target + ": cannot write: "), error.description)
        }
        XCTAssertEqual(listing(dir), ["model.safetensors"])
        XCTAssertEqual(listing(target), ["keep"])
    }

    func testMissingDirectoryIsAnError() throws {
        let dir = try makeTempDirectory(self)
        let path = dir + "/no/such/dir/model.safetensors"
        do {
            try Safetensors.write(tensors: [:], to: path)
            XCTFail("write into a missing directory succeeded")
        } catch let error as GraphError {
            guard case .cannotWrite = error.kind else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(error.file, path)
        }
    }

    func testMissingFileIsAnError() throws {
        let dir = try makeTempDirectory(self)
        let path = dir + "/absent.safetensors"
        do {
            _ = try Safetensors.read(path)
            XCTFail("read of a missing file succeeded")
        } catch let error as GraphError {
            guard case .cannotRead(let reason) = error.kind else { return XCTFail("unexpected \(error)") }
            XCTAssertFalse(reason.isEmpty)
            XCTAssertTrue(error.description.hasPrefix(path + ": cannot read: "), error.description)
        }
        do {
            _ = try Safetensors.read(dir)
            XCTFail("read of a directory succeeded")
        } catch let error as GraphError {
            guard case .cannotRead = error.kind else { return XCTFail("unexpected \(error)") }
        }
    }
}

/// Each container error, from a file built byte by byte and written to disk, so the error
/// must name the path it was read from.
final class SafetensorsValidationTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = try makeTempDirectory(self)
    }

    /// Writes `bytes` to `name` in the temp directory and asserts reading it fails with `kind`.
    @discardableResult
    func expect(_ kind: GraphError.Kind, _ bytes: [UInt8], name: String = "model.safetensors",
                line: UInt = #line) throws -> GraphError? {
        let path = dir + "/" + name
        try writeBytes(bytes, to: path)
        return assertGraphError(kind, file: path, { try Safetensors.read(path) }, line: line)
    }

    /// Reads `bytes` from a file, asserts a headerNotJSON error naming it, and returns the detail.
    func notJSON(_ bytes: [UInt8], line: UInt = #line) throws -> String {
        let path = dir + "/bad.safetensors"
        try writeBytes(bytes, to: path)
        do {
            _ = try Safetensors.read(path)
        } catch let error as GraphError {
            XCTAssertTrue(error.description.hasPrefix(path + ": corrupt safetensors: header is not valid JSON: "), line: line)
            if case .headerNotJSON(let detail) = error.kind { return detail }
            XCTFail("unexpected \(error)", line: line)
        }
        XCTFail("read succeeded", line: line)
        return ""
    }

    let w4 = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#

    func testFileShorterThanEightBytes() throws {
        try expect(.fileTooShort(size: 0), [])
        try expect(.fileTooShort(size: 5), [1, 0, 0, 0, 0])
    }

    func testHeaderLengthLargerThanFile() throws {
        let e = try expect(.headerLengthExceedsFile(headerLength: 1_234_567, fileSize: 2048),
                           handBuilt(header: "{}", data: [UInt8](repeating: 0, count: 2038), length: 1_234_567))
        XCTAssertEqual(e?.description, dir + "/model.safetensors: corrupt safetensors: header length 1234567 exceeds file size 2048"
                       + " (8 + header length must be at most the file size)")
        // The length must leave room for the 8-byte field itself, and never overflow.
        try expect(.headerLengthExceedsFile(headerLength: 3, fileSize: 10), handBuilt(header: "{}", length: 3))
        try expect(.headerLengthExceedsFile(headerLength: .max, fileSize: 10), handBuilt(header: "{}", length: .max))
        try expect(.headerLengthExceedsFile(headerLength: 1 << 63, fileSize: 10), handBuilt(header: "{}", length: 1 << 63))
    }

    func testHeaderNotUTF8() throws {
        try expect(.headerNotUTF8, handBuilt(headerBytes: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]))
        try expect(.headerNotUTF8, handBuilt(headerBytes: Array("{\"".utf8) + [0xED, 0xA0, 0x80] + Array("\":1}".utf8)))
    }

    func testHeaderNotJSON() throws {
        let e = try expect(.headerNotJSON(detail: "unexpected character '}', expected a value at byte 6 of the header"),
                           handBuilt(header: #"{"a": }"#))
        XCTAssertEqual(e?.description, dir + "/model.safetensors: corrupt safetensors: header is not valid JSON:"
                       + " unexpected character '}', expected a value at byte 6 of the header")
        for header in ["", "{", #"{"a":1,}"#, #"{"a" 1}"#, #"{"a":01}"#, #"{"a":1.}"#, #"{"a":"\x"}"#, #"{"a":"\ud800"}"#,
                       "{\"a\":\"\u{01}\"}", #"{"a":tru}"#, #"{} {}"#, #"{"a":[1,2}"#, #"{'a':1}"#, #"{"a":-}"#] {
            let detail = try notJSON(handBuilt(header: header))
            XCTAssertTrue(detail.contains(" at byte "), "\(header): \(detail)")
        }
        XCTAssertEqual(try notJSON(handBuilt(header: #"{"a":01}"#)), "invalid number, leading zero at byte 6 of the header")
        XCTAssertEqual(try notJSON(handBuilt(header: #"{"a":"\ud800"}"#)), "unpaired surrogate \\ud800 in a string at byte 12 of the header")
        // Deep nesting is refused, not a stack overflow.
        let deep = "{\"a\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        XCTAssertEqual(try notJSON(handBuilt(header: deep)), "nesting deeper than 64 at byte 69 of the header")
    }

    func testHeaderNotObject() throws {
        try expect(.headerNotObject(found: "a JSON array"), handBuilt(header: "[1, 2]  "))
        try expect(.headerNotObject(found: "the string 'x'"), handBuilt(header: #""x""#))
        try expect(.headerNotObject(found: "the number 12"), handBuilt(header: "12"))
        try expect(.headerNotObject(found: "null"), handBuilt(header: "null"))
        // The spec requires '{' as the first byte.
        try expect(.headerNotObject(found: "whitespace before '{'"), handBuilt(header: " {}"))
    }

    func testMetadata() throws {
        try expect(.metadataNotObject(found: "the number 3"), handBuilt(header: #"{"__metadata__":3}"#))
        try expect(.metadataNotObject(found: "a JSON array"), handBuilt(header: #"{"__metadata__":["a"]}"#))
        try expect(.metadataValueNotString(key: "epochs", found: "the number 10"),
                   handBuilt(header: #"{"__metadata__":{"ok":"yes","epochs":10}}"#))
        // null metadata is the same as none (the Rust reader's Option).
        let file = try SafetensorsFile(bytes: handBuilt(header: #"{"__metadata__":null}"#))
        XCTAssertTrue(file.metadata.isEmpty)
    }

    func testDuplicateKey() throws {
        try expect(.duplicateHeaderKey("w"), handBuilt(header: String(w4.dropLast()) + #","w":{}}"#, data: [0, 0, 0, 0]))
    }

    func testEntryShape() throws {
        try expect(.entryNotObject(tensor: "w", found: "the number 3"), handBuilt(header: #"{"w":3}"#))
        try expect(.missingField(tensor: "w", field: "dtype"),
                   handBuilt(header: #"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        try expect(.missingField(tensor: "w", field: "shape"),
                   handBuilt(header: #"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        let e = try expect(.missingField(tensor: "layers.0.weight", field: "data_offsets"),
                           handBuilt(header: #"{"layers.0.weight":{"dtype":"F32","shape":[1]}}"#, data: [0, 0, 0, 0]))
        XCTAssertEqual(e?.description, dir + "/model.safetensors: corrupt safetensors: tensor 'layers.0.weight' has no data_offsets")
    }

    func testInvalidFields() throws {
        func entry(_ dtype: String, _ shape: String, _ offsets: String) -> [UInt8] {
            handBuilt(header: #"{"w":{"dtype":\#(dtype),"shape":\#(shape),"data_offsets":\#(offsets)}}"#, data: [0, 0, 0, 0])
        }
        try expect(.invalidField(tensor: "w", field: "dtype", problem: "must be a string, found the number 5"), entry("5", "[1]", "[0,4]"))
        try expect(.invalidField(tensor: "w", field: "shape", problem: "must be an array of non-negative integers, found the string '1'"),
                   entry(#""F32""#, #""1""#, "[0,4]"))
        try expect(.invalidField(tensor: "w", field: "shape", problem: "[0] must be a non-negative integer, found the number -1"),
                   entry(#""F32""#, "[-1]", "[0,4]"))
        try expect(.invalidField(tensor: "w", field: "shape", problem: "[1] must be a non-negative integer, found the number 1.0"),
                   entry(#""F32""#, "[1,1.0]", "[0,4]"))
        try expect(.invalidField(tensor: "w", field: "shape", problem: "[0] must be a non-negative integer, found the number 99999999999999999999"),
                   entry(#""F32""#, "[99999999999999999999]", "[0,4]"))
        try expect(.invalidField(tensor: "w", field: "data_offsets", problem: "must be [begin, end], found a JSON array"),
                   entry(#""F32""#, "[1]", "[4]"))
        try expect(.invalidField(tensor: "w", field: "data_offsets", problem: "must be [begin, end], found null"),
                   entry(#""F32""#, "[1]", "null"))
        try expect(.invalidField(tensor: "w", field: "data_offsets", problem: "must be two non-negative integers that fit in 64 bits"),
                   entry(#""F32""#, "[1]", "[0,-4]"))
        try expect(.invalidField(tensor: "w", field: "data_offsets", problem: "must be two non-negative integers that fit in 64 bits"),
                   entry(#""F32""#, "[1]", "[0,4e0]"))
    }

    func testUnknownDType() throws {
        let e = try expect(.unknownDType(tensor: "w", dtype: "F8_E4M3"),
                           handBuilt(header: #"{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
        XCTAssertTrue(e?.description.contains("(known: F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL)") ?? false)
        try expect(.unknownDType(tensor: "w", dtype: "f32"),
                   handBuilt(header: #"{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
    }

    func testShapeOverflow() throws {
        try expect(.shapeOverflow(tensor: "w", shape: [4_294_967_296, 4_294_967_296, 16]),
                   handBuilt(header: #"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#))
        try expect(.shapeOverflow(tensor: "w", shape: [4_611_686_018_427_387_904]),
                   handBuilt(header: #"{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}"#))
    }

    func testOffsetsOutOfRange() throws {
        try expect(.offsetsOutOfRange(tensor: "w", begin: 4, end: 0, dataLength: 4),
                   handBuilt(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]))
        try expect(.offsetsOutOfRange(tensor: "w", begin: 0, end: 8, dataLength: 4),
                   handBuilt(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]))
        try expect(.offsetsOutOfRange(tensor: "w", begin: 0, end: Int.max, dataLength: 4),
                   handBuilt(header: #"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,9223372036854775807]}}"#, data: [0, 0, 0, 0]))
    }

    func testSizeMismatch() throws {
        let e = try expect(.sizeMismatch(tensor: "layers.0.weight", shape: [256, 784], dtype: "F32", expectedBytes: 802_816, actualBytes: 4),
                           handBuilt(header: #"{"layers.0.weight":{"dtype":"F32","shape":[256,784],"data_offsets":[0,4]}}"#,
                                     data: [0, 0, 0, 0]))
        XCTAssertEqual(e?.description, dir + "/model.safetensors: tensor 'layers.0.weight' has shape [256, 784]"
                       + " but data_offsets cover 4 bytes (F32 needs 802816)")
        try expect(.sizeMismatch(tensor: "h", shape: [3], dtype: "F16", expectedBytes: 6, actualBytes: 4),
                   handBuilt(header: #"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]))
    }

    func testOverlapGapAndTrailingBytes() throws {
        let data = [UInt8](repeating: 0, count: 12)
        try expect(.overlappingTensors(tensor: "b", begin: 4, previous: "a", previousEnd: 8),
                   handBuilt(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                             data: data))
        try expect(.overlappingTensors(tensor: "b", begin: 0, previous: "a", previousEnd: 4),
                   handBuilt(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                             data: [0, 0, 0, 0]))
        try expect(.gapBeforeTensor(tensor: "b", begin: 8, expectedBegin: 4),
                   handBuilt(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                             data: data))
        try expect(.gapBeforeTensor(tensor: "a", begin: 4, expectedBegin: 0),
                   handBuilt(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)))
        let e = try expect(.dataLengthMismatch(dataLength: 8, tensorsEnd: 4), handBuilt(header: w4, data: [UInt8](repeating: 0, count: 8)))
        XCTAssertTrue(e?.description.contains("data section is 8 bytes but the tensors end at 4") ?? false)
        try expect(.dataLengthMismatch(dataLength: 3, tensorsEnd: 0), handBuilt(header: "{}", data: [1, 2, 3]))
        // Empty tensors share offsets with their neighbours without overlapping.
        let ok = try SafetensorsFile(bytes: handBuilt(
            header: #"{"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            data: floatBytes([1, 2])))
        XCTAssertEqual(try ok.tensor("b").scalars, [2])
        XCTAssertEqual(try ok.tensor("e").shape, [0])
    }

    func testAccessorErrors() throws {
        let bytes = handBuilt(header: #"{"u":{"dtype":"U64","shape":[2],"data_offsets":[0,16]},"f":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#,
                              data: [5, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8) + floatBytes([1]))
        let file = try SafetensorsFile(bytes: bytes, fileName: "w.safetensors")
        assertGraphError(.tensorNotFound(name: "missing"), file: "w.safetensors") { try file.tensor("missing") }
        assertGraphError(.notIntegerDType(tensor: "f", dtype: "F32"), file: "w.safetensors") { try file.intTensor("f") }
        assertGraphError(.integerOutOfRange(tensor: "u", value: .max), file: "w.safetensors") { try file.intTensor("u") }
        XCTAssertEqual(try file.tensor("u").scalars, [5, Float(UInt64.max)])
    }

    func testHostileNamesStayOnOneLine() throws {
        let name = "evil\nname'" + String(repeating: "x", count: 1000)
        let header = "{" + HeaderJSON.quoted(name) + ":3}"
        let e = try expect(.entryNotObject(tensor: name, found: "the number 3"), handBuilt(header: header))
        XCTAssertTrue(e?.description.contains(#"'evil\nname\'xxx"#) ?? false)
        XCTAssertLessThan(e?.description.count ?? 0, 400)
    }

    /// Random corruptions of a valid file must give a GraphError or a valid file, never a crash.
    func testCorruptionSmoke() throws {
        let good = try Safetensors.encode(tensors: ["a.weight": Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]),
                                                    "b": Tensor(shape: [1], scalars: [7])],
                                          intTensors: ["n": IntTensor(shape: [2], scalars: [1, -1])], metadata: ["m": "v"])
        var rng = SystemRandomNumberGenerator()
        var failures = 0
        for _ in 0..<3000 {
            var bytes = good
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            case 1:
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2:
                let i = Int.random(in: 8..<bytes.count, using: &rng)
                bytes[i] = Array("{}[]\",:0123456789-.e ".utf8).randomElement(using: &rng) ?? 0
            default: bytes.append(contentsOf: [UInt8](repeating: 0, count: Int.random(in: 1...9, using: &rng)))
            }
            do {
                let file = try SafetensorsFile(bytes: bytes, fileName: "fuzz")
                for name in file.infos.keys {
                    _ = try file.tensor(name)
                    if file.infos[name]?.dtype.isInteger == true { _ = try? file.intTensor(name) }
                }
            } catch let error as GraphError {
                failures += 1
                XCTAssertFalse(error.description.contains("\n"))
                XCTAssertTrue(error.description.hasPrefix("fuzz: "))
            }
        }
        XCTAssertGreaterThan(failures, 0)
    }
}

/// Files written by Python's `safetensors` (0.8.0, via `safetensors.numpy.save`), kept as bytes.
final class SafetensorsCompatibilityTests: XCTestCase {

    /// numpy arrays: i64, f64, f32 (incl. empty [0, 3] and scalar), i32, f16, i16, i8, u8, bool;
    /// metadata {"format": "np", "note": "café \"q\""}. Python lays tensors out by dtype size, not name.
    static let pythonFile = """
        AAMAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJucCIsIm5vdGUiOiJjYWbDqSBcInFcIiJ9LCJpNjQiOnsiZHR5cGUi\
        OiJJNjQiLCJzaGFwZSI6WzNdLCJkYXRhX29mZnNldHMiOlswLDI0XX0sImY2NCI6eyJkdHlwZSI6IkY2NCIsInNoYXBlIjpbMl0s\
        ImRhdGFfb2Zmc2V0cyI6WzI0LDQwXX0sImVtcHR5Ijp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlswLDNdLCJkYXRhX29mZnNldHMi\
        Ols0MCw0MF19LCJsYXllcnMuMC5iaWFzIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbNDAsNDhd\
        fSwibGF5ZXJzLjAud2VpZ2h0Ijp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlsyLDNdLCJkYXRhX29mZnNldHMiOls0OCw3Ml19LCJz\
        Y2FsYXIiOnsiZHR5cGUiOiJGMzIiLCJzaGFwZSI6W10sImRhdGFfb2Zmc2V0cyI6WzcyLDc2XX0sImkzMiI6eyJkdHlwZSI6Ikkz\
        MiIsInNoYXBlIjpbMiwxXSwiZGF0YV9vZmZzZXRzIjpbNzYsODRdfSwiZjE2Ijp7ImR0eXBlIjoiRjE2Iiwic2hhcGUiOls0XSwi\
        ZGF0YV9vZmZzZXRzIjpbODQsOTJdfSwiaTE2Ijp7ImR0eXBlIjoiSTE2Iiwic2hhcGUiOlsxXSwiZGF0YV9vZmZzZXRzIjpbOTIs\
        OTRdfSwiaTgiOnsiZHR5cGUiOiJJOCIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6Wzk0LDk2XX0sInU4Ijp7ImR0eXBlIjoi\
        VTgiLCJzaGFwZSI6WzJdLCJkYXRhX29mZnNldHMiOls5Niw5OF19LCJiIjp7ImR0eXBlIjoiQk9PTCIsInNoYXBlIjpbM10sImRh\
        dGFfb2Zmc2V0cyI6Wzk4LDEwMV19fSAgICD9/////////wcAAAAAAAAAAAAAAAABAABVVVVVVVXVPwAAAAAAAATAAAAAPwAAAL8A\
        AMA/AAAQwAAAQEAAAAA+AAAAgG8SgzoAAIBA/////wIAAAAAPADAVTX/e9T+gH8A/wEAAQ==
        """

    func testReadsFileWrittenByPythonSafetensors() throws {
        let bytes = [UInt8](try XCTUnwrap(Data(base64Encoded: Self.pythonFile)))
        XCTAssertEqual(bytes.count, 877)
        let file = try SafetensorsFile(bytes: bytes, fileName: "python.safetensors")
        XCTAssertEqual(file.headerLength, 768)
        XCTAssertEqual(file.metadata, ["format": "np", "note": "café \"q\""])
        XCTAssertEqual(file.tensorNames, ["b", "empty", "f16", "f64", "i16", "i32", "i64", "i8", "layers.0.bias", "layers.0.weight", "scalar", "u8"])

        let w = try file.tensor("layers.0.weight")
        XCTAssertEqual(w.shape, [2, 3])
        XCTAssertEqual(bits(w), [1.5, -2.25, 3.0, 0.125, -0.0, 1e-3].map { Float($0).bitPattern })
        XCTAssertEqual(try file.tensor("layers.0.bias").scalars, [0.5, -0.5])
        XCTAssertEqual(try file.tensor("scalar").shape, [])
        XCTAssertEqual(try file.tensor("scalar").scalars, [4])
        XCTAssertEqual(try file.tensor("empty").shape, [0, 3])
        XCTAssertEqual(try file.tensor("f64").scalars, [Float(1.0 / 3.0), -2.5])
        XCTAssertEqual(try file.tensor("f16").scalars, [1, -2, 0.333251953125, 65504])
        XCTAssertEqual(try file.intTensor("i64"), IntTensor(shape: [3], scalars: [-3, 7, 1 << 40]))
        XCTAssertEqual(try file.tensor("i64").scalars, [-3, 7, Float(1 << 40)])
        XCTAssertEqual(try file.intTensor("i32"), IntTensor(shape: [2, 1], scalars: [-1, 2]))
        XCTAssertEqual(try file.intTensor("i16").scalars, [-300])
        XCTAssertEqual(try file.intTensor("i8").scalars, [-128, 127])
        XCTAssertEqual(try file.tensor("u8").scalars, [0, 255])
        XCTAssertEqual(try file.intTensor("b").scalars, [1, 0, 1])
        XCTAssertEqual(try file.tensor("b").scalars, [1, 0, 1])
    }

    func testReadsHandBuiltBF16AndUnsigned() throws {
        // bf16 1.0 = 0x3F80, -2.5 = 0xC020; u16 65535; u32 4000000000.
        let header = #"{"bf":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"u16":{"dtype":"U16","shape":[1],"data_offsets":[4,6]},"#
            + #""pad":{"dtype":"U8","shape":[2],"data_offsets":[6,8]},"u32":{"dtype":"U32","shape":[1],"data_offsets":[8,12]}}"#
        let data: [UInt8] = [0x80, 0x3F, 0x20, 0xC0, 0xFF, 0xFF, 7, 9, 0x00, 0x28, 0x6B, 0xEE]
        let file = try SafetensorsFile(bytes: handBuilt(header: header, data: data))
        XCTAssertEqual(try file.tensor("bf").scalars, [1, -2.5])
        XCTAssertEqual(try file.intTensor("u16").scalars, [65535])
        XCTAssertEqual(try file.intTensor("pad").scalars, [7, 9])
        XCTAssertEqual(try file.intTensor("u32").scalars, [4_000_000_000])
        assertGraphError(.notIntegerDType(tensor: "bf", dtype: "BF16")) { try file.intTensor("bf") }
    }

    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    func testHalfConversionMatchesFloat16ForEveryBitPattern() {
        for raw in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: raw))
            let got = Safetensors.halfToFloat(raw)
            if expected.isNaN {
                XCTAssertTrue(got.isNaN, "\(raw)")
            } else {
                XCTAssertEqual(got.bitPattern, expected.bitPattern, "\(raw)")
            }
        }
    }
    #endif

    /// Round trip through Python's `safetensors` when python3 has it (skipped otherwise):
    /// Python loads our file with `safetensors.numpy.load_file`, checks it, and writes its own.
    func testPythonSafetensorsReadsOurFile() throws {
        try requireResource(pythonCanRun("import safetensors.numpy, numpy"), "python3 with the safetensors module is not available; run 'make deps'")
        let dir = try makeTempDirectory(self)
        let ours = dir + "/ours.safetensors", theirs = dir + "/theirs.safetensors"
        let (graph, tensors) = sampleGraph()
        try ModelFile.save(graph: graph, tensors: tensors, to: ours, extraMetadata: ["run": "7"])
        try Safetensors.write(tensors: ["x": Tensor(shape: [3], scalars: [0.1, -0.0, 3e38])],
                              intTensors: ["n": IntTensor(shape: [2], scalars: [-5, 1 << 50])], to: dir + "/mixed.safetensors")
        let script = """
            import json, sys
            import numpy as np
            from safetensors.numpy import load_file, save_file
            from safetensors import safe_open
            d = load_file(sys.argv[1])
            w = d["fc.weight"]
            assert w.dtype == np.float32 and w.shape == (10, 64), (w.dtype, w.shape)
            assert d["conv.weight"].shape == (4, 1, 3, 3)
            assert d["act_q.scale"].shape == ()
            with safe_open(sys.argv[1], framework="np") as f:
                meta = f.metadata()
            assert meta["format"] == "qforge" and meta["run"] == "7", meta
            graph = json.loads(meta["qforge_graph"])
            assert [n["op"] for n in graph["nodes"]][0] == "Conv"
            m = load_file(sys.argv[3])
            assert m["n"].dtype == np.int64 and list(m["n"]) == [-5, 1 << 50]
            assert m["x"].tolist() == np.array([0.1, -0.0, 3e38], dtype=np.float32).tolist()
            out = {"sum": float(w.astype(np.float64).sum()), "first": float(w[0, 0]), "last": float(w[9, 63])}
            save_file({"z.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array([1, 2], dtype=np.int32)},
                      sys.argv[2], metadata={"from": "python"})
            print(json.dumps(out))
            """
        let output = try runPython(script, arguments: [ours, theirs, dir + "/mixed.safetensors"])
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Double])
        let w = try XCTUnwrap(tensors["fc.weight"]).scalars
        XCTAssertEqual(result["first"], Double(w[0]))
        XCTAssertEqual(result["last"], Double(w[639]))
        XCTAssertEqual(result["sum"] ?? 0, w.reduce(0.0) { $0 + Double($1) }, accuracy: 1e-6)

        let back = try Safetensors.read(theirs)
        XCTAssertEqual(back.metadata, ["from": "python"])
        XCTAssertEqual(try back.tensor("z.weight").scalars, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(try back.intTensor("a").scalars, [1, 2])
    }
}
