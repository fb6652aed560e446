// swift-tools-version:6.0
// libFuzzer targets, kept out of the main package so a normal build never sees them.
// Build and run with tools/fuzz.sh (it passes -sanitize=fuzzer,address and -D FUZZING).
import PackageDescription

let package = Package(
    name: "RepeaterFuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        /// The project's own Yamux sources (a symbolic link), built here with fuzzer instrumentation.
        .target(
            name: "Yamux",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "YamuxFuzzer",
            dependencies: [
                "Yamux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v5]
)
