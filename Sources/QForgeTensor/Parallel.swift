import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Splitting work over the machine's cores. Work below `threshold` elements runs on the
/// calling thread: spawning costs more than it saves on small tensors.
public enum Parallel {
    public static let coreCount = Swift.max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Elementwise work at or above this many (element × cost) units is split.
    nonisolated(unsafe) public static var threshold = 1 << 16

    /// Calls `body` on contiguous sub-ranges covering 0..<count, one per core when
    /// `count × cost` reaches the threshold, else once with the whole range.
    @inline(__always)
    public static func forRange(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = (count * cost >= threshold && count > 1 && !isSerial) ? Swift.min(coreCount, count) : 1
        if parts == 1 {
            if count > 0 { body(0..<count) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            Denormals.withFlushToZero {
                let lo = count * p / parts, hi = count * (p + 1) / parts
                if lo < hi { body(lo..<hi) }
            }
        }
    }

    /// Calls `body(i)` for every task index, `coreCount` tasks at a time.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 || coreCount == 1 || isSerial {
            for i in 0..<count { body(i) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: count) { i in
            Denormals.withFlushToZero { body(i) }
        }
    }
}

extension Parallel {
    /// The per-thread flag behind `serially` (a non-nil value: set).
    private static let serialKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether the calling thread is inside `serially`.
    public static var isSerial: Bool { pthread_getspecific(serialKey) != nil }

    /// Runs `body` with every `forRange` and `forEach` it calls on this thread kept on this
    /// thread: for work that is already split over the cores at a coarser grain (each core
    /// takes whole blocks of samples), so the kernels inside do not split again.
    public static func serially<R>(_ body: () throws -> R) rethrows -> R {
        let outer = pthread_getspecific(serialKey)
        pthread_setspecific(serialKey, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(serialKey, outer) }
        return try body()
    }
}

/// Subnormal floats (below 1.2e-38) make x86 arithmetic up to 100× slower, and training
/// produces them: Adam's second moments and the gradients of saturated units decay towards
/// zero. As in most training frameworks' fast modes, QForge flushes them to zero (FTZ and DAZ
/// in MXCSR) while it computes. MXCSR is per thread, so each parallel task sets it, and every
/// thread gets its previous setting back afterwards: the caller's floating-point environment
/// is left as it was.
public enum Denormals {
    @inline(__always)
    public static func withFlushToZero<R>(_ body: () throws -> R) rethrows -> R {
        #if arch(x86_64) && canImport(Glibc)
        var saved = fenv_t()
        fegetenv(&saved)
        if saved.__mxcsr & 0x8040 != 0x8040 {
            var env = saved
            env.__mxcsr |= 0x8040  // FTZ (bit 15) and DAZ (bit 6)
            fesetenv(&env)
            defer { fesetenv(&saved) }
            return try body()
        }
        #endif
        return try body()
    }
}
