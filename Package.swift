// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "QForge",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "QForgeTensor", targets: ["QForgeTensor"]),
        .library(name: "QForgeGraph", targets: ["QForgeGraph"]),
        .library(name: "QForgeData", targets: ["QForgeData"]),
        .library(name: "QForgeNN", targets: ["QForgeNN"]),
        .executable(name: "qforge", targets: ["qforge"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .target(name: "QForgeTensor", swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        .target(name: "QForgeGraph", dependencies: ["QForgeTensor"]),
        .target(name: "QForgeData", dependencies: ["QForgeTensor"]),
        .target(name: "QForgeNN", dependencies: ["QForgeTensor", "QForgeGraph", "QForgeData", "Yams"]),
        .executableTarget(name: "qforge", dependencies: [
            "QForgeTensor", "QForgeGraph", "QForgeData", "QForgeNN",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "TestSupport", dependencies: ["QForgeTensor"], path: "Tests/TestSupport"),
        .testTarget(name: "QForgeTensorTests", dependencies: ["QForgeTensor", "TestSupport"]),
        .testTarget(name: "QForgeGraphTests", dependencies: ["QForgeGraph", "TestSupport"]),
        .testTarget(name: "QForgeDataTests", dependencies: ["QForgeData", "TestSupport"]),
        .testTarget(name: "QForgeNNTests", dependencies: ["QForgeNN", "TestSupport"]),
        .testTarget(name: "QForgeCLITests", dependencies: ["TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
