// swift-tools-version:6.1
// Micro-benchmarks (ordo-one/benchmark), kept out of the main package so its build and CI never
// fetch or build the benchmark dependency. The project's own Yamux and TransportProtocol sources
// are symbolic links (as in Fuzz/), built here in release mode by the benchmark plugin.
//
//   cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
import PackageDescription

let package = Package(
    name: "RepeaterBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        // LegacyRelay's Base64 wraps it; the bare library beside the wrapper (and the numbers of the loop it replaced).
        .package(url: "https://github.com/swift-extras/swift-extras-base64.git", from: "1.2.0"),
    ],
    targets: [
        // The relay's state and ends: Yamux's socket relay keeps its state in it.
        .target(name: "ByteRelay", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        // Events an outsider can cause, counted and summarized: Yamux counts its peer's with it.
        .target(
            name: "EventSummaries",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "Yamux",
            dependencies: [
                "ByteRelay", "EventSummaries",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "TransportProtocol",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["transport_protocol.proto"]
        ),
        /// LegacyRelay's Base64.swift alone (a symbolic link): NIOCore and swift-extras-base64.
        .target(
            name: "LegacyBase64",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "ExtrasBase64", package: "swift-extras-base64"),
            ]),
        .executableTarget(
            name: "CodecBenchmarks",
            dependencies: [
                "Yamux", "TransportProtocol", "LegacyBase64", .product(name: "ExtrasBase64", package: "swift-extras-base64"),
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Benchmarks/CodecBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    // Swift 6 mode, as the main package builds these same sources.
    swiftLanguageModes: [.v6]
)
