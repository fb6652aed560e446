import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

@testable import Yamux

#if canImport(Glibc)
import Glibc  // `linger`, NIOLinger's type
#endif

/// `YamuxSocketRelay` on real sockets (an embedded channel cannot half-close): a user socket →
/// a front socket relayed onto a yamux link → the far multiplexer, whose streams are child
/// channels running `streamHandler`. Everything runs on one event loop, as in repeaterd.
final class YamuxSocketRelayTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var loop: EventLoop { group.next() }

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        XCTAssertNoThrow(try group.syncShutdownGracefully())
    }

    /// The far end of the link, the near multiplexer, and a front listener whose accepted sockets
    /// are relayed onto the link.
    private struct Rig {
        let farLinks: Channel
        let nearLink: Channel
        let nearMux: NIOLoopBoundBox<YamuxMultiplexer?>
        let front: Channel
        let farLinkChannels: NIOLockedValueBox<[Channel]>
        /// The relays made for the front's sockets, in accept order.
        let relays: NIOLoopBoundBox<[YamuxSocketRelay]>
        /// The far end's stream channels, in open order.
        let farStreams: NIOLockedValueBox<[Channel]>
    }

    private func makeRig(
        farAutoRead: Bool = true, streamHandler: @escaping @Sendable () -> ChannelHandler & Sendable
    ) throws -> Rig {
        let loop = self.loop
        let farLinkChannels = NIOLockedValueBox([Channel]())
        let farStreams = NIOLockedValueBox([Channel]())
        let relays = NIOLoopBoundBox.makeBoxSendingValue([YamuxSocketRelay](), eventLoop: loop)
        let farLinks = try ServerBootstrap(group: loop)
            .childChannelInitializer { link in
                farLinkChannels.withLockedValue { $0.append(link) }
                return link.eventLoop.makeCompletedFuture {
                    try link.pipeline.syncOperations.addHandler(
                        YamuxMultiplexer(
                            configuration: YamuxConfiguration(role: .server),
                            inboundStreamInitializer: { stream in
                                farStreams.withLockedValue { $0.append(stream) }
                                return stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMap {
                                    stream.setOption(ChannelOptions.autoRead, value: farAutoRead)
                                }.flatMap {
                                    stream.pipeline.addHandler(streamHandler())
                                }
                            }))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        let nearMux = NIOLoopBoundBox.makeEmptyBox(valueType: YamuxMultiplexer.self, eventLoop: loop)
        let nearLink = try ClientBootstrap(group: loop)
            .channelInitializer { link in
                link.eventLoop.makeCompletedFuture {
                    let mux = YamuxMultiplexer(configuration: YamuxConfiguration(role: .client))
                    try link.pipeline.syncOperations.addHandler(mux)
                    nearMux.value = mux
                }
            }
            .connect(to: farLinks.localAddress!).wait()
        let front = try ServerBootstrap(group: loop)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { socket in
                socket.eventLoop.makeCompletedFuture {
                    relays.value.append(
                        try nearMux.value!.createRelayStream(to: socket, socketSide: "user", streamSide: "far end"))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        return Rig(
            farLinks: farLinks, nearLink: nearLink, nearMux: nearMux, front: front, farLinkChannels: farLinkChannels,
            relays: relays, farStreams: farStreams)
    }

    private func connectUser(to rig: Rig, collector: SocketCollector, linger: Bool = false) throws -> Channel {
        let channel = try ClientBootstrap(group: loop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(to: rig.front.localAddress!).wait()
        if linger {
            // SO_LINGER 0: close() sends RST instead of FIN.
            let options = try XCTUnwrap(channel as? SocketOptionProvider)
            try options.setSoLinger(Glibc.linger(l_onoff: 1, l_linger: 0)).wait()
        }
        return channel
    }

    /// Closes the rig's listeners and its link (which a test may have lost already).
    private func close(_ rig: Rig) throws {
        try rig.front.close().wait()
        rig.nearLink.close(promise: nil)
        try rig.farLinks.close().wait()
    }

    private func openStreamCount(_ rig: Rig) throws -> Int {
        try loop.submit { rig.nearMux.value?.openStreamCount ?? -1 }.wait()
    }

    /// A relayed socket and a child-channel stream share one link: the relay's 1 MiB (many window
    /// updates) and its half-close come back whole and in order, then the socket closes and the
    /// stream is gone from the multiplexer; the child stream on the same link answers meanwhile.
    func testRelayedSocketAndChildStreamShareOneLink() throws {
        let rig = try makeRig { EchoHandler() }
        let user = SocketCollector(eventLoop: loop)
        let userChannel = try connectUser(to: rig, collector: user)

        // The child-channel kind, opened on the same near multiplexer.
        let childCollector = SocketCollector(eventLoop: loop)
        let child = try loop.flatSubmit {
            rig.nearMux.value!.createStream { stream in
                stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMap {
                    stream.pipeline.addHandler(childCollector)
                }
            }
        }.wait()

        let payload = pattern(1 << 20, seed: 7)
        userChannel.write(payload, promise: nil)
        userChannel.writeAndFlush(ByteBuffer(), promise: nil)
        child.writeAndFlush(ByteBuffer(string: "child stream"), promise: nil)
        try userChannel.close(mode: .output).wait()

        try user.inputClosed.futureResult.wait()
        XCTAssertEqual(try user.received(), payload, "every byte back, in order, before the FIN")
        try userChannel.closeFuture.wait()
        try child.close(mode: .output).wait()
        try childCollector.inputClosed.futureResult.wait()
        XCTAssertEqual(try childCollector.received(), ByteBuffer(string: "child stream"))
        try child.closeFuture.wait()

        try waitUntil { try self.openStreamCount(rig) == 0 }
        try close(rig)
    }

    /// The far end stops reading: the stream's window closes, and the relay holds back reads on
    /// the user's socket once its queue passes the stream write watermark, so what repeaterd
    /// holds for this client stays bounded (TCP pushes back on the user) — then every byte
    /// arrives, in order, once the far end reads again.
    func testAFarEndThatStopsReadingHoldsTheUserBackWithBoundedMemory() throws {
        let farEnd = SocketCollector(eventLoop: loop)
        let rig = try makeRig(farAutoRead: false) { farEnd }
        let user = SocketCollector(eventLoop: loop)
        let userChannel = try connectUser(to: rig, collector: user)
        // More than the kernel's socket buffers on both sides of the front can absorb.
        let payload = pattern(32 << 20, seed: 3)
        userChannel.writeAndFlush(payload, promise: nil)

        let configuration = try loop.submit { rig.nearMux.value!.configuration }.wait()
        // The relay holds back the socket's next read once its queue passes the watermark; the
        // read cycle under way may still finish (NIO reads up to 4 buffers of up to 64 KiB per
        // cycle by default): allow twice that on top.
        let bound = configuration.streamWriteHighWatermark + 8 * 64 * 1024
        var largest = 0
        for _ in 0..<40 {
            let queued = try loop.submit { rig.relays.value.first?.sendableBytes ?? -1 }.wait()
            XCTAssertGreaterThanOrEqual(queued, 0, "the relay exists")
            largest = max(largest, queued)
            try loop.scheduleTask(in: .milliseconds(10)) {}.futureResult.wait()
        }
        XCTAssertLessThanOrEqual(largest, bound, "the relay's queue from the user stays bounded")
        XCTAssertGreaterThan(largest, 0, "the far end's closed window left bytes queued at the relay")
        XCTAssertFalse(try loop.submit { userChannel.isWritable }.wait(), "TCP pushes back on the user")

        let farStream = try XCTUnwrap(rig.farStreams.withLockedValue { $0.first })
        try farStream.setOption(ChannelOptions.autoRead, value: true).wait()
        farStream.read()
        try userChannel.close(mode: .output).wait()
        try farEnd.inputClosed.futureResult.wait()
        XCTAssertEqual(try farEnd.received(), payload, "every byte, in order, once the far end reads")
        // The far end ends its side too; the user, whose output and input are then both closed,
        // is closed by NIO.
        try farStream.close().wait()
        try userChannel.closeFuture.wait()
        try waitUntil { try self.openStreamCount(rig) == 0 }
        try close(rig)
    }

    /// The user socket fails (a TCP reset): the far end sees the stream reset, not a FIN that
    /// would make a truncated message look complete.
    func testSocketErrorResetsTheStream() throws {
        let farEnd = StreamWatcher(eventLoop: loop)
        let rig = try makeRig { farEnd }
        let user = SocketCollector(eventLoop: loop)
        let userChannel = try connectUser(to: rig, collector: user, linger: true)
        try userChannel.writeAndFlush(ByteBuffer(string: "partial mess")).wait()
        try farEnd.firstRead.futureResult.wait()
        try userChannel.close().wait()  // SO_LINGER 0: RST

        let outcome = try farEnd.ended.futureResult.wait()
        XCTAssertFalse(outcome.sawFinish, "the far end must not see a clean FIN")
        XCTAssertTrue(outcome.sawError, "the far end sees the reset as an error")
        try waitUntil { try self.openStreamCount(rig) == 0 }
        try close(rig)
    }

    /// The link goes away: the relayed socket is closed at once, and the front keeps serving.
    func testLinkLossClosesTheRelayedSocket() throws {
        let farEnd = StreamWatcher(eventLoop: loop)
        let rig = try makeRig { farEnd }
        let user = SocketCollector(eventLoop: loop)
        let userChannel = try connectUser(to: rig, collector: user)
        try userChannel.writeAndFlush(ByteBuffer(string: "hello")).wait()
        try farEnd.firstRead.futureResult.wait()

        for link in rig.farLinkChannels.withLockedValue({ $0 }) { try link.close().wait() }
        // The relayed socket is closed: the user (which allows half-closure) sees its input end.
        try user.inputClosed.futureResult.wait()
        try waitUntil { try self.openStreamCount(rig) == 0 }
        try close(rig)
    }

    private func waitUntil(_ condition: () throws -> Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        for _ in 0..<2000 {
            if try condition() { return }
            try loop.scheduleTask(in: .milliseconds(5)) {}.futureResult.wait()
        }
        XCTFail("condition not met within 10 s", file: file, line: line)
    }
}

/// Collects a socket's bytes (read on its loop) and completes when its input closes.
private final class SocketCollector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    private let bytes: NIOLoopBoundBox<ByteBuffer>
    let inputClosed: EventLoopPromise<Void>

    init(eventLoop: EventLoop) {
        bytes = .makeBoxSendingValue(ByteBuffer(), eventLoop: eventLoop)
        inputClosed = eventLoop.makePromise()
    }

    func received() throws -> ByteBuffer {
        try bytes.eventLoop.submit { self.bytes.value }.wait()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        bytes.value.writeBuffer(&buffer)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { inputClosed.succeed() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inputClosed.succeed()
    }
}

/// Watches the far end of one stream: its first read, and how it ended.
private final class StreamWatcher: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    struct Outcome: Sendable {
        var sawFinish = false
        var sawError = false
    }

    private let outcome: NIOLoopBoundBox<Outcome>
    let firstRead: EventLoopPromise<Void>
    let ended: EventLoopPromise<Outcome>

    init(eventLoop: EventLoop) {
        outcome = .makeBoxSendingValue(Outcome(), eventLoop: eventLoop)
        firstRead = eventLoop.makePromise()
        ended = eventLoop.makePromise()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        firstRead.succeed()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { outcome.value.sawFinish = true }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        outcome.value.sawError = true
    }

    func channelInactive(context: ChannelHandlerContext) {
        ended.succeed(outcome.value)
    }
}
