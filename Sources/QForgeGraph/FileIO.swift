import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads and atomic replacing writes over POSIX calls, with errno messages.
enum FileIO {
    private static func errnoMessage(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// The bytes of the file at `path`.
    static func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GraphError(.cannotRead(reason: errnoMessage(errno)), file: path) }
        defer { _ = close(fd) }
        var result: [UInt8] = []
        let end = lseek(fd, 0, SEEK_END)
        if end > 0, lseek(fd, 0, SEEK_SET) == 0, end < Int64(Int.max / 2) {
            result.reserveCapacity(Int(end))
        }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw GraphError(.cannotRead(reason: errnoMessage(errno)), file: path)
            }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<n])
        }
        return result
    }

    /// Writes a file by streaming into a temporary sibling, syncing it, and renaming it over
    /// `path`. `produce` is called with a sink that appends bytes; if it or any system call
    /// fails, the temporary file is removed and whatever was at `path` stays as it was.
    static func replaceAtomically(_ path: String,
                                  produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temp = directory + "/." + url.lastPathComponent + ".tmp-" + UUID().uuidString
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw GraphError(.cannotWrite(reason: "cannot create a temporary file in \(directory): \(errnoMessage(errno))"),
                             file: path)
        }
        var isOpen = true
        var renamed = false
        defer {
            if isOpen { _ = close(fd) }
            if !renamed { _ = unlink(temp) }
        }
        try produce { buffer in
            guard var base = buffer.baseAddress else { return }
            var remaining = buffer.count
            while remaining > 0 {
                let n = write(fd, base, remaining)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw GraphError(.cannotWrite(reason: errnoMessage(errno)), file: path)
                }
                remaining -= n
                base += n
            }
        }
        guard fsync(fd) == 0 else { throw GraphError(.cannotWrite(reason: errnoMessage(errno)), file: path) }
        isOpen = false
        guard close(fd) == 0 else { throw GraphError(.cannotWrite(reason: errnoMessage(errno)), file: path) }
        guard rename(temp, path) == 0 else {
            throw GraphError(.cannotWrite(reason: "cannot replace the file: \(errnoMessage(errno))"), file: path)
        }
        renamed = true
    }
}
