import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - zlib, loaded at run time

/// The three (plus one optional) zlib entry points used to read gzip files.
///
/// zlib is loaded with `dlopen` on first use rather than linked, so the package builds without
/// zlib headers and a machine without zlib can still read uncompressed files. Only zlib's
/// opaque-pointer `gz*` API is used, so no C struct layout is assumed.
struct ZLib {
    typealias GzOpen = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>) -> OpaquePointer?
    typealias GzRead = @convention(c) (OpaquePointer, UnsafeMutableRawPointer, UInt32) -> Int32
    typealias GzClose = @convention(c) (OpaquePointer) -> Int32
    typealias GzError = @convention(c) (OpaquePointer, UnsafeMutablePointer<Int32>) -> UnsafePointer<CChar>?

    let gzopen: GzOpen
    let gzread: GzRead
    let gzclose: GzClose
    /// Optional: only used to word error messages.
    let gzerror: GzError?

    /// zlib return codes used in messages.
    static let zBufError: Int32 = -5
    static let zDataError: Int32 = -3
    static let zErrno: Int32 = -1

    /// The library names tried, in order (Linux soname first, then macOS).
    static let libraryNames = ["libz.so.1", "libz.so", "libz.1.dylib", "libz.dylib"]

    /// The loaded library, or the reason it could not be loaded. Loaded once per process.
    static let shared: Result<ZLib, ZLibLoadError> = load()

    struct ZLibLoadError: Error { let reason: String }

    private static func load() -> Result<ZLib, ZLibLoadError> {
        var handle: UnsafeMutableRawPointer?
        var reasons: [String] = []
        for name in libraryNames {
            handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)
            if handle != nil { break }
            if let msg = dlerror() { reasons.append(String(cString: msg)) }
        }
        guard let lib = handle else {
            return .failure(ZLibLoadError(reason: "dlopen(\"libz.so.1\") failed: " + (reasons.first ?? "unknown error")))
        }
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            guard let sym = dlsym(lib, name) else { return nil }
            return unsafeBitCast(sym, to: type)
        }
        guard let open = symbol("gzopen", as: GzOpen.self),
              let read = symbol("gzread", as: GzRead.self),
              let close = symbol("gzclose", as: GzClose.self) else {
            return .failure(ZLibLoadError(reason: "libz.so.1 lacks gzopen/gzread/gzclose"))
        }
        return .success(ZLib(gzopen: open, gzread: read, gzclose: close,
                             gzerror: symbol("gzerror", as: GzError.self)))
    }
}

// MARK: - Sequential byte reader

/// Reads a file front to back, transparently decompressing it when it starts with the gzip
/// magic bytes `1f 8b`. Plain files are read with stdio; gzip files with zlib's `gzread`.
///
/// A truncated or corrupt gzip stream is reported as `DataError.corruptGzip` as soon as it is
/// noticed: when `gzread` returns -1, or when it reaches the end of input and `gzclose`
/// reports an error (zlib signals "unexpected end of file" only through `gzclose`/`gzerror`).
final class ByteReader {
    let path: String
    /// Whether the file is gzip-compressed.
    let isGzip: Bool
    /// For gzip files, the uncompressed size modulo 2^32 from the gzip trailer (a size hint).
    private(set) var sizeHint: Int = 0

    private var file: UnsafeMutablePointer<FILE>?
    private var gz: OpaquePointer?
    private var zlib: ZLib?
    private var atEnd = false

    init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError.fileNotFound(path: path)
        }
        if isDirectory.boolValue { throw DataError.unreadable(path: path, reason: "is a directory") }
        guard let f = fopen(path, "rb") else {
            throw DataError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        var magic: (UInt8, UInt8) = (0, 0)
        let got = withUnsafeMutableBytes(of: &magic) { fread($0.baseAddress, 1, 2, f) }
        isGzip = got == 2 && magic.0 == 0x1F && magic.1 == 0x8B
        if !isGzip {
            rewind(f)
            file = f
            return
        }
        // gzip: read the trailer's ISIZE as a capacity hint, then hand the file to zlib.
        if fseek(f, -4, SEEK_END) == 0 {
            var isize: UInt32 = 0
            if withUnsafeMutableBytes(of: &isize, { fread($0.baseAddress, 1, 4, f) }) == 4 {
                sizeHint = Int(UInt32(littleEndian: isize))
            }
        }
        fclose(f)
        switch ZLib.shared {
        case .failure(let error):
            throw DataError.zlibUnavailable(path: path, reason: error.reason)
        case .success(let z):
            zlib = z
            guard let handle = z.gzopen(path, "rb") else {
                throw DataError.unreadable(path: path, reason: "gzopen failed: " + String(cString: strerror(errno)))
            }
            gz = handle
        }
    }

    deinit {
        if let f = file { fclose(f) }
        if let g = gz, let z = zlib { _ = z.gzclose(g) }
    }

    /// Reads up to `count` bytes into `buffer`; returns fewer only at the end of the data.
    func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        var done = 0
        while done < count && !atEnd {
            let want = min(count - done, 1 << 30)
            if let f = file {
                let n = fread(buffer + done, 1, want, f)
                done += n
                if n < want {
                    if ferror(f) != 0 {
                        throw DataError.unreadable(path: path, reason: String(cString: strerror(errno)))
                    }
                    atEnd = true
                }
            } else if let g = gz, let z = zlib {
                let n = z.gzread(g, buffer + done, UInt32(want))
                if n < 0 {
                    throw DataError.corruptGzip(path: path, reason: gzipMessage(g, z, fallback: "gzread failed"))
                }
                done += Int(n)
                if n == 0 { try finishGzip() }
            } else {
                atEnd = true
            }
        }
        return done
    }

    /// Reads everything that is left.
    func readAll() throws -> [UInt8] {
        var result: [UInt8] = []
        if let f = file {
            // Plain file: size it and read in one go.
            let start = ftell(f)
            if fseek(f, 0, SEEK_END) == 0 {
                let end = ftell(f)
                fseek(f, start, SEEK_SET)
                if end > start { result.reserveCapacity(end - start) }
            }
        } else {
            result.reserveCapacity(sizeHint)
        }
        let chunk = 1 << 20
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { scratch.deallocate() }
        while true {
            let n = try read(into: scratch, count: chunk)
            if n > 0 {
                result.append(contentsOf: UnsafeRawBufferPointer(start: scratch, count: n))
            }
            if n < chunk { break }
        }
        return result
    }

    /// Reads exactly `count` bytes if available (fewer at end of data).
    func read(count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var got = 0
        let bytes = try [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            guard let base = buf.baseAddress else { initialized = 0; return }
            got = try read(into: UnsafeMutableRawPointer(base), count: count)
            initialized = got
        }
        return bytes
    }

    /// Closes the file, reporting a gzip stream error that only shows up at close.
    func close() throws {
        if let f = file { fclose(f); file = nil }
        if gz != nil { try finishGzip() }
        atEnd = true
    }

    /// Closes the gzip stream and converts a close error (e.g. a truncated stream) to a
    /// `DataError`.
    private func finishGzip() throws {
        atEnd = true
        guard let g = gz, let z = zlib else { return }
        // Ask for the message before gzclose frees the state.
        let message = gzipMessage(g, z, fallback: "")
        gz = nil
        let rc = z.gzclose(g)
        if rc != 0 {
            let reason: String
            if rc == ZLib.zBufError {
                reason = "unexpected end of compressed data (the file is truncated)"
            } else if !message.isEmpty {
                reason = message
            } else {
                reason = "gzclose returned \(rc)"
            }
            throw DataError.corruptGzip(path: path, reason: reason)
        }
    }

    private func gzipMessage(_ g: OpaquePointer, _ z: ZLib, fallback: String) -> String {
        guard let gzerror = z.gzerror else { return fallback }
        var code: Int32 = 0
        guard let msg = gzerror(g, &code), code != 0 else { return fallback }
        let text = String(cString: msg)
        return text.isEmpty ? fallback : text
    }
}

// MARK: - Public entry point

/// The bytes of the file at `path`, decompressed when the file is gzip (magic `1f 8b`).
///
/// Decompression uses zlib loaded at run time (`dlopen("libz.so.1")`); if it cannot be loaded
/// a `DataError.zlibUnavailable` is thrown. A truncated or corrupt gzip stream throws
/// `DataError.corruptGzip`. Plain files are returned as they are.
public func readFileBytes(_ path: String) throws -> [UInt8] {
    let reader = try ByteReader(path: path)
    let bytes = try reader.readAll()
    try reader.close()
    return bytes
}

/// Writes `bytes` to `path` atomically, mapping failures to `DataError.unwritable`.
func writeFileBytes(_ bytes: [UInt8], to path: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
        throw DataError.unwritable(path: path, reason: "is a directory; give a file name")
    }
    let parent = (path as NSString).deletingLastPathComponent
    if !parent.isEmpty, !(FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) && isDirectory.boolValue) {
        throw DataError.unwritable(path: path, reason: "directory \(parent) does not exist")
    }
    do {
        try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw DataError.unwritable(path: path, reason: error.localizedDescription)
    }
}
