// swift-tools-version:6.0
import PackageDescription

// Numeric kernels: no bounds checks in release, and on x86-64 the AVX2/FMA instruction set
// (Haswell, 2013, and later) so loops vectorise 8 floats wide instead of SSE2's 4.
// `QForgeAVX512` holds kernels for AVX-512 machines (x86-64-v4), called only after a run-time
// check of the CPU.
#if arch(x86_64)
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", "haswell"], .when(configuration: .release))]
let avx512Flags: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-target-cpu", "skylake-avx512"], .when(configuration: .release))]
#else
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
let avx512Flags = kernelFlags
#endif

let package = Package(
    name: "QForge",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "QForgeTensor", targets: ["QForgeTensor"]),
        .library(name: "QForgeGraph", targets: ["QForgeGraph"]),
        .library(name: "QForgeData", targets: ["QForgeData"]),
        .library(name: "QForgeNN", targets: ["QForgeNN"]),
        .library(name: "QForgeQuant", targets: ["QForgeQuant"]),
        .library(name: "QForgeReport", targets: ["QForgeReport"]),
        .library(name: "QForgeInteger", targets: ["QForgeInteger"]),
        .library(name: "QForgeHardware", targets: ["QForgeHardware"]),
        .library(name: "QForgeEDA", targets: ["QForgeEDA"]),
        .executable(name: "qforge", targets: ["qforge"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .target(name: "QForgeTensor", swiftSettings: kernelFlags),
        // ONNX / QONNX import and export read and write protobuf through swift-protobuf; the
        // message types are generated once from proto/onnx.proto (`make proto`), not per build.
        .target(name: "QForgeGraph", dependencies: ["QForgeTensor", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "QForgeData", dependencies: ["QForgeTensor"]),
        .target(name: "QForgeNN", dependencies: ["QForgeTensor", "QForgeGraph", "QForgeData", "Yams"]),
        .target(name: "QForgeQuant", dependencies: ["QForgeTensor", "QForgeGraph", "QForgeData", "QForgeNN"]),
        .target(name: "QForgeAVX512", dependencies: ["QForgeTensor"], swiftSettings: avx512Flags),
        // AVX-512 VNNI dot products (`vpdpwssd`), which Swift cannot emit: a few C functions
        // compiled for that instruction set per function and called after a run-time check.
        .target(name: "CQForgeKernels", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "QForgeInteger", dependencies: ["QForgeTensor", "QForgeGraph", "QForgeAVX512", "CQForgeKernels"], swiftSettings: kernelFlags),
        // Hardware graph (folded dataflow), Verilog, memory files, testbench and vectors.
        .target(name: "QForgeHardware", dependencies: ["QForgeInteger", "QForgeTensor"]),
        // Running Icarus, Verilator, Yosys, OpenSTA and nextpnr on a generated design; parsing what they print.
        .target(name: "QForgeEDA", dependencies: ["QForgeHardware"]),
        // Tables, SVG plots, the HTML report and design-space exploration (which drives QForgeEDA).
        .target(name: "QForgeReport", dependencies: ["QForgeTensor", "QForgeData", "QForgeNN", "QForgeQuant", "QForgeInteger", "QForgeHardware", "QForgeEDA"]),
        .executableTarget(name: "qforge", dependencies: [
            "QForgeTensor", "QForgeGraph", "QForgeData", "QForgeNN", "QForgeQuant", "QForgeInteger", "QForgeReport",
            "QForgeHardware", "QForgeEDA",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Times the integer layer stacks: `swift run -c release QForgeIntegerBench`.
        .executableTarget(name: "QForgeIntegerBench", dependencies: ["QForgeInteger", "QForgeTensor"]),
        .target(name: "TestSupport", dependencies: ["QForgeTensor"], path: "Tests/TestSupport"),
        .testTarget(name: "QForgeTensorTests", dependencies: ["QForgeTensor", "TestSupport"]),
        .testTarget(name: "QForgeGraphTests", dependencies: ["QForgeGraph", "TestSupport"]),
        .testTarget(name: "QForgeDataTests", dependencies: ["QForgeData", "TestSupport"]),
        .testTarget(name: "QForgeNNTests", dependencies: ["QForgeNN", "TestSupport"]),
        .testTarget(name: "QForgeQuantTests", dependencies: ["QForgeQuant", "QForgeGraph", "TestSupport"]),
        .testTarget(name: "QForgeReportTests", dependencies: ["QForgeReport", "QForgeQuant", "QForgeInteger", "QForgeEDA", "QForgeHardware", "QForgeNN", "QForgeData", "HardwareTestSupport", "TestSupport"]),
        .testTarget(name: "QForgeIntegerTests", dependencies: ["QForgeInteger", "TestSupport"]),
        .target(name: "HardwareTestSupport", dependencies: ["QForgeInteger", "QForgeTensor"], path: "Tests/HardwareTestSupport"),
        // Golden/ holds the emitted files GoldenTests compares against (regenerate: see GoldenTests.swift).
        .testTarget(name: "QForgeHardwareTests", dependencies: ["QForgeHardware", "QForgeInteger", "HardwareTestSupport", "TestSupport"],
                    exclude: ["Golden"]),
        // Simulates generated designs in Verilator and Icarus and synthesizes small ones (skipped
        // without the tools unless CI is set); Fixtures/ holds saved tool logs for the parsers.
        .testTarget(name: "QForgeEDATests", dependencies: ["QForgeEDA", "QForgeHardware", "QForgeInteger", "HardwareTestSupport", "TestSupport"],
                    exclude: ["Fixtures"]),
        // Runs the real `qforge` binary: depending on the executable target makes SwiftPM build it first.
        .testTarget(name: "QForgeCLITests", dependencies: ["qforge", "QForgeReport", "QForgeEDA", "QForgeHardware", "QForgeNN", "QForgeGraph", "QForgeData", "QForgeInteger", "HardwareTestSupport", "TestSupport"]),
        // Trains real models; each test skips itself in debug builds. Run with
        // `make test-release` (builds --product QForgePackageTests, then `swift test --skip-build
        // -c release -Xswiftc -enable-testing --filter QForgeReleaseTests`).
        // It also runs the real `qforge` binary (compile and sim of the imported QONNX fixtures).
        .testTarget(name: "QForgeReleaseTests", dependencies: ["qforge", "QForgeNN", "QForgeQuant", "QForgeReport", "QForgeData", "QForgeHardware", "QForgeEDA", "QForgeInteger", "HardwareTestSupport", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
