import Foundation

// Single arithmetic units for measuring what a multiply-accumulate costs at a bit width:
// a MAC with an accumulator register and a one-cycle dot-product unit (DPU). Each comes with
// a reference model, random stimulus, and a self-checking testbench that prints the same
// "N passed, M failed" summary as a design's testbench.

/// How a dot-product unit narrows its full-width sum.
public enum DotOutput: String, CaseIterable, Sendable, Codable {
    /// The whole sum.
    case full
    /// The top `bits` bits of the full-width sum.
    case msb
    /// The low `bits` bits, all ones when any higher bit is set (saturation; inputs are positive).
    case lsb
}

/// A unit QForge can generate on its own.
public enum ArithmeticUnit: Equatable, Sendable, CustomStringConvertible {
    /// Signed `bits` × `bits` products added into a 2·`bits`-bit accumulator register (wrapping)
    /// when `valid_i`; synchronous active-low reset clears it; the accumulator is `last_o`.
    case mac(bits: Int)
    /// Unsigned dot product of two `n`-element vectors of `bits`-bit elements in one cycle
    /// (products summed by a balanced adder tree), the result registered on `dot_o`.
    case dpu(n: Int, bits: Int, output: DotOutput)

    /// Checks the sizes; the message names the problem and the allowed range.
    public func validate() throws {
        switch self {
        case let .mac(bits):
            guard (1...32).contains(bits) else { throw HardwareError.invalid("MAC: \(bits) bits is outside 1…32 (the accumulator holds 2 × bits ≤ 64)") }
        case let .dpu(n, bits, _):
            guard (1...16).contains(bits) else { throw HardwareError.invalid("DPU: \(bits) bits is outside 1…16") }
            guard (1...4096).contains(n) else { throw HardwareError.invalid("DPU: \(n) elements is outside 1…4096") }
        }
    }

    public var module: String {
        switch self {
        case let .mac(bits): return "qf_mac_b\(bits)"
        case let .dpu(n, bits, output): return "qf_dpu_n\(n)_b\(bits)_\(output.rawValue)"
        }
    }

    public var testbench: String { module + "_tb" }

    public var description: String {
        switch self {
        case let .mac(bits): return "MAC \(bits)-bit"
        case let .dpu(n, bits, output): return "DPU N=\(n) \(bits)-bit \(output.rawValue)"
        }
    }

    /// Multiply-accumulates per clock cycle.
    public var macsPerCycle: Int {
        switch self {
        case .mac: return 1
        case let .dpu(n, _, _): return n
        }
    }

    /// Width of the full sum (MAC: the accumulator; DPU: enough for n × (2^bits − 1)²).
    public var fullBits: Int {
        switch self {
        case let .mac(bits): return 2 * bits
        case let .dpu(n, bits, _):
            let maxProduct = UInt64((1 << bits) - 1) * UInt64((1 << bits) - 1)
            let (total, overflow) = maxProduct.multipliedReportingOverflow(by: UInt64(n))
            return overflow ? 64 : max(1, 64 - total.leadingZeroBitCount)
        }
    }

    /// Width of the registered output.
    public var outputBits: Int {
        switch self {
        case .mac: return fullBits
        case let .dpu(_, bits, output): return output == .full ? fullBits : min(bits, fullBits)
        }
    }
}

/// A generated unit: its module, a testbench, and stimulus and expected outputs computed by
/// the reference model.
public struct ArithmeticUnitDesign: Sendable {
    public var unit: ArithmeticUnit
    /// File name → contents (the module file, the testbench, `<module>_stimulus.hex`, `<module>_expected.hex`).
    public var files: [String: String]
    public var vectors: Int

    public var rtl: [String] { ["\(unit.module).v"] }
    public var testbenchFile: String { "\(unit.testbench).v" }

    public init(_ unit: ArithmeticUnit, vectors: Int = 200, seed: UInt64 = 1) throws {
        try unit.validate()
        guard vectors >= 1 else { throw HardwareError.invalid("a unit test needs at least one vector, not \(vectors)") }
        self.unit = unit
        self.vectors = vectors
        var rng = UnitRandom(seed: seed)
        var stimulus: [String] = [], expected: [String] = []
        switch unit {
        case let .mac(bits):
            var acc: Int64 = 0
            let accBits = unit.fullBits
            for i in 0..<vectors {
                let reset = i == 0 || rng.below(50) == 0
                let valid = rng.below(4) != 0
                let a = rng.signed(bits: bits, extremes: true), b = rng.signed(bits: bits, extremes: true)
                acc = reset ? 0 : (valid ? wrapSigned(acc &+ a &* b, bits: accBits) : acc)
                // {rst_n, valid, a, b}: b in the low bits.
                stimulus.append(packHex([(reset ? 0 : 1, 1), (valid ? 1 : 0, 1), (a, bits), (b, bits)]))
                expected.append(packHex([(acc, accBits)]))
            }
        case let .dpu(n, bits, output):
            let full = unit.fullBits, out = unit.outputBits
            for i in 0..<vectors {
                // All ones, all zeros, then elements below 2^k for a random k (small sums reach
                // the unsaturated LSB case).
                let limit = i == 0 ? bits : i == 1 ? 0 : Int(rng.below(UInt64(bits + 1)))
                let a = (0..<n).map { _ in i == 0 ? Int64((1 << bits) - 1) : Int64(rng.below(UInt64(1) << UInt64(limit))) }
                let b = (0..<n).map { _ in i == 0 ? Int64((1 << bits) - 1) : Int64(rng.below(UInt64(1) << UInt64(limit))) }
                let sum = zip(a, b).reduce(UInt64(0)) { $0 &+ UInt64($1.0) &* UInt64($1.1) }
                let value: UInt64
                switch output {
                case .full: value = sum
                case .msb: value = sum >> UInt64(full - out)
                case .lsb: value = sum >> UInt64(out) != 0 ? (UInt64(1) << UInt64(out)) - 1 : sum
                }
                // {a, b}, element 0 in the low bits of each.
                stimulus.append(packHex(a.reversed().map { ($0, bits) } + b.reversed().map { ($0, bits) }))
                expected.append(packHex([(Int64(bitPattern: value), out)]))
            }
        }
        files = [
            "\(unit.module).v": emitArithmeticUnit(unit),
            "\(unit.testbench).v": emitArithmeticTestbench(unit, vectors: vectors),
            "\(unit.module)_stimulus.hex": stimulus.joined(separator: "\n") + "\n",
            "\(unit.module)_expected.hex": expected.joined(separator: "\n") + "\n",
        ]
    }

    /// Writes the files into `directory` (created if needed; files of the same names are replaced).
    public func write(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, text) in files {
            try Data(text.utf8).write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent(name)))
        }
    }
}

/// `x` wrapped to a signed `bits`-bit value.
private func wrapSigned(_ x: Int64, bits: Int) -> Int64 {
    bits >= 64 ? x : (x << Int64(64 - bits)) >> Int64(64 - bits)
}

/// Fields (value, width), the first in the high bits, as one hex number (two's complement).
func packHex(_ fields: [(Int64, Int)]) -> String {
    var bits: [Bool] = []  // most significant first
    for (value, width) in fields {
        for i in stride(from: width - 1, through: 0, by: -1) { bits.append(i < 64 && (UInt64(bitPattern: value) >> UInt64(i)) & 1 == 1) }
    }
    let pad = (4 - bits.count % 4) % 4
    bits = Array(repeating: false, count: pad) + bits
    var hex = ""
    for i in stride(from: 0, to: bits.count, by: 4) {
        let nibble = (0..<4).reduce(0) { $0 << 1 | (bits[i + $1] ? 1 : 0) }
        hex.append(String(nibble, radix: 16))
    }
    return hex
}

/// SplitMix64: reproducible stimulus.
struct UnitRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: UInt64) -> UInt64 { n <= 1 ? 0 : next() % n }
    /// A signed `bits`-bit value, the range ends one time in eight each.
    mutating func signed(bits: Int, extremes: Bool) -> Int64 {
        let lo = -(Int64(1) << Int64(bits - 1)), hi = (Int64(1) << Int64(bits - 1)) - 1
        if bits == 1 { return below(2) == 0 ? 0 : -1 }
        if extremes {
            switch below(8) {
            case 0: return lo
            case 1: return hi
            default: break
            }
        }
        return lo + Int64(bitPattern: below(UInt64(bitPattern: hi - lo) + 1))
    }
}

func emitArithmeticUnit(_ unit: ArithmeticUnit) -> String {
    switch unit {
    case let .mac(bits):
        let acc = unit.fullBits
        var v = VerilogText(header: ["MAC: signed \(bits)-bit product added into a \(acc)-bit accumulator register when valid_i (wraps); last_o is the accumulator."], command: "qforge units mac")
        v.block("module \(unit.module) (", ");") { v in
            v.line("input  wire clk_i,")
            v.line("input  wire rst_ni,")
            v.line("input  wire valid_i,")
            v.line("input  wire signed \(range(bits)) a_i,")
            v.line("input  wire signed \(range(bits)) b_i,")
            v.line("output wire signed \(range(acc)) last_o")
        }
        v.line()
        v.block("", "") { v in
            v.line("reg signed \(range(acc)) acc_q;")
            v.line("reg signed \(range(acc)) acc_d;")
            v.line()
            v.block("always @(*) begin") { v in
                v.line("acc_d = acc_q;")
                v.line("if (valid_i) acc_d = acc_q + a_i * b_i;")
            }
            v.line()
            v.block("always @(posedge clk_i) begin") { v in
                v.line("if (!rst_ni) acc_q <= \(acc)'sd0;")
                v.line("else acc_q <= acc_d;")
            }
            v.line()
            v.line("assign last_o = acc_q;")
        }
        v.line("endmodule")
        return v.text.replacingOccurrences(of: "\n\n\n", with: "\n\n")
    case let .dpu(n, bits, output):
        let full = unit.fullBits, out = unit.outputBits
        var v = VerilogText(header: ["DPU: unsigned dot product of two \(n)-element vectors of \(bits)-bit elements in one cycle (balanced adder tree),",
                                     "output \(output.rawValue): \(out) of \(full) sum bits, registered."], command: "qforge units dpu")
        v.block("module \(unit.module) (", ");") { v in
            v.line("input  wire clk_i,")
            v.line("input  wire rst_ni,")
            v.line("input  wire \(range(n * bits)) a_i,")
            v.line("input  wire \(range(n * bits)) b_i,")
            v.line("output wire \(range(out)) dot_o")
        }
        v.line()
        v.block("", "") { v in
            // Level 0: the products; each further level adds neighbours, one bit wider.
            var level = (0..<n).map { "p0_\($0)" }
            var width = 2 * bits
            for (i, name) in level.enumerated() {
                v.line("wire \(range(width)) \(name) = a_i[\(i * bits) +: \(bits)] * b_i[\(i * bits) +: \(bits)];")
            }
            var depth = 0
            while level.count > 1 {
                depth += 1
                let w = min(width + 1, full)
                var next: [String] = []
                for j in stride(from: 0, to: level.count, by: 2) {
                    let name = "p\(depth)_\(j / 2)"
                    let rhs = j + 1 < level.count ? "\(level[j]) + \(level[j + 1])" : level[j]
                    v.line("wire \(range(w)) \(name) = \(rhs);")
                    next.append(name)
                }
                level = next
                width = w
            }
            v.line("wire \(range(full)) sum = \(level[0]);")
            v.line("reg  \(range(out)) dot_q;")
            v.line("reg  \(range(out)) dot_d;")
            v.line()
            v.block("always @(*) begin") { v in
                switch output {
                case .full: v.line("dot_d = sum;")
                case .msb: v.line("dot_d = sum[\(full - 1):\(full - out)];")
                case .lsb: v.line("dot_d = (|sum[\(full - 1):\(out)]) ? {\(out){1'b1}} : sum[\(out - 1):0];")
                }
            }
            v.line()
            v.block("always @(posedge clk_i) begin") { v in
                v.line("if (!rst_ni) dot_q <= \(out)'d0;")
                v.line("else dot_q <= dot_d;")
            }
            v.line()
            v.line("assign dot_o = dot_q;")
        }
        v.line("endmodule")
        return v.text
    }
}

func emitArithmeticTestbench(_ unit: ArithmeticUnit, vectors: Int) -> String {
    let stimulusBits: Int, outName: String
    switch unit {
    case let .mac(bits): stimulusBits = 2 + 2 * bits; outName = "last_o"
    case let .dpu(n, bits, _): stimulusBits = 2 * n * bits; outName = "dot_o"
    }
    let out = unit.outputBits
    var v = VerilogText(header: ["Testbench of \(unit.module): applies \(vectors) stimulus vectors and checks every registered output against the reference model."], command: "qforge units")
    v.line("`timescale 1ns / 1ps")
    v.block("module \(unit.testbench);", "endmodule") { v in
        v.line("reg clk = 1'b0;")
        v.line("reg rst_n = 1'b0;")
        v.line("reg \(range(stimulusBits)) stimulus [0:\(vectors - 1)];")
        v.line("reg \(range(out)) expected [0:\(vectors - 1)];")
        v.line("wire \(range(out)) result;")
        v.line("integer i;")
        v.line("integer passed = 0;")
        v.line("integer failed = 0;")
        switch unit {
        case let .mac(bits):
            v.line("reg valid = 1'b0;")
            v.line("reg \(range(bits)) a = \(bits)'d0;")
            v.line("reg \(range(bits)) b = \(bits)'d0;")
            v.line("\(unit.module) dut (.clk_i(clk), .rst_ni(rst_n), .valid_i(valid), .a_i(a), .b_i(b), .last_o(result));")
        case let .dpu(n, bits, _):
            v.line("reg \(range(n * bits)) a = \(n * bits)'d0;")
            v.line("reg \(range(n * bits)) b = \(n * bits)'d0;")
            v.line("\(unit.module) dut (.clk_i(clk), .rst_ni(rst_n), .a_i(a), .b_i(b), .dot_o(result));")
        }
        v.line("always #5 clk = ~clk;")
        v.block("initial begin") { v in
            v.line("$readmemh(\"\(unit.module)_stimulus.hex\", stimulus);")
            v.line("$readmemh(\"\(unit.module)_expected.hex\", expected);")
            if case .dpu = unit {
                v.line("@(posedge clk); #1;")
                v.line("rst_n = 1'b1;")
            }
            v.block("for (i = 0; i < \(vectors); i = i + 1) begin") { v in
                switch unit {
                case .mac: v.line("{rst_n, valid, a, b} = stimulus[i];")
                case .dpu: v.line("{a, b} = stimulus[i];")
                }
                v.line("@(posedge clk); #1;")
                v.block("if (result !== expected[i]) begin") { v in
                    v.line("failed = failed + 1;")
                    v.line("if (failed <= 10) $display(\"FAIL vector %0d: \(outName) %h, expected %h\", i, result, expected[i]);")
                }
                v.line("else passed = passed + 1;")
            }
            v.line("$display(\"%0d passed, %0d failed\", passed, failed);")
            v.line("$finish;")
        }
    }
    return v.text
}
