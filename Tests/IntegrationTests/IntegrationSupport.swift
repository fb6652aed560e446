import Foundation
import Logging
import NIOCore
import NIOPosix
import ProcessTestSupport
import RuntimeClient
import RuntimeManager
import Synchronization
import XCTest

/// The generated identities as the runtime manager and the client take them.
extension TestCertificates {
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
