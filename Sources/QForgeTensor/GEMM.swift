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
///
/// OpenBLAS runs single-threaded; QForge splits large products over the cores itself
/// (rows of C, or columns when there are few rows). Its own thread pool would otherwise spin
/// between calls and take a core from the elementwise work in between, and convolutions
/// already run one single-threaded GEMM per sample on each core.
public enum GEMM {
    public enum Backend: String, Sendable { case openBLAS = "OpenBLAS", swift = "Swift" }

    typealias SgemmFn = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float,
                                        UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
                                        Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias SetThreadsFn = @convention(c) (Int32) -> Void

    struct Library: @unchecked Sendable {
        let sgemm: SgemmFn
        let coreType: String?
    }

    static let library: Library? = loadOpenBLAS()

    /// The backend in use.
    public static var backend: Backend { library == nil ? .swift : .openBLAS }

    /// The `OPENBLAS_CORETYPE` in force when OpenBLAS was loaded (nil: the library chose).
    public static var openBLASCoreType: String? { library?.coreType }

    /// CPU flags from /proc/cpuinfo (Linux), empty elsewhere.
    public static func cpuFlags() -> Set<String> {
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
            setThreads?(1)
            return Library(sgemm: unsafeBitCast(sym, to: SgemmFn.self), coreType: coreType)
        }
        return nil
    }

    /// Products with at least this many multiply-adds are split over the cores.
    nonisolated(unsafe) public static var parallelThreshold = 1 << 18

    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, all row-major with the given
    /// leading dimensions (row strides). Large products are split over the cores unless
    /// `parallel` is false (callers that already run one product per core).
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, parallel: Bool = true) {
        let parts = Parallel.coreCount
        guard parallel, parts > 1, m * n * k >= parallelThreshold, m >= 2 * parts || n >= 32 * parts else {
            sgemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                        b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        if m >= 16 * parts || m >= n {
            // Split the rows of C (and of op(A)).
            Parallel.forEach(parts) { p in
                let lo = m * p / parts, hi = m * (p + 1) / parts
                if lo == hi { return }
                sgemmSerial(transA: transA, transB: transB, m: hi - lo, n: n, k: k, alpha: alpha,
                            a: transA ? a + lo : a + lo * lda, lda: lda, b: b, ldb: ldb, beta: beta,
                            c: c + lo * ldc, ldc: ldc)
            }
        } else {
            // Split the columns of C (and of op(B)), in multiples of 16.
            Parallel.forEach(parts) { p in
                let lo = (n / 16) * p / parts * 16, hi = p == parts - 1 ? n : (n / 16) * (p + 1) / parts * 16
                if lo >= hi { return }
                sgemmSerial(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha,
                            a: a, lda: lda, b: transB ? b + lo * ldb : b + lo, ldb: ldb, beta: beta,
                            c: c + lo, ldc: ldc)
            }
        }
    }

    /// One single-threaded product on the calling thread.
    @inline(__always)
    static func sgemmSerial(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
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

    /// The portable kernel (single-threaded; `sgemm` splits large products over the cores):
    /// packs op(B) into a contiguous k×n matrix so the inner loop is a contiguous multiply-add
    /// over n, which the compiler vectorises.
    public static func portableSgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        // op(B) as a contiguous k×n matrix.
        let bp = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
        defer { bp.deallocate() }
        for p in 0..<k {
            for j in 0..<n { bp[p * n + j] = transB ? b[j * ldb + p] : b[p * ldb + j] }
        }
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { acc.deallocate() }
        for i in 0..<m {
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
