import Foundation

/// Everything that can go wrong while reading or writing data files.
///
/// Every case carries the path of the file (or directory) involved and enough detail to say
/// what is wrong with it. `description` is a single line of the form
/// `<path>: <problem>[; <how to fix it>]`, suitable for printing straight to a terminal.
///
/// The readers in this module never trap on malformed input: they throw one of these instead.
public enum DataError: Error, CustomStringConvertible, Equatable, Sendable {
    /// No file exists at `path`.
    case fileNotFound(path: String)
    /// The file exists but could not be read (a directory, no permission, an I/O error).
    case unreadable(path: String, reason: String)
    /// The file could not be written.
    case unwritable(path: String, reason: String)
    /// The file is gzip-compressed but zlib (`libz.so.1`) could not be loaded at run time.
    case zlibUnavailable(path: String, reason: String)
    /// The gzip stream is truncated or corrupt.
    case corruptGzip(path: String, reason: String)
    /// The file does not start with the magic number of `format` (for IDX this includes an
    /// unknown type code).
    case badMagic(path: String, format: String, detail: String)
    /// The header is present but malformed (e.g. an IDX rank outside 1...8, an unparsable
    /// `.npy` header dictionary).
    case badHeader(path: String, format: String, detail: String)
    /// The file holds fewer data bytes than its header requires.
    case truncated(path: String, format: String, detail: String)
    /// The file holds more data bytes than its header describes.
    case trailingBytes(path: String, format: String, detail: String)
    /// A `.npy` file with an element type this reader does not handle.
    case unsupportedDtype(path: String, dtype: String)
    /// A `.npy` file stored big-endian (e.g. `'>f4'`).
    case bigEndian(path: String, dtype: String)
    /// A `.npy` file stored in Fortran (column-major) order.
    case fortranOrder(path: String)
    /// A named data set (or one of its files) is missing; `fix` says how to get it.
    case datasetNotFound(path: String, dataset: String, fix: String)
    /// Two files (or parts of a file) that must agree do not, e.g. image and label counts.
    case mismatch(path: String, detail: String)
    /// A value is not acceptable where it is used (e.g. a class label that is negative or
    /// not an integer).
    case invalidValue(path: String, detail: String)
    /// A CSV field that should be a number is not. `line` and `column` are 1-based.
    case nonNumeric(path: String, line: Int, column: Int, value: String)
    /// A CSV row with a different number of fields from the first row. `line` is 1-based.
    case raggedRow(path: String, line: Int, expected: Int, found: Int)
    /// The file holds no data rows / samples.
    case noData(path: String, detail: String)
    /// A requested column does not exist or cannot be used as asked.
    case badColumn(path: String, detail: String)

    /// The file or directory the error is about.
    public var path: String {
        switch self {
        case .fileNotFound(let p), .fortranOrder(let p): return p
        case .unreadable(let p, _), .unwritable(let p, _), .zlibUnavailable(let p, _),
             .corruptGzip(let p, _), .mismatch(let p, _), .invalidValue(let p, _),
             .noData(let p, _), .badColumn(let p, _), .unsupportedDtype(let p, _),
             .bigEndian(let p, _):
            return p
        case .badMagic(let p, _, _), .badHeader(let p, _, _), .truncated(let p, _, _),
             .trailingBytes(let p, _, _), .datasetNotFound(let p, _, _):
            return p
        case .nonNumeric(let p, _, _, _), .raggedRow(let p, _, _, _): return p
        }
    }

    /// The problem (and fix, where there is one) without the leading path.
    public var problem: String {
        switch self {
        case .fileNotFound:
            return "file not found"
        case .unreadable(_, let reason):
            return "cannot read file: \(reason)"
        case .unwritable(_, let reason):
            return "cannot write file: \(reason)"
        case .zlibUnavailable(_, let reason):
            return "file is gzip-compressed but zlib could not be loaded (\(reason)); install zlib (e.g. 'apt-get install -y zlib1g') or decompress the file with 'gunzip'"
        case .corruptGzip(_, let reason):
            return "corrupt gzip data: \(reason); download or copy the file again"
        case .badMagic(_, let format, let detail):
            return "not a valid \(format) file: \(detail)"
        case .badHeader(_, let format, let detail):
            return "bad \(format) header: \(detail)"
        case .truncated(_, let format, let detail):
            return "truncated \(format) file: \(detail)"
        case .trailingBytes(_, let format, let detail):
            return "unexpected trailing bytes in \(format) file: \(detail)"
        case .unsupportedDtype(_, let dtype):
            return "unsupported dtype '\(dtype)' (supported: float32 '<f4', uint8 '|u1', int64 '<i8'); convert with e.g. a.astype(numpy.float32) before saving"
        case .bigEndian(_, let dtype):
            return "big-endian dtype '\(dtype)' not supported; save a little-endian copy with a.astype(a.dtype.newbyteorder('<'))"
        case .fortranOrder:
            return "Fortran order not supported; save with np.ascontiguousarray"
        case .datasetNotFound(_, let dataset, let fix):
            return "\(dataset) not found; \(fix)"
        case .mismatch(_, let detail):
            return detail
        case .invalidValue(_, let detail):
            return "invalid value: \(detail)"
        case .nonNumeric(_, let line, let column, let value):
            let shown = value.isEmpty ? "empty field" : "'\(value)'"
            return "line \(line), column \(column): \(shown) is not a (finite) number"
        case .raggedRow(_, let line, let expected, let found):
            return "line \(line): ragged row with \(found) field\(found == 1 ? "" : "s"), expected \(expected) like the first row"
        case .noData(_, let detail):
            return "no data: \(detail)"
        case .badColumn(_, let detail):
            return "bad column selection: \(detail)"
        }
    }

    public var description: String {
        // Keep the message on one line even if a detail (e.g. a CSV value) holds a newline.
        let text = "\(path): \(problem)"
        return text.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n")
    }
}
