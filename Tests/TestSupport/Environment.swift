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
    throw missingResource(message())
}

/// Whether an executable named `name` is on the PATH.
public func toolAvailable(_ name: String) -> Bool {
    (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
        FileManager.default.isExecutableFile(atPath: "\($0)/\(name)")
    }
}

/// The error for a missing resource: a failure in CI, a skip elsewhere.
public func missingResource(_ message: String) -> Error {
    if isContinuousIntegration {
        return MissingTestResource(message: "\(message) (CI is set, so this is a failure, not a skip)")
    }
    return XCTSkip(message)
}

/// This thread's MXCSR (x86-64): the flush-to-zero and denormals-are-zero bits live there.
public func currentMXCSR() -> UInt32 {
    #if arch(x86_64) && canImport(Glibc)
    var env = fenv_t()
    fegetenv(&env)
    return env.__mxcsr
    #else
    return 0
    #endif
}
