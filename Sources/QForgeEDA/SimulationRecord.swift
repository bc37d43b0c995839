import Foundation

/// What a simulation of a build directory found, saved beside the design as `sim.json` so
/// later steps (the HTML report, a design-space sweep) can show it without simulating again.
public struct SimulationRecord: Codable, Equatable, Sendable {
    public var simulator: String
    public var passed: Int
    public var failed: Int
    public var cyclesPerInference: Int
    public var expectedCyclesPerInference: Int
    public var latency: Int
    public var expectedLatency: Int

    public static let fileName = "sim.json"

    enum CodingKeys: String, CodingKey {
        case simulator, passed, failed, latency
        case cyclesPerInference = "cycles_per_inference", expectedCyclesPerInference = "expected_cycles_per_inference"
        case expectedLatency = "expected_latency"
    }

    public init(simulator: Simulator, report: SimulationReport) {
        self.simulator = simulator.rawValue
        passed = report.passed; failed = report.failed
        cyclesPerInference = report.cyclesPerInference; expectedCyclesPerInference = report.expectedCyclesPerInference
        latency = report.latency; expectedLatency = report.expectedLatency
    }

    /// Every checked output matched the integer model, and something was checked.
    public var bitExact: Bool { failed == 0 && passed > 0 }

    public func write(directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent(SimulationRecord.fileName)))
    }

    /// The record in `directory`, nil when there is none.
    public static func load(directory: String) throws -> SimulationRecord? {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do { return try JSONDecoder().decode(SimulationRecord.self, from: data) } catch {
            throw EDAError.invalid("\(path) is not a simulation record written by qforge sim (\(error)); delete it or run qforge sim again")
        }
    }
}
