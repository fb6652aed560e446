// swift-tools-version:6.0
// libFuzzer targets, kept out of the main package so a normal build never sees them.
// Build and run with tools/fuzz.sh (it passes -sanitize=fuzzer,address and -D FUZZING).
import PackageDescription

let package = Package(
    name: "RepeaterFuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    ],
    targets: [
        /// The project's own ByteRelay sources (a symbolic link): the relay state Yamux's socket relay keeps.
        .target(name: "ByteRelay", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        /// The project's own EventSummaries sources (a symbolic link): Yamux counts peer events with it.
        .target(
            name: "EventSummaries",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// The project's own Yamux sources (a symbolic link), built here with fuzzer instrumentation.
        .target(
            name: "Yamux",
            dependencies: [
                "ByteRelay", "EventSummaries",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        /// The project's own TransportProtocol sources (a symbolic link): the length-prefix codec and messages.
        .target(
            name: "TransportProtocol",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["transport_protocol.proto"]
        ),
        /// The project's own ProxyProtocol sources (a symbolic link): the PROXY header parser and receiver.
        .target(name: "ProxyProtocol", dependencies: [.product(name: "NIOCore", package: "swift-nio")]),
        /// The libFuzzer driver and the corpus replay every fuzzer shares.
        .target(name: "FuzzDriver"),
        .executableTarget(
            name: "YamuxFuzzer",
            dependencies: [
                "FuzzDriver", "Yamux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "LengthPrefixFuzzer",
            dependencies: [
                "FuzzDriver", "TransportProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "ProxyHeaderFuzzer",
            dependencies: [
                "FuzzDriver", "ProxyProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ],
    // Swift 6 mode, as the main package builds these same sources.
    swiftLanguageModes: [.v6]
)
