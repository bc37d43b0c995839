import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Single-precision GEMM: C = alpha · op(A) · op(B) + beta · C, row-major.
///
/// Uses OpenBLAS's `cblas_sgemm`, loaded at run time with `dlopen("libopenblas.so.0")` so the
/// package builds with the Swift toolchain alone; falls back to a portable blocked Swift
/// kernel when the library is missing or `QFORGE_BLAS=swift`.
///
/// Debian's OpenBLAS 0.3.21 does not recognise recent Xeons and falls back to a slow generic
/// kernel. Before loading it we set `OPENBLAS_CORETYPE` (unless the user has) from the CPU's
/// flags: `SkylakeX` with AVX-512, `Haswell` with AVX2. The variable is read by the
/// library's constructor, which is why the library is loaded here and not linked.
public enum GEMM {
    public enum Backend: String, Sendable { case openBLAS = "OpenBLAS", swift = "Swift" }

    typealias SgemmFn = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float,
                                        UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
                                        Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias SetThreadsFn = @convention(c) (Int32) -> Void
    typealias GetThreadsFn = @convention(c) () -> Int32

    struct Library: @unchecked Sendable {
        let sgemm: SgemmFn
        let setThreads: SetThreadsFn?
        let getThreads: GetThreadsFn?
        let coreType: String?
    }

    static let library: Library? = loadOpenBLAS()

    /// The backend in use.
    public static var backend: Backend { library == nil ? .swift : .openBLAS }

    /// The `OPENBLAS_CORETYPE` in force when OpenBLAS was loaded (nil: the library chose).
    public static var openBLASCoreType: String? { library?.coreType }

    /// CPU flags from /proc/cpuinfo (Linux), empty elsewhere.
    static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            if let colon = line.firstIndex(of: ":") {
                return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            }
        }
        return []
    }

    /// The core type to request from OpenBLAS for this CPU.
    static func preferredCoreType(flags: Set<String>) -> String? {
        if flags.contains("avx512f") && flags.contains("avx512bw") && flags.contains("avx512vl") { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    static func loadOpenBLAS() -> Library? {
        if ProcessInfo.processInfo.environment["QFORGE_BLAS"] == "swift" { return nil }
        var coreType = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"]
        if coreType == nil, let preferred = preferredCoreType(flags: cpuFlags()) {
            setenv("OPENBLAS_CORETYPE", preferred, 0)
            coreType = preferred
        }
        for name in ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"] {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else { continue }
            guard let sym = dlsym(handle, "cblas_sgemm") else { continue }
            let setThreads = dlsym(handle, "openblas_set_num_threads").map { unsafeBitCast($0, to: SetThreadsFn.self) }
            let getThreads = dlsym(handle, "openblas_get_num_threads").map { unsafeBitCast($0, to: GetThreadsFn.self) }
            return Library(sgemm: unsafeBitCast(sym, to: SgemmFn.self), setThreads: setThreads,
                           getThreads: getThreads, coreType: coreType)
        }
        return nil
    }

    nonisolated(unsafe) static var defaultThreads: Int32 = {
        guard let lib = library, let get = lib.getThreads else { return 1 }
        return get()
    }()

    /// Runs `body` with OpenBLAS limited to one thread, for GEMMs issued from several of our
    /// own threads at once (per-sample convolution GEMMs).
    public static func singleThreaded<R>(_ body: () throws -> R) rethrows -> R {
        guard let lib = library, let set = lib.setThreads else { return try body() }
        _ = defaultThreads
        set(1)
        defer { set(defaultThreads) }
        return try body()
    }

    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, all row-major with the given
    /// leading dimensions (row strides).
    @inline(__always)
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        if let lib = library {
            // CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112
            lib.sgemm(101, transA ? 112 : 111, transB ? 112 : 111, Int32(m), Int32(n), Int32(k), alpha,
                      a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        } else {
            portableSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                          a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    /// The portable kernel: packs op(B) row-panels so the inner loop is a contiguous
    /// multiply-add over n, which the compiler vectorises.
    public static func portableSgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        // op(B) as a contiguous k×n matrix.
        let bp = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
        defer { bp.deallocate() }
        for p in 0..<k {
            for j in 0..<n { bp[p * n + j] = transB ? b[j * ldb + p] : b[p * ldb + j] }
        }
        Parallel.forRange(m, cost: n * k) { rows in
            let acc = UnsafeMutablePointer<Float>.allocate(capacity: n)
            defer { acc.deallocate() }
            for i in rows {
                acc.initialize(repeating: 0, count: n)
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let row = bp + p * n
                    for j in 0..<n { acc[j] += av * row[j] }
                }
                let crow = c + i * ldc
                if beta == 0 {
                    for j in 0..<n { crow[j] = alpha * acc[j] }
                } else {
                    for j in 0..<n { crow[j] = alpha * acc[j] + beta * crow[j] }
                }
            }
        }
    }
}
