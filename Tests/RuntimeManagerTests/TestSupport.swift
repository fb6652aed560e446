import Foundation
import Logging
import NIOCore
import NIOPosix
import RuntimeClient
import RuntimeManager
import XCTest
import Synchronization

/// The repository root, found from this file's place in it.
let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs a program to completion and returns its exit status and output.
@discardableResult
func runProcess(_ executable: String, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws
    -> (status: Int32, stdout: String, stderr: String)
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

/// Certificates made by tools/gen-certs.sh (so the script is tested too),
/// once per test run: the main set, and a second set from another CA.
struct TestCertificates {
    let directory: String
    let foreignDirectory: String

    static let shared: TestCertificates = {
        let base = FileManager.default.temporaryDirectory
            .appendingPathComponent("runtime-manager-tests-\(getpid())")
        let main = base.appendingPathComponent("certs").path
        let foreign = base.appendingPathComponent("foreign").path
        let script = repositoryRoot.appendingPathComponent("tools/gen-certs.sh").path
        for directory in [main, foreign] {
            let result = try! runProcess("/bin/bash", [script, directory])
            precondition(result.status == 0, "tools/gen-certs.sh failed: \(result.stderr)")
        }
        return TestCertificates(directory: main, foreignDirectory: foreign)
    }()

    func path(_ name: String) -> String { "\(self.directory)/\(name)" }
    func foreignPath(_ name: String) -> String { "\(self.foreignDirectory)/\(name)" }

    func serverConfiguration(
        policy: String? = nil, maximumStoreBytes: Int = RuntimeManagerConfiguration.defaultMaximumStoreBytes,
        maximumMessageBytes: Int = 64 * 1024 * 1024
    ) -> RuntimeManagerConfiguration {
        RuntimeManagerConfiguration(
            certificatePath: self.path("runtime-manager.pem"), keyPath: self.path("runtime-manager.key"),
            clientCAPath: self.path("ca.pem"), policyPath: policy ?? self.path("policy.json"),
            maximumStoreBytes: maximumStoreBytes, maximumMessageBytes: maximumMessageBytes
        )
    }

    /// A client identity from gen-certs: "client" (may do everything) or "reader" (may read).
    func client(_ who: String, foreign: Bool = false) -> RuntimeClientConfiguration {
        let at = foreign ? self.foreignPath : self.path
        return RuntimeClientConfiguration(
            certificatePath: at("\(who).pem"), keyPath: at("\(who).key"), caPath: self.path("ca.pem")
        )
    }
}

/// Collects log messages so tests can check what an operator would read.
final class LogCollector: Sendable {
    private let lines = Mutex<[String]>([])

    var messages: [String] { self.lines.withLock { $0 } }

    func append(_ line: String) { self.lines.withLock { $0.append(line) } }

    func logger(level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: "test") { _ in CollectingHandler(collector: self) }
        logger.logLevel = level
        return logger
    }

    private struct CollectingHandler: LogHandler {
        let collector: LogCollector
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            self.collector.append("\(event.level) \(event.message)")
        }
    }
}

/// An in-process runtime manager listening with --direct on a free loopback port.
final class DirectServer {
    let server: RuntimeManagerServer
    let port: Int
    let logs: LogCollector

    init(_ configuration: RuntimeManagerConfiguration, group: EventLoopGroup) async throws {
        self.logs = LogCollector()
        self.server = try RuntimeManagerServer(configuration: configuration, group: group, logger: self.logs.logger())
        let address = try await self.server.bindDirect(host: "127.0.0.1", port: 0)
        self.port = address.port!
    }

    func connect(_ configuration: RuntimeClientConfiguration) async throws -> RuntimeClient {
        try await RuntimeClient.connect(host: "127.0.0.1", port: self.port, configuration: configuration)
    }

    func stop() async {
        await self.server.shutdown()
    }
}

/// Bytes that differ at every position and between seeds, so misplaced or mixed-up chunks show.
func patternedData(count: Int, seed: UInt64) -> Data {
    var data = Data(count: count)
    data.withUnsafeMutableBytes { (bytes: UnsafeMutableRawBufferPointer) in
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var index = 0
        while index < count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            withUnsafeBytes(of: state) { word in
                for byte in word where index < count {
                    bytes[index] = byte
                    index += 1
                }
            }
        }
    }
    return data
}

func hex(_ data: Data) -> String {
    data.map { String(format: "%02x", $0) }.joined()
}

/// SHA-256 of a file by coreutils, an implementation independent of ours.
func sha256sum(_ path: String) throws -> String {
    String(try runProcess("/usr/bin/sha256sum", [path]).stdout.prefix(64))
}
