import Foundation
import QForgeTensor

/// A numeric CSV file: an optional header and a rectangular table of finite numbers.
public struct CSVTable: Sendable {
    /// The file the table came from.
    public var path: String
    /// Column names, when the first non-blank row was a header.
    public var header: [String]?
    /// Number of columns.
    public var columnCount: Int
    /// Values, row-major: row `r`, column `c` is `values[r * columnCount + c]`.
    public var values: [Double]
    /// The 1-based file line of each data row (for error messages).
    public var lineNumbers: [Int]

    /// Number of data rows.
    public var rowCount: Int { lineNumbers.count }

    /// The value at data row `row`, column `column` (both 0-based).
    public subscript(row: Int, column: Int) -> Double { values[row * columnCount + column] }

    /// The name of column `c` (0-based): the header name, or "column <c+1>".
    public func columnName(_ c: Int) -> String {
        if let h = header, c < h.count, !h[c].isEmpty { return h[c] }
        return "column \(c + 1)"
    }
}

/// Reads a comma-separated file of numbers (gzip-compressed files are decompressed).
///
/// - Blank lines (empty or only whitespace) are skipped anywhere in the file.
/// - The first non-blank row is a header when any of its fields is not a number.
/// - Fields are trimmed of spaces and tabs; double-quoted fields (`"a,b"`, `""` for a quote)
///   are allowed, mainly for header names. `\r\n` line ends and a UTF-8 byte-order mark are
///   accepted.
/// - Every data field must be a finite number (`nan`/`inf` are rejected), and every row must
///   have as many fields as the first row.
///
/// - Throws: `DataError.nonNumeric` (with the 1-based line and column), `.raggedRow`,
///   `.noData` (no data rows), or a file error.
public func readCSV(_ path: String) throws -> CSVTable {
    let bytes = try readFileBytes(path)
    var text = String(decoding: bytes, as: UTF8.self)
    if text.hasPrefix("\u{FEFF}") { text.removeFirst() }

    var header: [String]?
    var columnCount = -1
    var values: [Double] = []
    var lineNumbers: [Int] = []
    var lineNumber = 0
    // "\r\n" is a single Character in Swift, so split on all three line-end forms.
    let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
    for line in lines {
        lineNumber += 1
        if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
        let fields = splitCSVLine(line)
        if columnCount < 0 {
            columnCount = fields.count
            if fields.contains(where: { parseNumber($0) == nil }) {
                header = fields
                continue
            }
        } else if fields.count != columnCount {
            throw DataError.raggedRow(path: path, line: lineNumber, expected: columnCount, found: fields.count)
        }
        for (c, field) in fields.enumerated() {
            guard let v = parseNumber(field) else {
                throw DataError.nonNumeric(path: path, line: lineNumber, column: c + 1, value: field)
            }
            values.append(v)
        }
        lineNumbers.append(lineNumber)
    }
    guard !lineNumbers.isEmpty else {
        throw DataError.noData(path: path, detail: header == nil ? "the file is empty" : "the file has a header but no data rows")
    }
    return CSVTable(path: path, header: header, columnCount: columnCount, values: values, lineNumbers: lineNumbers)
}

/// A finite number, or nil.
private func parseNumber(_ field: String) -> Double? {
    guard let v = Double(field), v.isFinite else { return nil }
    return v
}

/// Splits one line at commas outside double quotes; trims spaces and tabs around fields and
/// removes the quotes of quoted fields.
private func splitCSVLine(_ line: Substring) -> [String] {
    var fields: [String] = []
    var current = ""
    var inQuotes = false
    var wasQuoted = false
    var chars = line.makeIterator()
    var pending: Character? = nil
    func finish() {
        fields.append(wasQuoted ? current : current.trimmingCharacters(in: CharacterSet(charactersIn: " \t")))
        current = ""
        wasQuoted = false
    }
    while let ch = pending ?? chars.next() {
        pending = nil
        if inQuotes {
            if ch == "\"" {
                if let next = chars.next() {
                    if next == "\"" { current.append("\"") } else { inQuotes = false; pending = next }
                } else {
                    inQuotes = false
                }
            } else {
                current.append(ch)
            }
        } else if ch == "," {
            finish()
        } else if ch == "\"" && current.allSatisfy({ $0 == " " || $0 == "\t" }) {
            current = ""
            inQuotes = true
            wasQuoted = true
        } else if wasQuoted && (ch == " " || ch == "\t") {
            continue  // spaces after a closing quote
        } else {
            current.append(ch)
        }
    }
    finish()
    return fields
}

/// A CSV column, by 0-based index (negative counts from the end: -1 is the last column) or
/// by header name. Integer and string literals convert, so `[5]` and `["y"]` both work.
public enum CSVColumn: Hashable, Sendable, ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, CustomStringConvertible {
    case index(Int)
    case name(String)

    public init(integerLiteral value: Int) { self = .index(value) }
    public init(stringLiteral value: String) { self = .name(value) }

    public var description: String {
        switch self {
        case .index(let i): return "index \(i)"
        case .name(let n): return "'\(n)'"
        }
    }
}

/// The kind of supervised task a CSV file describes.
public enum TaskKind: Sendable {
    /// One target column of non-negative integer class labels.
    case classification
    /// One or more real-valued target columns.
    case regression
}

extension Dataset {
    /// A data set from a numeric CSV file: `targetColumns` become the targets and all other
    /// columns, in file order, the inputs ([N, inputColumns]).
    ///
    /// - Parameters:
    ///   - targetColumns: the target columns by index (negative from the end) or header name.
    ///   - task: `.classification` needs exactly one target column of non-negative integers;
    ///     the class count is `classCount` if given, else the largest label + 1.
    ///     `.regression` gives targets [N, targetColumns.count] named after the header.
    ///   - name: the data set's name; defaults to the file name without extension.
    /// `fromCSV` with target columns given as 0-based indices (negative from the end).
    public static func fromCSV(path: String, targetColumns: [Int], task: TaskKind,
                               classCount: Int? = nil, name: String? = nil) throws -> Dataset {
        try fromCSV(path: path, targetColumns: targetColumns.map(CSVColumn.index), task: task,
                    classCount: classCount, name: name)
    }

    /// `fromCSV` with target columns given by header name.
    public static func fromCSV(path: String, targetColumns: [String], task: TaskKind,
                               classCount: Int? = nil, name: String? = nil) throws -> Dataset {
        try fromCSV(path: path, targetColumns: targetColumns.map(CSVColumn.name), task: task,
                    classCount: classCount, name: name)
    }

    public static func fromCSV(path: String, targetColumns: [CSVColumn], task: TaskKind,
                               classCount: Int? = nil, name: String? = nil) throws -> Dataset {
        let table = try readCSV(path)
        let cols = table.columnCount
        var targetIndices: [Int] = []
        for column in targetColumns {
            let index: Int
            switch column {
            case .index(let i):
                let resolved = i < 0 ? cols + i : i
                guard resolved >= 0 && resolved < cols else {
                    throw DataError.badColumn(path: path, detail: "column index \(i) out of range for \(cols) columns")
                }
                index = resolved
            case .name(let n):
                guard let header = table.header else {
                    throw DataError.badColumn(path: path, detail: "column '\(n)' requested by name but the file has no header row")
                }
                guard let i = header.firstIndex(of: n) else {
                    throw DataError.badColumn(path: path, detail: "no column named '\(n)' (columns: \(header.joined(separator: ", ")))")
                }
                index = i
            }
            guard !targetIndices.contains(index) else {
                throw DataError.badColumn(path: path, detail: "target column \(table.columnName(index)) listed twice")
            }
            targetIndices.append(index)
        }
        guard !targetIndices.isEmpty else {
            throw DataError.badColumn(path: path, detail: "no target columns given")
        }
        let inputIndices = (0..<cols).filter { !targetIndices.contains($0) }
        guard !inputIndices.isEmpty else {
            throw DataError.badColumn(path: path, detail: "every column is a target; no input columns left")
        }
        let n = table.rowCount
        let inputs = Tensor(shape: [n, inputIndices.count]) { out in
            for r in 0..<n {
                for (k, c) in inputIndices.enumerated() { out[r * inputIndices.count + k] = Float(table[r, c]) }
            }
        }
        let datasetName = name ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension

        switch task {
        case .classification:
            guard targetIndices.count == 1, let c = targetIndices.first else {
                throw DataError.badColumn(path: path, detail: "classification needs exactly one target column, got \(targetIndices.count)")
            }
            var labels = [Int](repeating: 0, count: n)
            for r in 0..<n {
                let v = table[r, c]
                guard v >= 0, v == v.rounded(), v < 1e9 else {
                    throw DataError.invalidValue(path: path, detail:
                        "line \(table.lineNumbers[r]), column \(c + 1): class label \(v) is not a non-negative integer")
                }
                labels[r] = Int(v)
                if let k = classCount, labels[r] >= k {
                    throw DataError.invalidValue(path: path, detail:
                        "line \(table.lineNumbers[r]), column \(c + 1): class label \(labels[r]) is not below the class count \(k)")
                }
            }
            let count = classCount ?? ((labels.max() ?? -1) + 1)
            return Dataset(name: datasetName, inputs: inputs,
                           targets: .classes(IntTensor(shape: [n], scalars: labels), classCount: count))
        case .regression:
            let k = targetIndices.count
            let targets = Tensor(shape: [n, k]) { out in
                for r in 0..<n {
                    for (j, c) in targetIndices.enumerated() { out[r * k + j] = Float(table[r, c]) }
                }
            }
            return Dataset(name: datasetName, inputs: inputs, targets: .regression(targets),
                           targetNames: targetIndices.map { table.columnName($0) })
        }
    }
}
