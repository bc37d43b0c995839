import Foundation
import TestSupport
import XCTest
@testable import QForgeData

/// Runs a command found on PATH; returns its exit status and standard output.
@discardableResult
func runCommand(_ arguments: [String]) -> (status: Int32, output: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return (-1, Data()) }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, data)
}

/// Whether `python3` with numpy can be run.
let numpyAvailable: Bool = runCommand(["python3", "-c", "import numpy"]).status == 0

/// Gzips the file at `path` with the `gzip` tool into `destination` (skips the test when gzip
/// is missing).
func gzipFile(_ path: String, to destination: String) throws {
    let result = runCommand(["gzip", "-c", "-n", path])
    try requireResource(result.status == 0, "the gzip tool is not available")
    try result.output.write(to: URL(fileURLWithPath: destination))
}

/// The case name of a `DataError` (e.g. "truncated").
func caseName(_ error: DataError) -> String {
    Mirror(reflecting: error).children.first?.label ?? String(describing: error)
}

/// Asserts that `body` throws a `DataError` of case `expected` whose one-line description
/// mentions `mentions` (normally the file name). Returns the error for further checks.
@discardableResult
func assertDataError(_ expected: String, mentions: String, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws -> Void) -> DataError? {
    do {
        try body()
        XCTFail("expected DataError.\(expected), nothing was thrown", file: file, line: line)
    } catch let error as DataError {
        XCTAssertEqual(caseName(error), expected, "wrong case: \(error)", file: file, line: line)
        XCTAssertTrue(error.description.contains(mentions), "'\(error)' does not mention '\(mentions)'", file: file, line: line)
        XCTAssertFalse(error.description.contains("\n"), "description is not one line: \(error)", file: file, line: line)
        return error
    } catch {
        XCTFail("expected DataError.\(expected), got \(error)", file: file, line: line)
    }
    return nil
}

/// Deterministic pseudo-random bytes that do not compress much.
func noiseBytes(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var x = seed
    return (0..<count).map { _ in
        x = x &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: x >> 56)
    }
}

/// Big-endian bytes of an IDX header.
func idxHeader(type: UInt8, dims: [UInt32]) -> [UInt8] {
    var out: [UInt8] = [0, 0, type, UInt8(dims.count)]
    for d in dims { out += [UInt8(d >> 24), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
    return out
}
