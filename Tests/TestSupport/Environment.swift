import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether the tests run under continuous integration: the `CI` environment variable is set
/// to anything but "", "0" or "false".
public var isContinuousIntegration: Bool {
    guard let value = ProcessInfo.processInfo.environment["CI"] else { return false }
    return !["", "0", "false"].contains(value.lowercased())
}

/// Thrown by `requireResource` in CI: XCTest reports it as the test's failure.
public struct MissingTestResource: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// For a test that needs something the machine may lack (a data set, a tool): does nothing
/// when `available`; otherwise fails the test in CI (where `make deps` must have installed
/// it) and skips it elsewhere.
public func requireResource(_ available: Bool, _ message: @autoclosure () -> String) throws {
    guard !available else { return }
    if isContinuousIntegration {
        throw MissingTestResource(message: "\(message()) (CI is set, so this is a failure, not a skip)")
    }
    throw XCTSkip(message())
}

/// Runs `body` and then restores this thread's floating-point environment (on x86-64, MXCSR).
///
/// QForge's compute paths set flush-to-zero / denormals-are-zero on the thread that calls them
/// (`Trainer.train`, and any thread `DispatchQueue.concurrentPerform` borrows, the caller's
/// included) and leave it set. Tests that compute in-process wrap the call in this, so later
/// tests on the same thread (e.g. exact Float16 → Float conversions of subnormals) are not
/// affected by test order.
public func withFloatingPointEnvironmentRestored<R>(_ body: () throws -> R) rethrows -> R {
    var saved = fenv_t()
    fegetenv(&saved)
    defer { fesetenv(&saved) }
    return try body()
}

/// Clears flush-to-zero and denormals-are-zero (MXCSR bits 15 and 6) on this thread, so IEEE
/// subnormals behave exactly again. For tests that check exact float behaviour: QForge's
/// compute paths set both bits on the calling thread and leave them set, so whether an earlier
/// test trained a model on the main thread would otherwise decide whether these tests pass.
public func clearFlushToZero() {
    #if arch(x86_64) && canImport(Glibc)
    var env = fenv_t()
    fegetenv(&env)
    if env.__mxcsr & 0x8040 != 0 {
        env.__mxcsr &= ~UInt32(0x8040)
        fesetenv(&env)
    }
    #endif
}
