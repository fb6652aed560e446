// swift-tools-version:6.0
import PackageDescription

// The module graph, from the wire up (docs/ARCHITECTURE.md draws it):
//
//   ByteRelay ─► Yamux ─► YamuxLink ─┬─► Repeater ───────────► repeaterd
//                                    ├─► LegacyRelayServer ──► repeaterd (--legacy-http; uses Repeater's SessionLimit)
//                                    ├─► RuntimeManager ─────► runtime-manager
//                                    └─► MuxCat ─────────────► muxcat
//   TransportProtocol ──┬─► RuntimeManager
//                       └─► RuntimeClient ───────► runtime-client
//   LegacyRelay ────────┬─► LegacyRelayServer
//                       └─► RuntimeClient (--legacy-http)
//   CommandLineSupport ────► every command line (RepeaterdCLI, RuntimeManagerCLI, RuntimeClientCLI,
//                            MuxCatCLI), each a library run by its own executable and by the
//                            multi-call `repeater` that the packages install under all four names
//   SystemErrorText ───────► YamuxLink, RuntimeManager, RuntimeClient, MuxCat
//   ProxyProtocol ─────────► Repeater, RuntimeManager (PROXY headers: --accept-proxy, --send-proxy)
//   AdminEndpoint (HTTP) ──► repeaterd, runtime-manager (--admin); the libraries count via swift-metrics
//
// The trusted side (RuntimeManager, RuntimeClient) never links the untrusted relay (Repeater).
// NIOHTTP1 is imported by the legacy relay (LegacyRelay, LegacyRelayServer) and the admin
// endpoint only; RuntimeClient and MuxCat link it anyway through NIOExtras and LegacyRelay.
//
// Linux only: the deployment target (hosts beside enclaves), and what every test runs on. The
// code uses Linux's socket options (SO_REUSEPORT's spreading, TCP_NOTSENT_LOWAT, tcp_migrate_req)
// and Glibc/Musl directly; there are no Darwin branches to rot untested.

let nioCore: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioEmbedded: Target.Dependency = .product(name: "NIOEmbedded", package: "swift-nio")
let nioConcurrencyHelpers: Target.Dependency = .product(name: "NIOConcurrencyHelpers", package: "swift-nio")
let nioSSL: Target.Dependency = .product(name: "NIOSSL", package: "swift-nio-ssl")
let nioHTTP1: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let nioTLS: Target.Dependency = .product(name: "NIOTLS", package: "swift-nio")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let serviceLifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let nioExtras: Target.Dependency = .product(name: "NIOExtras", package: "swift-nio-extras")
let swiftProtobuf: Target.Dependency = .product(name: "SwiftProtobuf", package: "swift-protobuf")

let subprocess: Target.Dependency = .product(name: "Subprocess", package: "swift-subprocess")
let systemPackage: Target.Dependency = .product(name: "SystemPackage", package: "swift-system")
let coreMetrics: Target.Dependency = .product(name: "CoreMetrics", package: "swift-metrics")
let prometheus: Target.Dependency = .product(name: "Prometheus", package: "swift-prometheus")
/// Every target: Swift 6 language mode, and imports that name every module whose members a file uses.
let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6), .enableUpcomingFeature("MemberImportVisibility")]

let package = Package(
    name: "Repeater",
    products: [
        .library(name: "Yamux", targets: ["Yamux"]),
        .library(name: "YamuxLink", targets: ["YamuxLink"]),
        .library(name: "Repeater", targets: ["Repeater"]),
        .executable(name: "repeaterd", targets: ["repeaterd"]),
        .executable(name: "runtime-manager", targets: ["runtime-manager"]),
        .executable(name: "runtime-client", targets: ["runtime-client"]),
        .executable(name: "muxcat", targets: ["muxcat"]),
        .executable(name: "repeater", targets: ["repeater"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        // runtime-client --server-name: RFC 6125 name matching (ServerIdentityPolicy).
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        // --admin: /metrics (swift-metrics in the libraries, Prometheus text from the registry).
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // muxcat --exec (its default SubprocessFoundation trait links FoundationEssentials on Linux;
        // turning traits off needs tools version 6.1).
        .package(url: "https://github.com/apple/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        // The old relay's base64 (LegacyRelay/Base64.swift says why, in numbers).
        .package(url: "https://github.com/swift-extras/swift-extras-base64.git", from: "1.2.0"),
    ],
    targets: [
        // MARK: The link both sides share

        /// yamux version 0: frame codec, state machines (no I/O), and the NIO multiplexer with child channels.
        /// Events an outsider can cause at will, counted and summarized in one line per interval.
        .target(name: "EventSummaries", dependencies: [nioCore, logging], swiftSettings: swift6),
        // The byte relay: its states, its two ends, what a session carried, and the handler that
        // joins two channels (on one loop or two).
        .target(name: "ByteRelay", dependencies: [nioCore], swiftSettings: swift6),
        .target(name: "Yamux", dependencies: ["ByteRelay", "EventSummaries", nioCore, logging], swiftSettings: swift6),
        /// System errors (errno, NIO's connect and bind failures, unreadable files) in the words a
        /// user reads: every binary prints them through here.
        /// JSON written by hand (no Foundation): the JSON log format and `/status.json`.
        .target(name: "JSONText", swiftSettings: swift6),
        .target(name: "SystemErrorText", dependencies: [nioCore, nioPosix, systemPackage], swiftSettings: swift6),
        /// A yamux link over TCP or a Unix socket, for both of its ends: dialing with redial
        /// (`Link`), accepting (`YamuxLinkListener`), addresses, the socket tuning both ends share,
        /// and the glue that relays one stream to one socket.
        .target(
            name: "YamuxLink", dependencies: ["ByteRelay", "Yamux", "SystemErrorText", nioCore, nioPosix, logging, coreMetrics],
            swiftSettings: swift6),

        // MARK: The untrusted host side

        /// repeaterd's server: client listeners, one link per event loop, sessions, idle sweep, drain.
        .target(
            name: "Repeater",
            dependencies: [
                "ByteRelay", "JSONText", "YamuxLink", "Yamux", "EventSummaries", "ProxyProtocol", nioCore, nioPosix, logging, coreMetrics,
            ],
            swiftSettings: swift6),
        /// The PROXY protocol header (v1 text, v2 binary): a value-type parser without I/O, the v2
        /// encoder, and the thin handler that reads a header first in a pipeline.
        .target(name: "ProxyProtocol", dependencies: [nioCore], swiftSettings: swift6),
        /// `--admin`: /healthz, /readyz and /metrics over HTTP/1.1 for repeaterd and runtime-manager,
        /// in its own module so that the relay core does not link HTTP.
        .target(
            name: "AdminEndpoint",
            dependencies: ["JSONText", "YamuxLink", nioCore, nioPosix, nioHTTP1, logging, coreMetrics, prometheus, serviceLifecycle],
            swiftSettings: swift6),
        /// The old HTTP relay's wire format (bodies, base64) and its client transport (TLS records
        /// as `POST /runtime_manager` bodies), used by runtime-client `--legacy-http`.
        .target(
            name: "LegacyRelay",
            dependencies: ["TransportProtocol", nioCore, nioHTTP1, nioTLS, .product(name: "ExtrasBase64", package: "swift-extras-base64")],
            swiftSettings: swift6),
        /// The old HTTP relay's server side, served by repeaterd `--legacy-http` beside the repeater.
        .target(
            name: "LegacyRelayServer", dependencies: ["LegacyRelay", "Repeater", "YamuxLink", nioCore, nioPosix, nioHTTP1, logging],
            swiftSettings: swift6),

        // MARK: The trusted side

        /// Application messages (protobuf) and the 8-byte length-prefix codec.
        .target(
            name: "TransportProtocol",
            dependencies: [nioCore, swiftProtobuf],
            exclude: ["transport_protocol.proto"],
            swiftSettings: swift6
        ),
        /// The runtime manager: file store, policy, request handling, TLS per stream.
        .target(
            name: "RuntimeManager",
            dependencies: [
                "TransportProtocol", "YamuxLink", "Yamux", "EventSummaries", "SystemErrorText", "ProxyProtocol", nioCore, nioPosix, nioSSL,
                nioTLS, logging,
                swiftProtobuf,
                .product(name: "Crypto", package: "swift-crypto"), coreMetrics,
            ],
            swiftSettings: swift6
        ),
        /// The client side: TLS over plain TCP (or over the old HTTP relay), requests, chunked uploads.
        .target(
            name: "RuntimeClient",
            dependencies: [
                "TransportProtocol", "LegacyRelay", "SystemErrorText", nioCore, nioPosix, nioSSL, nioTLS, nioExtras,
                swiftProtobuf, systemPackage, .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: swift6
        ),

        // MARK: Debugging

        /// muxcat: netcat for the multiplexed link, and the frame decoder for captures.
        .target(
            name: "MuxCat",
            dependencies: ["ByteRelay", "Yamux", "YamuxLink", "SystemErrorText", nioCore, nioPosix, logging, subprocess, systemPackage],
            swiftSettings: swift6
        ),

        // MARK: Executables (thin command lines over the libraries)

        /// What every command line shares (logging setup, limits, option parsing); executables only.
        .target(
            name: "CommandLineSupport",
            dependencies: ["JSONText", "YamuxLink", "SystemErrorText", nioCore, logging, argumentParser, systemPackage],
            swiftSettings: swift6),
        /// Each command line as a library (options, services, signals), so that its executable and
        /// the multi-call binary run the same code.
        .target(
            name: "RepeaterdCLI",
            dependencies: [
                "Repeater", "LegacyRelayServer", "YamuxLink", "CommandLineSupport", "AdminEndpoint", nioCore, nioPosix, argumentParser,
                logging,
                serviceLifecycle, .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ], swiftSettings: swift6
        ),
        .target(
            name: "RuntimeManagerCLI",
            dependencies: [
                "RuntimeManager", "YamuxLink", "Yamux", "TransportProtocol", "CommandLineSupport", "AdminEndpoint", nioCore, nioPosix,
                argumentParser, logging, serviceLifecycle, .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swift6
        ),
        .target(
            name: "RuntimeClientCLI",
            dependencies: ["RuntimeClient", "TransportProtocol", "CommandLineSupport", "YamuxLink", argumentParser],
            swiftSettings: swift6
        ),
        .target(
            name: "MuxCatCLI",
            dependencies: [
                "MuxCat", "YamuxLink", "CommandLineSupport", "SystemErrorText", nioCore, nioPosix, argumentParser, logging,
                serviceLifecycle,
                .product(name: "UnixSignals", package: "swift-service-lifecycle"), systemPackage,
            ],
            swiftSettings: swift6
        ),
        /// One binary each, static with `--static-swift-stdlib`: runtime-manager alone is what an
        /// enclave image holds (it links nothing of the relay).
        .executableTarget(name: "repeaterd", dependencies: ["RepeaterdCLI"], swiftSettings: swift6),
        .executableTarget(name: "runtime-manager", dependencies: ["RuntimeManagerCLI"], swiftSettings: swift6),
        .executableTarget(name: "runtime-client", dependencies: ["RuntimeClientCLI"], swiftSettings: swift6),
        .executableTarget(name: "muxcat", dependencies: ["MuxCatCLI"], swiftSettings: swift6),
        /// The four in one (tools/package.sh installs it once, with the four names as links).
        .executableTarget(
            name: "repeater", dependencies: ["CommandLineSupport", "RepeaterdCLI", "RuntimeManagerCLI", "RuntimeClientCLI", "MuxCatCLI"],
            swiftSettings: swift6),
        .executableTarget(name: "nio-relay", dependencies: [nioCore, nioPosix], path: "tools/nio-relay", swiftSettings: swift6),

        // MARK: Tests: a target per module, and one for the whole system

        .testTarget(name: "EventSummariesTests", dependencies: ["EventSummaries", nioCore, nioPosix, logging], swiftSettings: swift6),
        .testTarget(
            name: "YamuxTests", dependencies: ["Yamux", "EventSummaries", nioCore, nioPosix, nioEmbedded, nioConcurrencyHelpers, logging],
            swiftSettings: swift6),
        .testTarget(
            name: "YamuxLinkTests", dependencies: ["ByteRelay", "YamuxLink", "Yamux", nioCore, nioPosix, nioEmbedded, logging],
            swiftSettings: swift6),
        .testTarget(name: "JSONTextTests", dependencies: ["JSONText"], swiftSettings: swift6),
        .testTarget(
            name: "ByteRelayTests", dependencies: ["ByteRelay"], swiftSettings: swift6),
        .testTarget(
            name: "SystemErrorTextTests", dependencies: ["SystemErrorText", nioCore, nioPosix, systemPackage], swiftSettings: swift6),
        .testTarget(
            name: "RepeaterTests",
            dependencies: [
                "Repeater", "ByteRelay", "JSONText", "YamuxLink", "Yamux", "EventSummaries", nioCore, nioPosix, nioEmbedded,
                nioConcurrencyHelpers,
                logging,
            ],
            swiftSettings: swift6
        ),
        .testTarget(name: "ProxyProtocolTests", dependencies: ["ProxyProtocol", nioCore, nioEmbedded], swiftSettings: swift6),
        .testTarget(
            name: "AdminEndpointTests", dependencies: ["AdminEndpoint", "JSONText", nioCore, nioPosix, nioHTTP1], swiftSettings: swift6),
        .testTarget(name: "LegacyRelayTests", dependencies: ["LegacyRelay", nioCore], swiftSettings: swift6),
        .testTarget(
            name: "LegacyRelayServerTests",
            dependencies: [
                "LegacyRelayServer", "LegacyRelay", "Repeater", "YamuxLink", "Yamux", nioCore, nioPosix, nioHTTP1, nioEmbedded, logging,
            ],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "TransportProtocolTests", dependencies: ["TransportProtocol", nioCore, nioEmbedded, swiftProtobuf],
            swiftSettings: swift6),
        .testTarget(
            name: "RuntimeManagerTests",
            dependencies: ["RuntimeManager", "TransportProtocol", "ProcessTestSupport", nioCore, nioEmbedded, nioSSL, swiftProtobuf],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "RuntimeClientTests",
            dependencies: ["RuntimeClient", "TransportProtocol", "ProcessTestSupport", nioCore, nioEmbedded, nioSSL],
            swiftSettings: swift6),
        .testTarget(
            name: "MuxCatTests",
            dependencies: ["MuxCat", "Yamux", "YamuxLink", "ProcessTestSupport", nioCore, nioPosix, nioEmbedded, logging],
            swiftSettings: swift6
        ),
        .testTarget(
            name: "CommandLineSupportTests",
            dependencies: ["CommandLineSupport", "JSONText", "ProcessTestSupport", "YamuxLink", nioCore, argumentParser, logging],
            swiftSettings: swift6),
        /// Child processes, generated certificates and the built binaries, for the tests that need them.
        .target(name: "ProcessTestSupport", dependencies: [], path: "Tests/ProcessTestSupport", swiftSettings: swift6),
        /// The whole system: the real executables and peers (HAProxy, nginx, openssl, Go yamux), the
        /// fault matrix and hostile-input tables of docs/RELIABILITY.md, and the libraries joined in
        /// one process (client, repeater, runtime manager).
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "ProcessTestSupport", "RuntimeManager", "RuntimeClient", "Repeater", "LegacyRelayServer", "LegacyRelay", "ByteRelay",
                "YamuxLink",
                "Yamux", "TransportProtocol", "ProxyProtocol", nioCore, nioPosix, nioSSL, nioTLS, nioHTTP1, nioEmbedded,
                nioConcurrencyHelpers, logging, swiftProtobuf,
            ], swiftSettings: swift6
        ),
    ],
    swiftLanguageModes: [.v6]
)
