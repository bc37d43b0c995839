import Foundation
import TestSupport
import XCTest
import QForgeTensor
@testable import QForgeData

final class CSVTests: XCTestCase {
    func testHeaderBlankLinesAndCRLF() throws {
        let dir = try TemporaryDirectory()
        let p = try dir.write("houses.csv", text: "\"area\", rooms ,price\r\n\r\n120,3,250.5\r\n  \r\n80, 2 ,-1e2\r\n")
        let table = try readCSV(p)
        XCTAssertEqual(table.header, ["area", "rooms", "price"])
        XCTAssertEqual(table.columnCount, 3)
        XCTAssertEqual(table.rowCount, 2)
        XCTAssertEqual(table.values, [120, 3, 250.5, 80, 2, -100])
        XCTAssertEqual(table.lineNumbers, [3, 5])
    }

    func testRegressionByNameAndIndex() throws {
        let dir = try TemporaryDirectory()
        let p = try dir.write("data.csv", text: "a,b,y1,y2\n1,2,3,4\n5,6,7,8\n")
        let byName = try Dataset.fromCSV(path: p, targetColumns: ["y1", "y2"], task: .regression)
        XCTAssertEqual(byName.name, "data")
        XCTAssertEqual(byName.inputs.shape, [2, 2])
        XCTAssertEqual(byName.inputs.scalars, [1, 2, 5, 6])
        XCTAssertEqual(byName.targets.values?.shape, [2, 2])
        XCTAssertEqual(byName.targets.values?.scalars, [3, 4, 7, 8])
        XCTAssertEqual(byName.targetNames, ["y1", "y2"])

        let byIndex = try Dataset.fromCSV(path: p, targetColumns: [0, -1], task: .regression)
        XCTAssertEqual(byIndex.inputs.scalars, [2, 3, 6, 7])
        XCTAssertEqual(byIndex.targets.values?.scalars, [1, 4, 5, 8])
        XCTAssertEqual(byIndex.targetNames, ["a", "y2"])

        // Plain [Int] / [String] values (not literals) work too, and mixed lists.
        let indices: [Int] = [2], names: [String] = ["y1"]
        XCTAssertEqual(try Dataset.fromCSV(path: p, targetColumns: indices, task: .regression).targetNames, ["y1"])
        XCTAssertEqual(try Dataset.fromCSV(path: p, targetColumns: names, task: .regression).inputs.shape, [2, 3])
        XCTAssertEqual(try Dataset.fromCSV(path: p, targetColumns: [0, "y2"], task: .regression).targetNames, ["a", "y2"])
        XCTAssertEqual(byName.description, "data: 2 samples, inputs [2], regression targets [2]")
    }

    func testClassificationWithoutHeader() throws {
        let dir = try TemporaryDirectory()
        let p = try dir.write("iris.csv", text: "5.1,3.5,0\n4.9,3.0,2\n\n6.2,2.9,1\n")
        let table = try readCSV(p)
        XCTAssertNil(table.header)
        let d = try Dataset.fromCSV(path: p, targetColumns: [2], task: .classification)
        XCTAssertEqual(d.count, 3)
        XCTAssertEqual(d.inputs.shape, [3, 2])
        guard case .classes(let labels, let classCount) = d.targets else { return XCTFail("not classification") }
        XCTAssertEqual(labels.scalars, [0, 2, 1])
        XCTAssertEqual(classCount, 3)
        let five = try Dataset.fromCSV(path: p, targetColumns: [-1], task: .classification, classCount: 5)
        XCTAssertEqual(five.outputCount, 5)
        // Default column names without a header.
        let r = try Dataset.fromCSV(path: p, targetColumns: [1], task: .regression)
        XCTAssertEqual(r.targetNames, ["column 2"])
    }

    func testNonNumericAndRagged() throws {
        let dir = try TemporaryDirectory()
        let p = try dir.write("bad.csv", text: "x,y\n1,2\n3,abc\n")
        let e = assertDataError("nonNumeric", mentions: "bad.csv") { _ = try readCSV(p) }
        XCTAssertEqual(e, .nonNumeric(path: p, line: 3, column: 2, value: "abc"))
        XCTAssertTrue(e?.description.contains("line 3, column 2") ?? false)

        let empty = try dir.write("emptyfield.csv", text: "1,2\n3,\n")
        XCTAssertEqual(assertDataError("nonNumeric", mentions: "emptyfield.csv") { _ = try readCSV(empty) },
                       .nonNumeric(path: empty, line: 2, column: 2, value: ""))
        let nan = try dir.write("nan.csv", text: "1,2\nnan,3\n")
        assertDataError("nonNumeric", mentions: "nan.csv") { _ = try readCSV(nan) }

        let ragged = try dir.write("ragged.csv", text: "a,b,c\n1,2,3\n\n4,5\n")
        let r = assertDataError("raggedRow", mentions: "ragged.csv") { _ = try readCSV(ragged) }
        XCTAssertEqual(r, .raggedRow(path: ragged, line: 4, expected: 3, found: 2))
        XCTAssertTrue(r?.description.contains("line 4") ?? false)
    }

    func testColumnAndDataErrors() throws {
        let dir = try TemporaryDirectory()
        let p = try dir.write("d.csv", text: "a,b,label\n1,2,0\n3,4,1.5\n")
        assertDataError("badColumn", mentions: "d.csv") { _ = try Dataset.fromCSV(path: p, targetColumns: ["missing"], task: .regression) }
        assertDataError("badColumn", mentions: "d.csv") { _ = try Dataset.fromCSV(path: p, targetColumns: [3], task: .regression) }
        assertDataError("badColumn", mentions: "d.csv") { _ = try Dataset.fromCSV(path: p, targetColumns: [0, 1, 2], task: .regression) }
        assertDataError("badColumn", mentions: "d.csv") { _ = try Dataset.fromCSV(path: p, targetColumns: [1, 2], task: .classification) }
        assertDataError("badColumn", mentions: "d.csv") { _ = try Dataset.fromCSV(path: p, targetColumns: [2, "label"], task: .regression) }
        let label = assertDataError("invalidValue", mentions: "d.csv") { _ = try Dataset.fromCSV(path: p, targetColumns: ["label"], task: .classification) }
        XCTAssertTrue(label?.description.contains("line 3") ?? false)

        let noHeader = try dir.write("nh.csv", text: "1,2\n")
        assertDataError("badColumn", mentions: "nh.csv") { _ = try Dataset.fromCSV(path: noHeader, targetColumns: ["y"], task: .regression) }
        let blank = try dir.write("blank.csv", text: "\n  \n")
        assertDataError("noData", mentions: "blank.csv") { _ = try readCSV(blank) }
        let headerOnly = try dir.write("header.csv", text: "a,b\n")
        assertDataError("noData", mentions: "header.csv") { _ = try readCSV(headerOnly) }
        let big = try dir.write("big.csv", text: "1,5\n2,7\n")
        assertDataError("invalidValue", mentions: "big.csv") { _ = try Dataset.fromCSV(path: big, targetColumns: [1], task: .classification, classCount: 6) }
    }
}
