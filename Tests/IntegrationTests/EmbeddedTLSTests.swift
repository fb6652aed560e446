import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOSSL
import ProcessTestSupport
import RuntimeClient
import RuntimeManager
import SwiftProtobuf
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
            // Debug: what a client makes a session end with is a debug line (and, in a server, a
            // count for the summary line).
            logger: self.logs.logger(level: .debug)
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
            $0.writeFile = .with {
                $0.fileName = "hello.txt"
                $0.data = Data("hello through TLS".utf8)
            }
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
            RuntimeManagerRequest.with {
                $0.context = 1
                $0.writeFile = .with { $0.fileName = "x" }
            }, promise: nil
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
        XCTAssertTrue(
            self.logs.messages.contains { $0.hasPrefix("debug ") && $0.contains("TLS handshake not finished after 30 s") },
            "\(self.logs.messages)")
        XCTAssertFalse(self.logs.messages.contains { $0.hasPrefix("warning") }, "no warning per session: \(self.logs.messages)")
        XCTAssertNoThrow(try server.finish(acceptAlreadyClosed: true))
    }

    // MARK: Hostile input inside TLS (docs/RELIABILITY.md)

    /// Reads whatever the server sent back as length-prefixed responses.
    private func responses(_ client: EmbeddedChannel) throws -> [RuntimeManagerResponse] {
        var frames = LengthPrefixFrameDecoder()
        while let bytes = try client.readInbound(as: ByteBuffer.self) { frames.append(bytes) }
        var out: [RuntimeManagerResponse] = []
        while let payload = try frames.nextPayload() { out.append(try RuntimeManagerResponse(payload: payload)) }
        return out
    }

    func testAPrefixThenSilenceIsAnsweredAndClosedAfterTheMessageTimeout() throws {
        let server = try self.makeServerChannel()
        let client = try self.makeClientChannel(who: "client", framed: false)
        try self.connect(client, server)
        var bytes = ByteBuffer()
        bytes.writeInteger(UInt64(10 * 1024 * 1024), endianness: .big)  // announces 10 MiB…
        bytes.writeBytes([1, 2, 3])  // …sends 3 bytes, then nothing
        client.writeAndFlush(bytes, promise: nil)
        try self.pump(client, server)
        server.embeddedEventLoop.advanceTime(by: .seconds(29))
        try self.pump(client, server)
        XCTAssertTrue(server.isActive, "29 s of silence is within the 30 s message timeout")
        server.embeddedEventLoop.advanceTime(by: .seconds(2))
        try self.pump(client, server)
        let answer = try XCTUnwrap(try self.responses(client).first, "the server should say why it closes")
        XCTAssertEqual(answer.status, .failedInvalidRequest)
        XCTAssertTrue(answer.errorMessage?.contains("3 of its 10485760 bytes arrived") ?? false, answer.errorMessage ?? "")
        server.embeddedEventLoop.advanceTime(by: .seconds(10))
        XCTAssertFalse(server.isActive, "a stalled message must not hold the session")
        XCTAssertTrue(self.logs.messages.contains { $0.hasPrefix("debug ") && $0.contains("message stalled") }, "\(self.logs.messages)")
        XCTAssertFalse(self.logs.messages.contains { $0.hasPrefix("warning") }, "no warning per session: \(self.logs.messages)")
        XCTAssertNoThrow(try client.finish(acceptAlreadyClosed: true))
        XCTAssertNoThrow(try server.finish(acceptAlreadyClosed: true))
    }

    func testAMessageThatKeepsArrivingSlowlyIsNotCutOff() throws {
        let server = try self.makeServerChannel()
        let client = try self.makeClientChannel(who: "client", framed: false)
        try self.connect(client, server)
        let request = RuntimeManagerRequest.with {
            $0.context = 7
            $0.writeFile = .with {
                $0.fileName = "slow"
                $0.data = Data(repeating: 9, count: 1000)
            }
        }
        var whole = ByteBuffer()
        let payload = try request.serializedBytes() as [UInt8]
        writeLengthPrefix(payload.count, into: &whole)
        whole.writeBytes(payload)
        // A byte every 20 s: each is progress, so the 30 s timeout never fires (over 5 hours in all
        // would be silly; 60 pieces of the message is enough to show the timer re-arms).
        var sent = 0
        while whole.readableBytes > 0 {
            let piece = whole.readSlice(length: min(whole.readableBytes, sent < 60 ? 1 : whole.readableBytes))!
            client.writeAndFlush(piece, promise: nil)
            try self.pump(client, server)
            server.embeddedEventLoop.advanceTime(by: .seconds(20))
            sent += 1
        }
        try self.pump(client, server)
        let answer = try XCTUnwrap(try self.responses(client).first)
        XCTAssertEqual(answer.status, .success, answer.errorMessage ?? "")
        XCTAssertTrue(server.isActive)
        try self.closeBoth(client, server)
    }

    func testBytesThatAreNotProtobufAfterAValidPrefixAreRefusedAndTheSessionGoesOn() throws {
        let server = try self.makeServerChannel()
        let client = try self.makeClientChannel(who: "client", framed: false)
        try self.connect(client, server)
        var bytes = ByteBuffer()
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x07]
        writeLengthPrefix(garbage.count, into: &bytes)
        bytes.writeBytes(garbage)
        client.writeAndFlush(bytes, promise: nil)
        try self.pump(client, server)
        let answer = try XCTUnwrap(try self.responses(client).first)
        XCTAssertEqual(answer.status, .failedInvalidRequest)
        XCTAssertTrue(answer.errorMessage?.contains("not a valid") ?? false, answer.errorMessage ?? "")
        XCTAssertTrue(server.isActive, "framing is intact, so the session goes on")

        // …and still answers a good request.
        var good = ByteBuffer()
        let payload =
            try RuntimeManagerRequest.with {
                $0.context = 5
                $0.requestPolicyHash = .init()
            }.serializedBytes()
            as [UInt8]
        writeLengthPrefix(payload.count, into: &good)
        good.writeBytes(payload)
        client.writeAndFlush(good, promise: nil)
        try self.pump(client, server)
        let second = try XCTUnwrap(try self.responses(client).first)
        XCTAssertEqual(second.status, .success)
        XCTAssertEqual(second.context, 5)
        try self.closeBoth(client, server)
    }

    func testAMessageBiggerThanTheRemainingStoreIsRefusedAndNothingIsStored() throws {
        let server = try self.makeServerChannel()  // the store holds 1 MiB
        let client = try self.makeClientChannel(who: "client")
        try self.connect(client, server)
        client.writeAndFlush(
            RuntimeManagerRequest.with {
                $0.context = 1
                $0.writeFile = .with {
                    $0.fileName = "first"
                    $0.data = Data(repeating: 1, count: 768 * 1024)
                }
            }, promise: nil)
        client.writeAndFlush(
            RuntimeManagerRequest.with {
                $0.context = 2
                $0.writeFile = .with {
                    $0.fileName = "second"
                    $0.data = Data(repeating: 2, count: 512 * 1024)
                }
            }, promise: nil)
        try self.pump(client, server)
        let first = try XCTUnwrap(try client.readInbound(as: RuntimeManagerResponse.self))
        let second = try XCTUnwrap(try client.readInbound(as: RuntimeManagerResponse.self))
        XCTAssertEqual(first.status, .success)
        XCTAssertNotEqual(second.status, .success)
        XCTAssertTrue(second.errorMessage?.contains("limit") ?? false, second.errorMessage ?? "")
        XCTAssertThrowsError(try self.store.read("second"), "nothing of a refused write may be stored")
        XCTAssertTrue(server.isActive)
        try self.closeBoth(client, server)
    }

    func testASessionSilentBothWaysIsClosedAfterTheIdleTimeout() throws {
        let server = try self.makeServerChannel()
        let client = try self.makeClientChannel(who: "client")
        try self.connect(client, server)
        server.embeddedEventLoop.advanceTime(by: .seconds(299))
        XCTAssertTrue(server.isActive)
        server.embeddedEventLoop.advanceTime(by: .seconds(2))
        try self.pump(client, server)
        server.embeddedEventLoop.advanceTime(by: .seconds(10))
        XCTAssertFalse(server.isActive, "an idle session must not be held forever")
        XCTAssertTrue(
            self.logs.messages.contains { $0.hasPrefix("debug ") && $0.contains("closing idle session") }, "\(self.logs.messages)")
        XCTAssertFalse(self.logs.messages.contains { $0.hasPrefix("warning") }, "no warning per session: \(self.logs.messages)")
        XCTAssertNoThrow(try client.finish(acceptAlreadyClosed: true))
        XCTAssertNoThrow(try server.finish(acceptAlreadyClosed: true))
    }
}
