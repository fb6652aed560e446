// swift-tools-version:6.0
import PackageDescription

let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioSSL: Target.Dependency = .product(name: "NIOSSL", package: "swift-nio-ssl")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let nioTLS: Target.Dependency = .product(name: "NIOTLS", package: "swift-nio")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let serviceLifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")

let package = Package(
    name: "Repeater",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Yamux", targets: ["Yamux"]),
        .library(name: "Repeater", targets: ["Repeater"]),
        .executable(name: "repeaterd", targets: ["repeaterd"]),
        .executable(name: "runtime-manager", targets: ["runtime-manager"]),
        .executable(name: "runtime-client", targets: ["runtime-client"]),
        .executable(name: "muxcat", targets: ["muxcat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // MARK: Libraries

        /// yamux version 0: frame codec, state machines (no I/O), and the NIO multiplexer with child channels.
        .target(name: "Yamux", dependencies: [nioCore, logging]),
        /// The repeater: client listener, links to the runtime manager (dial, redial, pool), relay glue.
        .target(name: "Repeater", dependencies: ["Yamux", "LegacyRelay", nioCore, nioPosix, nioHTTP1, logging]),
        /// The old HTTP relay's wire format (bodies, base64), shared by repeaterd and runtime-client.
        .target(name: "LegacyRelay", dependencies: [nioCore]),
        /// Application messages (protobuf) and the 8-byte length-prefix codec.
        .target(
            name: "TransportProtocol",
            dependencies: [nioCore, .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["transport_protocol.proto"]
        ),
        /// The runtime manager: file store, policy, request handling, TLS per stream.
        .target(
            name: "RuntimeManager",
            dependencies: [
                "TransportProtocol", "Repeater", "Yamux", nioCore, nioPosix, nioSSL, nioTLS, logging,
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        /// The client side: TLS over plain TCP, requests, chunked uploads.
        .target(
            name: "RuntimeClient",
            dependencies: ["TransportProtocol", "LegacyRelay", nioCore, nioPosix, nioSSL, nioTLS, nioHTTP1, logging]
        ),
        /// muxcat: netcat for the multiplexed link, and the frame decoder for captures.
        .target(name: "MuxCat", dependencies: ["Yamux", "Repeater", nioCore, nioPosix, logging]),

        // MARK: Executables (thin command lines over the libraries)

        .executableTarget(name: "repeaterd", dependencies: ["Repeater", argumentParser, logging, serviceLifecycle]),
        .executableTarget(
            name: "runtime-manager", dependencies: ["RuntimeManager", "Repeater", "Yamux", argumentParser, logging, serviceLifecycle]
        ),
        .executableTarget(name: "runtime-client", dependencies: ["RuntimeClient", "Repeater", "TransportProtocol", argumentParser, logging]),
        .executableTarget(name: "muxcat", dependencies: ["MuxCat", argumentParser, logging]),

        // MARK: Tests

        .testTarget(
            name: "YamuxTests",
            dependencies: ["Yamux", nioCore, .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(
            name: "RepeaterTests",
            dependencies: [
                "Repeater", "Yamux", "LegacyRelay", nioCore, nioPosix, nioHTTP1, .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "TransportProtocolTests",
            dependencies: ["TransportProtocol", nioCore, .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(
            name: "RuntimeManagerTests",
            dependencies: [
                "RuntimeManager", "RuntimeClient", "Repeater", "Yamux", "TransportProtocol", "LegacyRelay", nioCore, nioPosix,
                nioSSL, nioHTTP1, logging, .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "MuxCatTests", dependencies: ["MuxCat", "Yamux", "Repeater", "ProcessTestSupport", nioCore, nioPosix]),
        /// Child processes for the tests that run the real executables (muxcat, repeaterd, …).
        .target(
            name: "ProcessTestSupport",
            dependencies: [.product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            path: "Tests/ProcessTestSupport"
        ),
        /// The fault matrix and hostile-input tables of docs/RELIABILITY.md, against real processes.
        .testTarget(
            name: "ReliabilityTests",
            dependencies: [
                "ProcessTestSupport", "RuntimeManager", "RuntimeClient", "Repeater", "Yamux", "TransportProtocol",
                nioCore, nioPosix, nioSSL, nioTLS, logging, .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v5]
)
