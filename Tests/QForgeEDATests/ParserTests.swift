import QForgeEDA
import XCTest

/// Report parsers are pure functions, tested on saved output.
final class ParserTests: XCTestCase {
    func testSimulationReport() throws {
        let log = """
            FAIL sample 3 output 1: got 0ffa, expected 0ffb, tlast 0
            FAIL timing burst sample 0 output 4: got fefd, expected 0005, tlast 0
            QFORGE cycles=87109 latency=4335 interval=3136 expected_latency=4335 expected_interval=3136
            19 passed, 2 failed
            - qf_tb.v:165: Verilog $finish
            """
        let r = try XCTUnwrap(SimulationReport.parse(log))
        XCTAssertEqual(r.passed, 19)
        XCTAssertEqual(r.failed, 2)
        XCTAssertEqual(r.cyclesPerInference, 3136)
        XCTAssertEqual(r.latency, 4335)
        XCTAssertEqual(r.expectedCyclesPerInference, 3136)
        XCTAssertEqual(r.cycles, 87109)
        XCTAssertEqual(r.failures.count, 2)
        XCTAssertNil(SimulationReport.parse("QFORGE cycles=10\n"), "no summary line: no report")
    }

    func testVerilatorDiagnostics() {
        let log = """
            %Warning-WIDTH: w.v:2:14: Operator ASSIGNW expects 2 bits on the Assign RHS, but Assign RHS's VARREF 'a_i' generates 4 bits.
                                    : ... In instance w
                2 |   assign y_o = a_i;
                  |              ^
                            ... For warning description see https://verilator.org/warn/WIDTH?v=5.006
            %Warning-UNUSEDSIGNAL: w.v:1:28: Bits of signal are not used: 'a_i'[3:2]
            %Error: Exiting due to 2 warning(s)
            """
        let d = Diagnostic.parseVerilator(log)
        XCTAssertEqual(d.count, 3)
        XCTAssertEqual(d[0], Diagnostic(severity: "Warning", code: "WIDTH", file: "w.v", line: 2,
                                        message: "Operator ASSIGNW expects 2 bits on the Assign RHS, but Assign RHS's VARREF 'a_i' generates 4 bits."))
        XCTAssertEqual(d[1].code, "UNUSEDSIGNAL")
        XCTAssertEqual(d[1].message, "Bits of signal are not used: 'a_i'[3:2]")
        XCTAssertEqual(d[2].severity, "Error")
    }

    func testToolsAreFoundByVariableThenPath() throws {
        XCTAssertThrowsError(try Tool.verilator.locate(environment: ["PATH": "/nonexistent"])) { e in
            XCTAssertEqual("\(e)", "verilator not found: install the Debian package 'verilator' (sudo apt-get install -y verilator), or set QFORGE_VERILATOR to its path")
        }
        XCTAssertThrowsError(try Tool.iverilog.locate(environment: ["QFORGE_IVERILOG": "/nonexistent/iverilog"])) { e in
            XCTAssertEqual("\(e)", "QFORGE_IVERILOG=/nonexistent/iverilog is not an executable file")
        }
        XCTAssertEqual(try Tool(name: "sh", variable: "QFORGE_SH", package: "dash").locate(environment: ["PATH": "/nonexistent:/bin"]), "/bin/sh")
        XCTAssertEqual(try Tool(name: "x", variable: "QFORGE_X", package: "x").locate(environment: ["QFORGE_X": "/bin/sh", "PATH": ""]), "/bin/sh")
    }
}
