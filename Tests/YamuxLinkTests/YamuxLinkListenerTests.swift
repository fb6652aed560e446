import NIOCore
import NIOPosix
import Synchronization
import XCTest
import Yamux
import YamuxLink

/// The accepting side of links (the runtime manager's and `muxcat listen`'s), over real TCP:
/// several independent links at once, their streams handed to the initializer, counted, told
/// to go away, drained and closed by `stop()`.
final class YamuxLinkListenerTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var listener: YamuxLinkListener!

    /// Echoes every stream's bytes and closes the stream when its peer half-closes.
    private final class Echo: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.writeAndFlush(data, promise: nil) }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case ChannelEvent.inputClosed = event { context.close(promise: nil) }
        }
    }

    private final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    override func setUpWithError() throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        listener = YamuxLinkListener(
            address: .tcp(host: "127.0.0.1", port: 0), group: group,
            streamInitializer: { stream in
                stream.setOption(.allowRemoteHalfClosure, value: true).flatMap { stream.pipeline.addHandler(Echo()) }
            })
        try listener.start().wait()
    }

    override func tearDownWithError() throws {
        try? listener?.stop().wait()
        try group?.syncShutdownGracefully()
    }

    /// A link dialed as repeaterd does (the yamux client side).
    private func dial(to address: SocketAddress? = nil) throws -> Channel {
        try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(YamuxMultiplexer(configuration: YamuxConfiguration(role: .client)))
                }
            }
            .connect(to: address ?? listener.localAddress!).wait()
    }

    /// Opens a stream on `link`, sends `text`, half-closes, and returns what came back.
    private func exchange(_ text: String, on link: Channel) throws -> String {
        let gather = ReceivedText()
        let stream = try link.eventLoop.flatSubmit {
            let mux = try! link.pipeline.syncOperations.handler(type: YamuxMultiplexer.self)
            return mux.createStream { stream in
                stream.setOption(.allowRemoteHalfClosure, value: true).flatMap { stream.pipeline.addHandler(gather) }
            }
        }.wait()
        try stream.writeAndFlush(ByteBuffer(string: text)).wait()
        try stream.close(mode: .output).wait()
        try stream.closeFuture.wait()
        return gather.text
    }

    private func eventually(_ what: String, _ condition: () throws -> Bool) rethrows {
        let deadline = ContinuousClock.now + .seconds(10)
        while try !condition(), ContinuousClock.now < deadline { usleep(5_000) }
        XCTAssertTrue(try condition(), what)
    }

    func testEachLinkIsItsOwnSessionAndItsStreamsReachTheInitializer() throws {
        let first = try dial()
        let second = try dial()
        eventually("two links counted") { listener.linkCount == 2 }
        XCTAssertEqual(try exchange("over the first link", on: first), "over the first link")
        XCTAssertEqual(try exchange("over the second", on: second), "over the second")
        XCTAssertEqual(try listener.openStreamCount().wait(), 0, "a closed stream leaves nothing behind")

        try first.close().wait()
        eventually("a closed link is no longer counted") { listener.linkCount == 1 }
        XCTAssertEqual(try exchange("the other link goes on", on: second), "the other link goes on")
    }

    func testGoAwayRefusesNewStreamsAndDrainedWaitsForTheOpenOnes() throws {
        let link = try dial()
        eventually("the link is counted") { listener.linkCount == 1 }
        // A stream the listener holds open (no half-close yet).
        let gather = ReceivedText()
        let stream = try link.eventLoop.flatSubmit {
            try! link.pipeline.syncOperations.handler(type: YamuxMultiplexer.self).createStream { stream in
                stream.setOption(.allowRemoteHalfClosure, value: true).flatMap { stream.pipeline.addHandler(gather) }
            }
        }.wait()
        try stream.writeAndFlush(ByteBuffer(string: "held")).wait()
        try eventually("the listener sees the stream") { try listener.openStreamCount().wait() == 1 }

        listener.goAway()
        let drained = listener.drained()
        try eventually("the dialer hears Go Away") {
            try link.eventLoop.submit { try link.pipeline.syncOperations.handler(type: YamuxMultiplexer.self).isGoingAway }.wait()
        }
        XCTAssertThrowsError(
            try link.eventLoop.flatSubmit {
                try! link.pipeline.syncOperations.handler(type: YamuxMultiplexer.self).createStream()
            }.wait(), "no new stream after Go Away")
        let drainedYet = Flag()
        drained.whenComplete { _ in drainedYet.value.store(true, ordering: .relaxed) }
        usleep(100_000)
        XCTAssertFalse(drainedYet.value.load(ordering: .relaxed), "a stream is still open")

        try stream.close(mode: .output).wait()
        try stream.closeFuture.wait()
        try drained.wait()
        XCTAssertEqual(gather.text, "held", "the open stream finished its exchange")
    }

    func testStopClosesTheListenerAndEveryLink() throws {
        let link = try dial()
        let address = try XCTUnwrap(listener.localAddress)
        eventually("the link is counted") { listener.linkCount == 1 }
        try listener.stop().wait()
        try link.closeFuture.wait()
        XCTAssertNil(listener.localAddress)
        XCTAssertThrowsError(try dial(to: address), "nothing listens any more")
    }
}
