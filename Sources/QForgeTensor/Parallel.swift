import Dispatch
import Foundation

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
        let parts = (count * cost >= threshold && count > 1) ? Swift.min(coreCount, count) : 1
        if parts == 1 {
            if count > 0 { body(0..<count) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let lo = count * p / parts, hi = count * (p + 1) / parts
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Calls `body(i)` for every task index, `coreCount` tasks at a time.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 || coreCount == 1 {
            for i in 0..<count { body(i) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }
}
