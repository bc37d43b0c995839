import Foundation
import TestSupport
import XCTest
import QForgeTensor
@testable import QForgeData

final class NpyTests: XCTestCase {
    /// A hand-built `.npy` file: magic, version, header length, header text, data.
    private func npyBytes(header: String, data: [UInt8], version: UInt8 = 1, pad: Bool = true) -> [UInt8] {
        var text = header
        let prefix = version == 1 ? 10 : 12
        if pad {
            let n = prefix + text.utf8.count + 1
            text += String(repeating: " ", count: (64 - n % 64) % 64) + "\n"
        }
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        let len = text.utf8.count
        if version == 1 {
            out += [UInt8(len & 0xFF), UInt8(len >> 8)]
        } else {
            out += [UInt8(len & 0xFF), UInt8(len >> 8 & 0xFF), UInt8(len >> 16 & 0xFF), UInt8(len >> 24)]
        }
        return out + Array(text.utf8) + data
    }

    private func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    func testHandBuiltFloat32() throws {
        let dir = try TemporaryDirectory()
        let data = [Float(1.5), -2, 0.25, 1e-3].flatMap { le($0.bitPattern) }
        let p = try dir.write("f.npy", npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", data: data))
        let a = try readNpy(p)
        XCTAssertEqual(a.shape, [2, 2])
        XCTAssertEqual(a.data, .float32([1.5, -2, 0.25, 1e-3]))
        XCTAssertEqual(a.asTensor().shape, [2, 2])
        XCTAssertEqual(a.asTensor().scalars, [1.5, -2, 0.25, 1e-3])
    }

    func testHandBuiltUInt8BothSpellings() throws {
        let dir = try TemporaryDirectory()
        for (i, descr) in ["|u1", "<u1"].enumerated() {
            let p = try dir.write("u\(i).npy", npyBytes(header: "{'descr': '\(descr)', 'fortran_order': False, 'shape': (3,), }", data: [0, 7, 255]))
            let a = try readNpy(p)
            XCTAssertEqual(a.shape, [3])
            XCTAssertEqual(a.data, .uint8([0, 7, 255]))
            XCTAssertEqual(try a.asIntTensor(), IntTensor(shape: [3], scalars: [0, 7, 255]))
            XCTAssertEqual(a.asTensor().scalars, [0, 7, 255])
        }
    }

    func testHandBuiltInt64() throws {
        let dir = try TemporaryDirectory()
        let p = try dir.write("i.npy", npyBytes(header: "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
                                                data: [Int64(-5), 1 << 40, 3].flatMap { le($0) }))
        let a = try readNpy(p)
        XCTAssertEqual(a.data, .int64([-5, 1 << 40, 3]))
        XCTAssertEqual(try a.asIntTensor().scalars, [-5, 1 << 40, 3])
    }

    func testHandBuiltVersion2And3Headers() throws {
        let dir = try TemporaryDirectory()
        let data = [Float(3), 4].flatMap { le($0.bitPattern) }
        // Double quotes, key order changed, no trailing comma: still a valid Python dict.
        let header = "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<f4\"}"
        for version: UInt8 in [2, 3] {
            let p = try dir.write("v\(version).npy", npyBytes(header: header, data: data, version: version))
            let a = try readNpy(p)
            XCTAssertEqual(a.shape, [2])
            XCTAssertEqual(a.data, .float32([3, 4]))
        }
        // 0-d array and an empty array.
        let scalar = try dir.write("s.npy", npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", data: le(Float(7).bitPattern)))
        XCTAssertEqual(try readNpy(scalar).shape, [])
        XCTAssertEqual(try readNpy(scalar).asTensor().item, 7)
        let empty = try dir.write("e.npy", npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", data: []))
        XCTAssertEqual(try readNpy(empty).shape, [0, 3])
        XCTAssertEqual(try readNpy(empty).asTensor().count, 0)
    }

    func testRoundTripAndAlignment() throws {
        let dir = try TemporaryDirectory()
        let t = Tensor(shape: [2, 3], scalars: [1, -2.5, 3, 1e-7, 0, 65504])
        let p = dir.file("t.npy")
        try writeNpy(t, to: p)
        let a = try readNpy(p)
        XCTAssertEqual(a.shape, [2, 3])
        XCTAssertEqual(a.asTensor().scalars, t.scalars)

        let ints = IntTensor(shape: [4], scalars: [0, -1, 1 << 50, 9])
        let q = dir.file("i.npy")
        try writeNpy(ints, to: q)
        XCTAssertEqual(try readNpy(q).asIntTensor(), ints)

        for (path, count) in [(p, 6 * 4), (q, 4 * 8)] {
            let bytes = try readFileBytes(path)
            let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            let dataStart = 10 + headerLength
            XCTAssertEqual(dataStart % 64, 0)
            XCTAssertEqual(bytes[dataStart - 1], UInt8(ascii: "\n"))
            XCTAssertEqual(bytes.count - dataStart, count)
        }
        // 1-d and 0-d shapes spell their tuples like Python.
        let one = dir.file("one.npy")
        try writeNpy(Tensor(shape: [3], scalars: [1, 2, 3]), to: one)
        XCTAssertTrue(String(decoding: try readFileBytes(one), as: UTF8.self).contains("'shape': (3,)"))
        XCTAssertEqual(try readNpy(one).shape, [3])
        let zero = dir.file("zero.npy")
        try writeNpy(Tensor(5), to: zero)
        XCTAssertEqual(try readNpy(zero).shape, [])
    }

    func testNumpyReadsOurFiles() throws {
        try requireResource(numpyAvailable, "python3 with numpy is not available; run 'make deps'")
        let dir = try TemporaryDirectory()
        let p = dir.file("ours.npy"), q = dir.file("ours-int.npy")
        try writeNpy(Tensor(shape: [2, 3], scalars: [1, 2.5, -3, 4, 5, 6]), to: p)
        try writeNpy(IntTensor(shape: [3], scalars: [7, -8, 9]), to: q)
        let script = """
        import numpy, sys
        a = numpy.load(sys.argv[1]); b = numpy.load(sys.argv[2])
        assert a.dtype == numpy.float32 and a.shape == (2, 3), (a.dtype, a.shape)
        assert b.dtype == numpy.int64 and b.shape == (3,), (b.dtype, b.shape)
        print(a.tolist(), b.tolist())
        """
        let result = runCommand(["python3", "-c", script, p, q])
        XCTAssertEqual(result.status, 0)
        XCTAssertEqual(String(decoding: result.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines),
                       "[[1.0, 2.5, -3.0], [4.0, 5.0, 6.0]] [7, -8, 9]")
    }

    func testReadsFilesWrittenByNumpy() throws {
        try requireResource(numpyAvailable, "python3 with numpy is not available; run 'make deps'")
        let dir = try TemporaryDirectory()
        let script = """
        import numpy as np, sys, os
        d = sys.argv[1]
        np.save(os.path.join(d, 'f4.npy'), np.arange(12, dtype=np.float32).reshape(3, 4) / 4)
        np.save(os.path.join(d, 'u1.npy'), np.array([[0, 128, 255]], dtype=np.uint8))
        np.save(os.path.join(d, 'i8.npy'), np.array([-3, 2**40, 5], dtype=np.int64))
        with open(os.path.join(d, 'v2.npy'), 'wb') as f:
            np.lib.format.write_array(f, np.array([1.5, 2.5], dtype=np.float32), version=(2, 0))
        with open(os.path.join(d, 'v3.npy'), 'wb') as f:
            np.lib.format.write_array(f, np.array([[9]], dtype=np.uint8), version=(3, 0))
        np.save(os.path.join(d, 'f8.npy'), np.zeros(2, dtype=np.float64))
        np.save(os.path.join(d, 'be.npy'), np.zeros(2, dtype='>f4'))
        np.save(os.path.join(d, 'fortran.npy'), np.asfortranarray(np.zeros((2, 3), dtype=np.float32)))
        """
        XCTAssertEqual(runCommand(["python3", "-c", script, dir.path]).status, 0)

        let f4 = try readNpy(dir.file("f4.npy"))
        XCTAssertEqual(f4.shape, [3, 4])
        XCTAssertEqual(f4.data, .float32((0..<12).map { Float($0) / 4 }))
        let u1 = try readNpy(dir.file("u1.npy"))
        XCTAssertEqual(u1.shape, [1, 3])
        XCTAssertEqual(u1.data, .uint8([0, 128, 255]))
        XCTAssertEqual(try readNpy(dir.file("i8.npy")).data, .int64([-3, 1 << 40, 5]))
        XCTAssertEqual(try readNpy(dir.file("v2.npy")).data, .float32([1.5, 2.5]))
        XCTAssertEqual(try readNpy(dir.file("v3.npy")).data, .uint8([9]))
        let e = assertDataError("unsupportedDtype", mentions: "f8.npy") { _ = try readNpy(dir.file("f8.npy")) }
        XCTAssertTrue(e?.description.contains("'<f8'") ?? false)
        XCTAssertTrue(e?.description.contains("float32 '<f4', uint8 '|u1', int64 '<i8'") ?? false)
        assertDataError("bigEndian", mentions: "be.npy") { _ = try readNpy(dir.file("be.npy")) }
        assertDataError("fortranOrder", mentions: "fortran.npy") { _ = try readNpy(dir.file("fortran.npy")) }
    }

    func testErrors() throws {
        let dir = try TemporaryDirectory()
        let good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
        let eight = [UInt8](repeating: 0, count: 8)

        let magic = try dir.write("magic.npy", Array("NUMPY is not here".utf8))
        assertDataError("badMagic", mentions: "magic.npy") { _ = try readNpy(magic) }
        var wrongVersion = npyBytes(header: good, data: eight)
        wrongVersion[6] = 4
        let version = try dir.write("version.npy", wrongVersion)
        assertDataError("badHeader", mentions: "version.npy") { _ = try readNpy(version) }
        let garbled = try dir.write("garbled.npy", npyBytes(header: "{'descr': '<f4', 'fortran_order': Fals", data: eight))
        assertDataError("badHeader", mentions: "garbled.npy") { _ = try readNpy(garbled) }
        let noShape = try dir.write("noshape.npy", npyBytes(header: "{'descr': '<f4', 'fortran_order': False}", data: eight))
        assertDataError("badHeader", mentions: "noshape.npy") { _ = try readNpy(noShape) }
        let negative = try dir.write("negative.npy", npyBytes(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", data: eight))
        assertDataError("badHeader", mentions: "negative.npy") { _ = try readNpy(negative) }
        let longHeader = try dir.write("headerlen.npy", Array(npyBytes(header: good, data: []).prefix(40)))
        assertDataError("truncated", mentions: "headerlen.npy") { _ = try readNpy(longHeader) }

        let fortran = try dir.write("fortran.npy", npyBytes(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data: eight + eight))
        let f = assertDataError("fortranOrder", mentions: "fortran.npy") { _ = try readNpy(fortran) }
        XCTAssertTrue(f?.description.contains("np.ascontiguousarray") ?? false)
        // A 1-d array is the same in both orders, so it is accepted.
        let fortran1d = try dir.write("fortran1d.npy", npyBytes(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", data: eight))
        XCTAssertEqual(try readNpy(fortran1d).shape, [2])

        let f8 = try dir.write("x.npy", npyBytes(header: "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", data: eight))
        let d = assertDataError("unsupportedDtype", mentions: "x.npy") { _ = try readNpy(f8) }
        XCTAssertTrue(d?.description.hasPrefix("\(f8): unsupported dtype '<f8' (supported: float32 '<f4', uint8 '|u1', int64 '<i8')") ?? false)
        let structured = try dir.write("structured.npy", npyBytes(header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", data: [0, 0, 0, 0]))
        assertDataError("unsupportedDtype", mentions: "structured.npy") { _ = try readNpy(structured) }
        let big = try dir.write("big.npy", npyBytes(header: "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", data: eight))
        assertDataError("bigEndian", mentions: "big.npy") { _ = try readNpy(big) }

        let short = try dir.write("short.npy", npyBytes(header: good, data: [0, 0, 0, 0, 0]))
        let s = assertDataError("truncated", mentions: "short.npy") { _ = try readNpy(short) }
        XCTAssertTrue(s?.description.contains("needs 8 bytes of data, found 5") ?? false)
        let long = try dir.write("long.npy", npyBytes(header: good, data: eight + [1]))
        assertDataError("trailingBytes", mentions: "long.npy") { _ = try readNpy(long) }

        let fractional = try dir.write("frac.npy", npyBytes(header: good, data: [Float(1), 1.5].flatMap { le($0.bitPattern) }))
        assertDataError("invalidValue", mentions: "frac.npy") { _ = try readNpy(fractional).asIntTensor() }
        assertDataError("fileNotFound", mentions: "absent.npy") { _ = try readNpy(dir.file("absent.npy")) }
        assertDataError("unwritable", mentions: "no-such-dir") { try writeNpy(Tensor(1), to: dir.file("no-such-dir/t.npy")) }
    }
}
