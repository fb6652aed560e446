import NIOCore
import NIOEmbedded
import XCTest

@testable import Yamux

/// Moves bytes between two embedded link channels until nothing moves any more.
func pump(_ a: EmbeddedChannel, _ b: EmbeddedChannel, file: StaticString = #filePath, line: UInt = #line) {
    var moved = true
    var rounds = 0
    while moved {
        moved = false
        rounds += 1
        if rounds > 100_000 { return XCTFail("pump did not settle", file: file, line: line) }
        for (from, to) in [(a, b), (b, a)] {
            (from.eventLoop as! EmbeddedEventLoop).run()
            while let bytes = try? from.readOutbound(as: ByteBuffer.self) {
                moved = true
                XCTAssertNoThrow(try to.writeInbound(bytes), file: file, line: line)
            }
        }
    }
}

/// Echoes every byte; after the peer's FIN, finishes with FIN of its own. Stateless, so one may
/// serve any channel on any thread.
final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            context.close(mode: .output, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Collects every byte and event a stream delivers.
// Safe: used on EmbeddedChannels only (one thread).
final class CollectingHandler: ChannelInboundHandler, @unchecked Sendable {  // on embedded loops: the test's own thread
    typealias InboundIn = ByteBuffer

    var received = ByteBuffer()
    var inputClosed = false
    var inactive = false
    var errors: [Error] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received.writeBuffer(&buffer)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { inputClosed = true }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inactive = true
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        errors.append(error)
    }
}

/// A client and a server link joined in memory, with the server echoing every stream.
struct LinkedPair {
    let client: EmbeddedChannel
    let server: EmbeddedChannel
    let clientMux: YamuxMultiplexer
    let serverMux: YamuxMultiplexer

    init(
        clientConfiguration: YamuxConfiguration = YamuxConfiguration(role: .client),
        serverConfiguration: YamuxConfiguration = YamuxConfiguration(role: .server),
        serverStreamInitializer: YamuxMultiplexer.StreamInitializer? = nil
    ) throws {
        let loop = EmbeddedEventLoop()
        client = EmbeddedChannel(loop: loop)
        server = EmbeddedChannel(loop: loop)
        clientMux = YamuxMultiplexer(configuration: clientConfiguration)
        serverMux = YamuxMultiplexer(
            configuration: serverConfiguration,
            inboundStreamInitializer: serverStreamInitializer ?? { channel in
                channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMap {
                    channel.pipeline.addHandler(EchoHandler())
                }
            })
        try client.pipeline.syncOperations.addHandler(clientMux)
        try server.pipeline.syncOperations.addHandler(serverMux)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func pump(file: StaticString = #filePath, line: UInt = #line) {
        YamuxTests.pump(client, server, file: file, line: line)
    }

    /// Opens a client stream with a collecting handler and half-closure allowed.
    func openStream() throws -> (Channel, CollectingHandler) {
        let collector = CollectingHandler()
        let future = clientMux.createStream { channel in
            channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMap {
                channel.pipeline.addHandler(collector)
            }
        }
        pump()
        return (try future.wait(), collector)
    }
}

func pattern(_ count: Int, seed: UInt8 = 0) -> ByteBuffer {
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { storage, initialized in
        for i in 0..<count { storage[i] = UInt8(truncatingIfNeeded: i &* 31 &+ Int(seed) &+ i >> 8) }
        initialized = count
    }
    return ByteBuffer(bytes: bytes)
}
