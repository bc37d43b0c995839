import Foundation

// Parsers of what Yosys, OpenSTA and nextpnr print: pure functions from a log to values,
// tested on saved logs (Tests/QForgeEDATests/Fixtures).

/// The last `stat` block of a Yosys log: cell count, cells per type, and the chip area when
/// `stat -liberty` was given one.
public struct YosysStat: Equatable, Sendable {
    public var cells: Int
    public var cellTypes: [String: Int]
    /// µm² for the OSU liberty files (their area unit); nil without `-liberty`.
    public var area: Double?

    public init(cells: Int, cellTypes: [String: Int], area: Double?) {
        self.cells = cells; self.cellTypes = cellTypes; self.area = area
    }

    /// Parses Yosys 0.2x's `stat` output (`Number of cells: N`, then one `TYPE COUNT` line per
    /// type, then `Chip area for module '\top': A`); nil when the log has no such block.
    public static func parse(_ log: String) -> YosysStat? {
        let lines = log.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let start = lines.lastIndex(where: { $0.hasPrefix("Number of cells:") }),
              let cells = Int(lines[start].dropFirst("Number of cells:".count).trimmingCharacters(in: .whitespaces)) else { return nil }
        var types: [String: Int] = [:]
        var i = start + 1
        while i < lines.count, !lines[i].isEmpty {
            let words = lines[i].split(separator: " ", omittingEmptySubsequences: true)
            if words.count == 2, let n = Int(words[1]) { types[String(words[0]), default: 0] += n }
            i += 1
        }
        var area: Double?
        for line in lines[start...] where line.hasPrefix("Chip area for") {
            if let value = line.split(separator: ":").last.flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }) { area = value }
        }
        return YosysStat(cells: cells, cellTypes: types, area: area)
    }

    /// Cells whose type matches `predicate`, counted.
    public func count(_ predicate: (String) -> Bool) -> Int {
        cellTypes.filter { predicate($0.key) }.values.reduce(0, +)
    }
}

/// Power by kind, in watts, as OpenSTA's `report_power` prints its Total row.
public struct PowerFigures: Equatable, Sendable, Codable {
    public var internalWatts: Double
    public var switchingWatts: Double
    public var leakageWatts: Double
    public var totalWatts: Double
}

/// What an OpenSTA script printed: the worst setup slack and the total power.
public struct StaReport: Equatable, Sendable {
    /// ns; nil when no path was constrained.
    public var worstSlack: Double?
    public var power: PowerFigures?
    /// `Error:` lines (OpenSTA reports script errors but still exits 0).
    public var errors: [String]

    public static func parse(_ log: String) -> StaReport {
        var slack: Double?, power: PowerFigures?
        var errors: [String] = []
        for raw in log.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("Error") { errors.append(line) }
            if line.hasPrefix("worst slack ") { slack = Double(line.dropFirst("worst slack ".count).trimmingCharacters(in: .whitespaces)) }
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            if words.first == "Total", words.count >= 5 {
                let values = words[1...4].compactMap { Double($0) }
                if values.count == 4 {
                    power = PowerFigures(internalWatts: values[0], switchingWatts: values[1], leakageWatts: values[2], totalWatts: values[3])
                }
            }
        }
        return StaReport(worstSlack: slack, power: power, errors: errors)
    }
}

/// What nextpnr printed: resources used and available, the post-route Fmax, errors.
public struct NextpnrReport: Equatable, Sendable {
    public struct Resource: Equatable, Sendable {
        public var used: Int
        public var available: Int

        public init(used: Int, available: Int) { self.used = used; self.available = available }
    }

    /// From the last `Device utilisation:` block (ICESTORM_LC, ICESTORM_RAM, ICESTORM_DSP, SB_IO, …).
    public var utilisation: [String: Resource]
    /// MHz: the lowest clock of the last timing report (after routing when it got there).
    public var fmax: Double?
    public var errors: [String]

    public static func parse(_ log: String) -> NextpnrReport {
        var utilisation: [String: Resource] = [:]
        var fmaxByClock: [String: Double] = [:]
        var errors: [String] = []
        var inUtilisation = false
        for raw in log.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("ERROR:") { errors.append(line) }
            if line.hasSuffix("Device utilisation:") {
                inUtilisation = true
                utilisation = [:]
                continue
            }
            if inUtilisation {
                // "Info: \t ICESTORM_LC:    55/ 5280     1%"
                let body = line.hasPrefix("Info:") ? line.dropFirst(5).trimmingCharacters(in: .whitespaces) : ""
                let parts = body.split(separator: ":", maxSplits: 1)
                let numbers = parts.count == 2 ? parts[1].split(whereSeparator: { $0 == "/" || $0 == " " }).compactMap { Int($0) } : []
                if numbers.count >= 2 {
                    utilisation[String(parts[0])] = Resource(used: numbers[0], available: numbers[1])
                    continue
                }
                inUtilisation = false
            }
            // "Info: Max frequency for clock 'clk_i$SB_IO_IN_$glb_clk': 58.41 MHz (PASS at 12.00 MHz)"
            if let r = line.range(of: "Max frequency for clock '") {
                let rest = line[r.upperBound...]
                if let q = rest.range(of: "': ") {
                    let clock = String(rest[..<q.lowerBound])
                    if let mhz = rest[q.upperBound...].split(separator: " ").first.flatMap({ Double($0) }) { fmaxByClock[clock] = mhz }
                }
            }
        }
        return NextpnrReport(utilisation: utilisation, fmax: fmaxByClock.values.min(), errors: errors)
    }

    /// Resources used beyond what the device has, as "ICESTORM_LC 13355/5280".
    public var overfull: [String] {
        utilisation.filter { $0.value.used > $0.value.available }.sorted { $0.key < $1.key }
            .map { "\($0.key) \($0.value.used)/\($0.value.available)" }
    }

    /// Whether the run failed because the design needs more of something than the device has.
    public var didNotFit: Bool {
        !overfull.isEmpty || errors.contains {
            // Logic out of BELs, or an I/O with no pin left in the package (sg48 bonds 39 of the UP5K's 96).
            $0.contains("no BELs remaining") || $0.contains("Unable to place") || $0.contains("Unable to find a placement location")
        }
    }
}
