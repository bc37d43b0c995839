import Foundation
import TestSupport
import XCTest
@testable import QForgeData

final class IDXTests: XCTestCase {
    func testUByteRoundTripPlainAndGzip() throws {
        let dir = try TemporaryDirectory()
        let pixels: [UInt8] = (0..<12).map { UInt8(($0 * 23) % 256) }
        let plain = try dir.write("images-idx3-ubyte", idxHeader(type: 0x08, dims: [3, 2, 2]) + pixels)
        let gz = dir.file("images-idx3-ubyte.gz")
        try gzipFile(plain, to: gz)

        for path in [plain, gz] {
            let a = try readIDX(path)
            XCTAssertEqual(a.dataType, .uint8)
            XCTAssertEqual(a.shape, [3, 2, 2])
            XCTAssertEqual(a.values, pixels.map { Float($0) })
            XCTAssertEqual(try a.intValues(), pixels.map { Int($0) })
        }
        // readFileBytes decompresses transparently and passes plain files through.
        XCTAssertEqual(try readFileBytes(gz), try readFileBytes(plain))
        XCTAssertEqual(try readFileBytes(plain), idxHeader(type: 0x08, dims: [3, 2, 2]) + pixels)
        // Only the first records.
        let firstTwo = try readIDX(gz, maxRecords: 2)
        XCTAssertEqual(firstTwo.shape, [2, 2, 2])
        XCTAssertEqual(firstTwo.values, pixels.prefix(8).map { Float($0) })
    }

    func testOtherTypesHandBuilt() throws {
        let dir = try TemporaryDirectory()
        // sbyte: 0xFF = -1, 0x7F = 127
        let s8 = try dir.write("s8", idxHeader(type: 0x09, dims: [2]) + [0xFF, 0x7F])
        XCTAssertEqual(try readIDX(s8).values, [-1, 127])
        // int16 big-endian: 0xFFFE = -2, 0x0100 = 256
        let i16 = try dir.write("i16", idxHeader(type: 0x0B, dims: [2]) + [0xFF, 0xFE, 0x01, 0x00])
        XCTAssertEqual(try readIDX(i16).values, [-2, 256])
        // int32: 0x01000001 = 16777217 (not representable as Float, exact through intValues)
        let i32 = try dir.write("i32", idxHeader(type: 0x0C, dims: [1, 2]) + [0x01, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFD])
        let a32 = try readIDX(i32)
        XCTAssertEqual(a32.shape, [1, 2])
        XCTAssertEqual(try a32.intValues(), [16_777_217, -3])
        // float32 1.5 = 0x3FC00000
        let f32 = try dir.write("f32", idxHeader(type: 0x0D, dims: [1]) + [0x3F, 0xC0, 0x00, 0x00])
        XCTAssertEqual(try readIDX(f32).values, [1.5])
        XCTAssertEqual(try readIDX(f32).dataType, .float32)
        // float64 -2.25 = 0xC002000000000000
        let f64 = try dir.write("f64", idxHeader(type: 0x0E, dims: [1]) + [0xC0, 0x02, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(try readIDX(f64).values, [-2.25])
        // Non-integral floats are not labels.
        assertDataError("invalidValue", mentions: "f32") { _ = try readIDX(f32).intValues() }
    }

    func testEncodeIDXRoundTripsAllTypes() throws {
        let dir = try TemporaryDirectory()
        let values: [Float] = [0, 1, 2, 100, 7, 42]
        for type in IDXDataType.allCases {
            let path = try dir.write("t\(type.rawValue)", encodeIDX(shape: [2, 3], values: values, as: type))
            let a = try readIDX(path)
            XCTAssertEqual(a.dataType, type)
            XCTAssertEqual(a.shape, [2, 3])
            XCTAssertEqual(a.values, values, "\(type)")
        }
    }

    func testWrongMagic() throws {
        let dir = try TemporaryDirectory()
        let p = try dir.write("bad-magic.idx", [0x01, 0x00, 0x08, 0x01, 0, 0, 0, 1, 5])
        assertDataError("badMagic", mentions: "bad-magic.idx") { _ = try readIDX(p) }
        let q = try dir.write("bad-type.idx", [0x00, 0x00, 0x07, 0x01, 0, 0, 0, 1, 5])
        let e = assertDataError("badMagic", mentions: "bad-type.idx") { _ = try readIDX(q) }
        XCTAssertTrue(e?.description.contains("0x07") ?? false)
    }

    func testBadRank() throws {
        let dir = try TemporaryDirectory()
        let zero = try dir.write("rank0.idx", [0, 0, 0x08, 0])
        assertDataError("badHeader", mentions: "rank0.idx") { _ = try readIDX(zero) }
        let nine = try dir.write("rank9.idx", idxHeader(type: 0x08, dims: Array(repeating: 1, count: 9)) + [1])
        assertDataError("badHeader", mentions: "rank9.idx") { _ = try readIDX(nine) }
    }

    func testTruncated() throws {
        let dir = try TemporaryDirectory()
        let data = try dir.write("short-idx3-ubyte", idxHeader(type: 0x08, dims: [3, 2, 2]) + Array(repeating: 1, count: 10))
        let e = assertDataError("truncated", mentions: "short-idx3-ubyte") { _ = try readIDX(data) }
        XCTAssertTrue(e?.description.contains("header says 3×2×2 = 12 bytes of data, found 10") ?? false, "\(String(describing: e))")
        let header = try dir.write("short-header", Array(idxHeader(type: 0x08, dims: [3, 2, 2]).prefix(10)))
        assertDataError("truncated", mentions: "short-header") { _ = try readIDX(header) }
        let empty = try dir.write("empty.idx", [])
        assertDataError("truncated", mentions: "empty.idx") { _ = try readIDX(empty) }
    }

    func testTrailingBytes() throws {
        let dir = try TemporaryDirectory()
        let p = try dir.write("long.idx", idxHeader(type: 0x08, dims: [2]) + [1, 2, 3, 4])
        let e = assertDataError("trailingBytes", mentions: "long.idx") { _ = try readIDX(p) }
        XCTAssertTrue(e?.description.contains("2 extra") ?? false)
    }

    func testTruncatedAndCorruptGzip() throws {
        let dir = try TemporaryDirectory()
        let plain = try dir.write("data-idx1-ubyte", idxHeader(type: 0x08, dims: [4000]) + noiseBytes(4000))
        let gz = dir.file("data-idx1-ubyte.gz")
        try gzipFile(plain, to: gz)
        let compressed = try Array(Data(contentsOf: URL(fileURLWithPath: gz)))
        XCTAssertGreaterThan(compressed.count, 1000)

        // Cut in the middle of the deflate stream.
        let half = try dir.write("half-idx1-ubyte.gz", Array(compressed.prefix(compressed.count / 2)))
        assertDataError("corruptGzip", mentions: "half-idx1-ubyte.gz") { _ = try readIDX(half) }
        assertDataError("corruptGzip", mentions: "half-idx1-ubyte.gz") { _ = try readFileBytes(half) }
        // Complete data but the 8-byte trailer (CRC, size) missing.
        let noTrailer = try dir.write("notrailer.gz", Array(compressed.dropLast(8)))
        assertDataError("corruptGzip", mentions: "notrailer.gz") { _ = try readFileBytes(noTrailer) }
        // Damaged deflate data.
        var damaged = compressed
        for i in 40..<80 { damaged[i] ^= 0x5A }
        let bad = try dir.write("damaged.gz", damaged)
        assertDataError("corruptGzip", mentions: "damaged.gz") { _ = try readFileBytes(bad) }
    }

    func testMissingFile() throws {
        let dir = try TemporaryDirectory()
        assertDataError("fileNotFound", mentions: "nothing-here.idx") { _ = try readIDX(dir.file("nothing-here.idx")) }
        assertDataError("unreadable", mentions: dir.path) { _ = try readFileBytes(dir.path) }
    }
}
