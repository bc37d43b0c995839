import Foundation
import HardwareTestSupport
import QForgeData
import QForgeInteger
import TestSupport
import XCTest

/// Asserts a run failed cleanly: a non-zero exit status (not a signal), and exactly one line on
/// standard error that names `path` and contains every one of `problem`, with no crash report.
func assertCleanFailure(_ r: CLIResult, path: String, problem: [String],
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(r.reason, .exit, "terminated by a signal: \(r)", file: file, line: line)
    XCTAssertNotEqual(r.status, 0, "exit status 0 for bad input: \(r)", file: file, line: line)
    XCTAssertFalse(r.stderr.contains("Fatal error"), "crashed: \(r)", file: file, line: line)
    XCTAssertEqual(r.stderrLines.count, 1, "expected exactly one line on stderr: \(r)", file: file, line: line)
    guard let message = r.stderrLines.first else { return }
    XCTAssertTrue(message.contains(path), "the message does not name \(path): \(message)", file: file, line: line)
    for p in problem {
        XCTAssertTrue(message.contains(p), "the message does not say '\(p)': \(message)", file: file, line: line)
    }
}

/// Asserts the file at `path` still holds exactly `bytes`.
func assertUnchanged(_ path: String, _ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
    guard let data = FileManager.default.contents(atPath: path) else {
        XCTFail("\(path) is gone", file: file, line: line)
        return
    }
    XCTAssertEqual([UInt8](data), bytes, "\(path) was modified", file: file, line: line)
}

// MARK: - Hand-made data files

/// An IDX file (big-endian header) of unsigned bytes.
func idxBytes(shape: [Int], payload: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0, 0, 0x08, UInt8(shape.count)]
    for d in shape { out += [UInt8(d >> 24 & 0xFF), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
    return out + payload
}

/// Writes a small, valid Fashion-MNIST directory (`count` samples per split, plain IDX files
/// under the real names) into `dir/name` and returns its path.
@discardableResult
func writeFashionMNIST(in dir: TemporaryDirectory, name: String, count: Int = 64) throws -> String {
    let labels = (0..<count).map { UInt8($0 % 10) }
    let images = (0..<count * 28 * 28).map { UInt8(truncatingIfNeeded: $0 &* 37) }
    for prefix in ["train", "t10k"] {
        try dir.write("\(name)/\(prefix)-images-idx3-ubyte", idxBytes(shape: [count, 28, 28], payload: images))
        try dir.write("\(name)/\(prefix)-labels-idx1-ubyte", idxBytes(shape: [count], payload: labels))
    }
    return dir.file(name)
}

/// A `.npy` version 1.0 file with any dtype string (e.g. "<f8", which QForge does not read).
func npyBytes(descr: String, shape: [Int], payload: [UInt8]) -> [UInt8] {
    let tuple = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(tuple), }"
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    let n = header.utf8.count
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(n & 0xFF), UInt8(n >> 8)] + Array(header.utf8) + payload
}

/// Fashion-MNIST where the tools look for it by default: fails in CI when missing, skips elsewhere.
func requireInstalledFashionMNIST() throws {
    let dir = FashionMNIST.resolveDirectory()
    let names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    let present = names.allSatisfy { n in
        let base = (dir as NSString).appendingPathComponent(n)
        return FileManager.default.fileExists(atPath: base) || FileManager.default.fileExists(atPath: base + ".gz")
    }
    try requireResource(present, "Fashion-MNIST is not installed in \(dir); run 'make deps' (apt-get install -y dataset-fashion-mnist)")
}

/// The small dense integer model (4 → 6 → 2, `smallDenseModel`) saved as `small.int` in tmp.
func writeModel(_ tmp: TemporaryDirectory) throws -> String {
    let path = tmp.file("small.int")
    try IntegerModelFile.save(smallDenseModel(), to: path)
    return path
}
