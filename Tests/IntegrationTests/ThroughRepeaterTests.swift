import ByteRelay
import Foundation
import LegacyRelayServer
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOSSL
import ProcessTestSupport
import Repeater
import RuntimeClient
import RuntimeManager
import SwiftProtobuf
import Synchronization
import TransportProtocol
import XCTest
import Yamux
import YamuxLink

/// The whole path: runtime-client → repeaterd (yamux client) → link → runtime manager (yamux
/// server, TLS per stream), in process on loopback. Optionally with a recording tap on the link.
final class RepeaterPath: Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let server: RuntimeManagerServer
    let repeater: RepeaterServer
    let tap: RecordingTap?
    /// The old HTTP relay beside the repeater (with `legacyHTTP: true`).
    let legacyRelay: LegacyHTTPRelay?
    let logs = LogCollector()

    /// - Parameter legacyHTTP: also serve the old HTTP relay (`repeaterd --legacy-http`).
    init(tapTheLink: Bool = false, legacyHTTP: Bool = false) async throws {
        let certs = TestCertificates.shared
        server = try RuntimeManagerServer(
            configuration: certs.serverConfiguration(), group: group, logger: logs.logger(level: .warning))
        let linkAddress = try await server.bindLinks(address: .tcp(host: "127.0.0.1", port: 0))!
        var backendPort = linkAddress.port!
        if tapTheLink {
            let tap = RecordingTap(group: group, targetPort: backendPort)
            backendPort = try await tap.start()
            self.tap = tap
        } else {
            tap = nil
        }
        var configuration = RepeaterServer.Configuration()
        configuration.listen = .tcp(host: "127.0.0.1", port: 0)
        configuration.backend = .tcp(host: "127.0.0.1", port: backendPort)
        var logger = Logger(label: "repeater")
        logger.logLevel = .warning
        let repeater = RepeaterServer(configuration: configuration, group: group, logger: logger)
        self.repeater = repeater
        try await repeater.start().get()
        try await repeater.linksUp().get()
        if legacyHTTP {
            // As repeaterd --legacy-http composes them: the old relay's sessions use the repeater's links.
            let relay = LegacyHTTPRelay(
                configuration: LegacyHTTPRelay.Configuration(), group: group, logger: logger,
                linkForLoop: { repeater.link(for: $0) })
            try await relay.start(listen: .tcp(host: "127.0.0.1", port: 0)).get()
            legacyRelay = relay
        } else {
            legacyRelay = nil
        }
    }

    var port: Int { repeater.localAddress!.port! }

    func connect(_ who: String = "client") async throws -> RuntimeClient {
        try await RuntimeClient.connect(
            host: "127.0.0.1", port: port, configuration: TestCertificates.shared.client(who))
    }

    /// The old HTTP relay's port (with `legacyHTTP: true`).
    var legacyPort: Int { legacyRelay!.localAddress!.port! }

    /// A client speaking TLS over the old HTTP relay, as `runtime-client --legacy-http` does.
    func connectLegacy(_ who: String = "client") async throws -> RuntimeClient {
        var configuration = TestCertificates.shared.client(who)
        configuration.transport = .legacyHTTP
        return try await RuntimeClient.connect(host: "127.0.0.1", port: legacyPort, configuration: configuration)
    }

    func stop() async {
        _ = try? await legacyRelay?.shutdown().get()
        _ = try? await repeater.shutdown().get()
        await server.shutdown()
        try? await tap?.stop()
        try? await group.shutdownGracefully()
    }
}

final class ThroughRepeaterTests: XCTestCase {
    /// A repeater whose link is down closes each client at once; the client says what that
    /// usually means instead of a TLS error (issue 22: it read "TLS failure: handshake failed").
    func testALinkThatIsDownIsReportedAsSuchNotAsATLSFailure() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let probe = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let deadPort = probe.localAddress!.port!
        try await probe.close()
        var configuration = RepeaterServer.Configuration()
        configuration.listen = .tcp(host: "127.0.0.1", port: 0)
        configuration.backend = .tcp(host: "127.0.0.1", port: deadPort)
        var logger = Logger(label: "repeater")
        logger.logLevel = .critical
        let repeater = RepeaterServer(configuration: configuration, group: group, logger: logger)
        try await repeater.start().get()
        do {
            let client = try await RuntimeClient.connect(
                host: "127.0.0.1", port: repeater.localAddress!.port!, configuration: TestCertificates.shared.client("client"))
            await client.close()
            XCTFail("nothing is behind the repeater")
        } catch let error as RuntimeClientError {
            guard case .closedDuringHandshake = error else { return XCTFail("\(error)") }
            // "(end of stream)" or "(connection reset)", as the close reaches the client.
            XCTAssertTrue(
                "\(error)".hasPrefix("127.0.0.1:\(repeater.localAddress!.port!) closed the connection before TLS finished ("), "\(error)")
            XCTAssertTrue(
                "\(error)".hasSuffix(
                    "; through a repeater this usually means its link to the runtime manager is down: "
                        + "is runtime-manager running, and does repeaterd's log say why?"),
                "\(error)")
        }
        _ = try? await repeater.shutdown().get()
    }

    func testPutAndGet32MiBThroughTheRepeaterByteExact() async throws {
        let path = try await RepeaterPath()
        let data = patternedData(count: 32 * 1024 * 1024, seed: 32)
        let client = try await path.connect()
        try await client.write("big.bin", data: data)
        let back = try await client.read("big.bin")
        XCTAssertEqual(back.count, data.count)
        XCTAssertTrue(back == data, "bytes differ after the round trip through repeaterd")
        await client.close()
        await path.stop()
    }

    func testTwentyConcurrentClientsThroughTheRepeater() async throws {
        let path = try await RepeaterPath()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<20 {
                group.addTask {
                    let data = patternedData(count: 256 * 1024 + index * 1000, seed: UInt64(index))
                    let client = try await path.connect()
                    try await client.write("file-\(index)", data: data)
                    let back = try await client.read("file-\(index)")
                    XCTAssertTrue(back == data, "client \(index) got other bytes back")
                    await client.close()
                }
            }
            try await group.waitForAll()
        }
        await path.stop()
    }

    func testPolicyDenialThroughTheRepeaterKeepsTheSession() async throws {
        let path = try await RepeaterPath()
        let reader = try await path.connect("reader")
        let denied = try await reader.send(
            .with {
                $0.context = 3
                $0.writeFile = .with {
                    $0.fileName = "x"
                    $0.data = Data([1])
                }
            })
        XCTAssertEqual(denied.status, .failedInvalidRole)
        let hash = try await reader.policyHash()
        XCTAssertEqual(Array(hash), path.server.policy.sha256, "the session goes on after a denial")
        await reader.close()
        await path.stop()
    }

    /// OpenSSL's own TLS stack completes a handshake with the runtime manager *through* the
    /// repeater: proof that the repeater is byte-transparent.
    func testOpenSSLClientThroughTheRepeater() async throws {
        let path = try await RepeaterPath()
        try await assertOpenSSLClientGetsPolicyHash(port: path.port, expected: path.server.policy.sha256)
        await path.stop()
    }

    /// The repeater and the link only ever carry TLS ciphertext: a marker the client sends in a
    /// file never appears on the link.
    func testTheLinkNeverCarriesPlaintext() async throws {
        let path = try await RepeaterPath(tapTheLink: true)
        let marker = Data("PLAINTEXT-MARKER-7f3a9c-must-never-cross-the-link".utf8)
        var data = Data()
        for _ in 0..<2000 { data.append(marker) }
        let client = try await path.connect()
        try await client.write("secret.txt", data: data)
        let back = try await client.read("secret.txt")
        XCTAssertEqual(back, data)
        await client.close()
        let recorded = path.tap!.recorded
        XCTAssertGreaterThan(recorded.count, data.count * 2, "the tap saw the transfer both ways")
        XCTAssertNil(recorded.range(of: marker), "the plaintext marker crossed the link")
        XCTAssertNil(recorded.range(of: Data("secret.txt".utf8)), "a file name crossed the link in clear")
        await path.stop()
    }

    /// TLS and the request codec over one yamux stream, on embedded channels: no sockets.
    func testTLSOverAYamuxStreamOnEmbeddedChannels() throws {
        let certs = TestCertificates.shared
        let server = try RuntimeManagerServer(
            configuration: certs.serverConfiguration(), group: MultiThreadedEventLoopGroup.singleton,
            logger: LogCollector().logger())
        let context = server.sessionContext
        let loop = EmbeddedEventLoop()
        let clientLink = EmbeddedChannel(loop: loop)
        let serverLink = EmbeddedChannel(loop: loop)
        var clientConfiguration = YamuxConfiguration(role: .client)
        clientConfiguration.keepAliveInterval = nil
        var serverConfiguration = YamuxConfiguration(role: .server)
        serverConfiguration.keepAliveInterval = nil
        let clientMux = YamuxMultiplexer(configuration: clientConfiguration)
        try clientLink.pipeline.syncOperations.addHandler(clientMux)
        try serverLink.pipeline.syncOperations.addHandler(
            YamuxMultiplexer(configuration: serverConfiguration) { stream in
                RuntimeManagerSession.configure(channel: stream, context: context)
            })
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try clientLink.connect(to: address).wait()
        try serverLink.connect(to: address).wait()

        let sslContext = try certs.client("client").makeSSLContext()
        let responses = ResponseCollector()
        let opened = clientMux.createStream { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                try stream.pipeline.syncOperations.addHandler(LengthPrefixedMessageEncoder<RuntimeManagerRequest>())
                try stream.pipeline.syncOperations.addHandler(LengthPrefixedMessageDecoder<RuntimeManagerResponse>())
                try stream.pipeline.syncOperations.addHandler(responses)
            }
        }
        var openedStream: Channel?
        opened.assumeIsolated().whenSuccess { openedStream = $0 }
        pumpLinks(clientLink, serverLink, until: { openedStream != nil })
        let stream = try XCTUnwrap(openedStream, "the stream did not open")
        stream.writeAndFlush(
            RuntimeManagerRequest.with {
                $0.context = 77
                $0.writeFile = .with {
                    $0.fileName = "over-yamux.txt"
                    $0.data = Data("hello over a stream".utf8)
                }
            }, promise: nil)
        pumpLinks(clientLink, serverLink)
        stream.writeAndFlush(
            RuntimeManagerRequest.with {
                $0.context = 78
                $0.readFile = .with { $0.fileName = "over-yamux.txt" }
            },
            promise: nil)
        pumpLinks(clientLink, serverLink, until: { responses.responses.count >= 2 })
        XCTAssertEqual(responses.responses.map(\.status), [.success, .success])
        XCTAssertEqual(responses.responses.map(\.context), [77, 78])
        XCTAssertEqual(responses.responses.last?.result.data, Data("hello over a stream".utf8))
    }
}

/// Pumps until `done` holds (TLS may complete work on other threads, which lands on the embedded
/// loop as tasks), for at most ten seconds.
private func pumpLinks(_ a: EmbeddedChannel, _ b: EmbeddedChannel, until done: () -> Bool) {
    let deadline = Date().addingTimeInterval(10)
    repeat {
        pumpLinks(a, b)
        if done() { return }
        usleep(1_000)
    } while Date() < deadline
}

private func pumpLinks(_ a: EmbeddedChannel, _ b: EmbeddedChannel) {
    var moved = true
    while moved {
        moved = false
        for (from, to) in [(a, b), (b, a)] {
            (from.eventLoop as! EmbeddedEventLoop).run()
            while let bytes = try? from.readOutbound(as: ByteBuffer.self) {
                moved = true
                _ = try? to.writeInbound(bytes)
            }
        }
    }
}

final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = RuntimeManagerResponse
    var responses: [RuntimeManagerResponse] = []
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        responses.append(unwrapInboundIn(data))
    }
}

/// A TCP forwarder that records every byte it forwards (both directions), to inspect a link.
final class RecordingTap: Sendable {
    private let group: EventLoopGroup
    private let targetPort: Int
    private let listener = Mutex<Channel?>(nil)
    private let bytes = NIOLockedValueBox(Data())

    init(group: EventLoopGroup, targetPort: Int) {
        self.group = group
        self.targetPort = targetPort
    }

    var recorded: Data { bytes.withLockedValue { $0 } }

    func start() async throws -> Int {
        let target = targetPort
        let bytes = self.bytes
        let channel = try await ServerBootstrap(group: group)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(.allowRemoteHalfClosure, value: true)
                    .connect(host: "127.0.0.1", port: target)
                    .flatMapThrowing { outbound in
                        let (a, b) = ChannelRelay.matchedPair(first: ("repeater", .socket), second: ("runtime manager", .socket))
                        try inbound.pipeline.syncOperations.addHandler(Recorder(bytes: bytes))
                        try inbound.pipeline.syncOperations.addHandler(a)
                        try outbound.pipeline.syncOperations.addHandler(Recorder(bytes: bytes))
                        try outbound.pipeline.syncOperations.addHandler(b)
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        listener.withLock { $0 = channel }
        return channel.localAddress!.port!
    }

    func stop() async throws { try await listener.withLock { $0 }?.close() }

    final class Recorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let bytes: NIOLockedValueBox<Data>
        init(bytes: NIOLockedValueBox<Data>) { self.bytes = bytes }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            bytes.withLockedValue { $0.append(contentsOf: buffer.readableBytesView) }
            context.fireChannelRead(data)
        }
    }
}
