import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOSSL
import RuntimeManager
import TransportProtocol
import XCTest

/// A TLS client and a runtime-manager session on two EmbeddedChannels, bytes
/// moved between them by hand: no sockets, so the session is shown to need
/// nothing but a channel pipeline (as on a yamux stream).
final class EmbeddedTLSTests: XCTestCase {
    private let certs = TestCertificates.shared
    private var store: FileStore!
    private var logs: LogCollector!

    private func makeServerChannel(maximumMessageBytes: Int = 64 * 1024 * 1024) throws -> EmbeddedChannel {
        let configuration = self.certs.serverConfiguration(maximumMessageBytes: maximumMessageBytes)
        let policy = try Policy(contentsOf: configuration.policyPath)
        self.store = FileStore(maximumTotalBytes: 1 << 20)
        self.logs = LogCollector()
        let context = RuntimeManagerSessionContext(
            sslContext: try ServerTLS.makeContext(
                certificatePath: configuration.certificatePath, keyPath: configuration.keyPath,
                clientCAPath: configuration.clientCAPath
            ),
            requestHandler: RequestHandler(store: self.store, policy: policy, maximumMessageBytes: maximumMessageBytes),
            maximumMessageBytes: maximumMessageBytes,
            logger: self.logs.logger()
        )
        let channel = EmbeddedChannel()
        try RuntimeManagerSession.configure(channel: channel, context: context).wait()
        return channel
    }

    private func makeClientChannel(who: String, framed: Bool = true) throws -> EmbeddedChannel {
        let sslContext = try self.certs.client(who).makeSSLContext()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: nil))
        if framed {
            try channel.pipeline.syncOperations.addHandler(LengthPrefixedMessageEncoder<RuntimeManagerRequest>())
            try channel.pipeline.syncOperations.addHandler(LengthPrefixedMessageDecoder<RuntimeManagerResponse>())
        }
        return channel
    }

    /// Moves bytes both ways until neither side has anything to send.
    private func pump(_ client: EmbeddedChannel, _ server: EmbeddedChannel) throws {
        var moved = true
        while moved {
            moved = false
            while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                try server.writeInbound(bytes)
                moved = true
            }
            while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                try client.writeInbound(bytes)
                moved = true
            }
        }
    }

    private func connect(_ client: EmbeddedChannel, _ server: EmbeddedChannel) throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try server.connect(to: address).wait()
        try client.connect(to: address).wait()
        try self.pump(client, server)
    }

    /// Closes the client with a TLS close_notify and lets both sides finish the exchange.
    private func closeBoth(_ client: EmbeddedChannel, _ server: EmbeddedChannel) throws {
        let closed = client.close()
        try self.pump(client, server)
        XCTAssertFalse(server.isActive, "the session should close when the client does")
        try closed.wait()
        XCTAssertNoThrow(try client.finish(acceptAlreadyClosed: true))
        XCTAssertNoThrow(try server.finish(acceptAlreadyClosed: true))
    }

    func testOneRequestAndResponseOverTLSWithoutSockets() throws {
        let server = try self.makeServerChannel()
        let client = try self.makeClientChannel(who: "client")
        try self.connect(client, server)
        XCTAssertTrue(self.logs.messages.contains { $0.contains("session started") }, "\(self.logs.messages)")

        let request = RuntimeManagerRequest.with {
            $0.context = 42
            $0.writeFile = .with { $0.fileName = "hello.txt"; $0.data = Data("hello through TLS".utf8) }
        }
        client.writeAndFlush(request, promise: nil)
        try self.pump(client, server)
        let response = try XCTUnwrap(try client.readInbound(as: RuntimeManagerResponse.self))
        XCTAssertEqual(response.status, .success)
        XCTAssertEqual(response.context, 42)
        XCTAssertEqual(try self.store.read("hello.txt"), Data("hello through TLS".utf8))
        XCTAssertTrue(server.isActive)

        try self.closeBoth(client, server)
    }

    func testTheSessionLearnsTheClientIdentityFromItsCertificate() throws {
        let server = try self.makeServerChannel()
        let client = try self.makeClientChannel(who: "reader")
        try self.connect(client, server)
        client.writeAndFlush(
            RuntimeManagerRequest.with { $0.context = 1; $0.writeFile = .with { $0.fileName = "x" } }, promise: nil
        )
        try self.pump(client, server)
        let response = try XCTUnwrap(try client.readInbound(as: RuntimeManagerResponse.self))
        XCTAssertEqual(response.status, .failedInvalidRole)
        XCTAssertTrue(response.errorMessage?.contains("CN=reader") ?? false, response.errorMessage ?? "")
        try self.closeBoth(client, server)
    }

    func testAnOversizePrefixIsAnsweredWithAnErrorAndTheSessionClosed() throws {
        let server = try self.makeServerChannel(maximumMessageBytes: 1024)
        let client = try self.makeClientChannel(who: "client", framed: false)
        try self.connect(client, server)
        var prefix = ByteBuffer()
        prefix.writeInteger(UInt64(1) << 40, endianness: .big)
        client.writeAndFlush(prefix, promise: nil)
        try self.pump(client, server)

        var frames = LengthPrefixFrameDecoder()
        while let bytes = try client.readInbound(as: ByteBuffer.self) { frames.append(bytes) }
        let payload = try XCTUnwrap(try frames.nextPayload(), "the server should explain before closing")
        let response = try RuntimeManagerResponse(payload: payload)
        XCTAssertEqual(response.status, .failedInvalidRequest)
        let message = response.errorMessage ?? ""
        XCTAssertTrue(message.contains("1099511627776") && message.contains("1024"), message)
        XCTAssertFalse(server.isActive, "the session must close: the stream can no longer be framed")
        XCTAssertNoThrow(try client.finish(acceptAlreadyClosed: true))
    }

    func testAPeerThatNeverFinishesTheHandshakeIsDroppedAfterTheTimeout() throws {
        let server = try self.makeServerChannel()
        try server.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        server.embeddedEventLoop.advanceTime(by: .seconds(29))
        XCTAssertTrue(server.isActive)
        server.embeddedEventLoop.advanceTime(by: .seconds(2))
        // The server sent close_notify and waits for the peer's; it never comes.
        server.embeddedEventLoop.advanceTime(by: .seconds(10))
        XCTAssertFalse(server.isActive, "a silent peer must not hold a session forever")
        XCTAssertTrue(self.logs.messages.contains { $0.contains("TLS handshake not finished after 30 s") }, "\(self.logs.messages)")
        XCTAssertNoThrow(try server.finish(acceptAlreadyClosed: true))
    }
}
