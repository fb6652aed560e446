import ByteRelay
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import XCTest
import Yamux
import YamuxLink

/// `ChannelRelay`, on one event loop and across two: its logic on embedded channels, and a
/// half-close exchange over real TCP, which is where half-close and write order mean something.
/// (Here rather than in ByteRelayTests for `ReceivedText` and the yamux streams it joins.)
final class ChannelRelayTests: XCTestCase {
    /// Counts the reads that pass the relay toward the socket.
    private final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    private final class Ends: Sendable {
        let reasons = Mutex<[String]>([])
        func add(_ reason: RelayEndReason) { reasons.withLock { $0.append("\(reason)") } }
        var all: [String] { reasons.withLock { $0 } }
    }

    /// Two embedded channels on one loop, joined; `client` has a read counter at its head.
    private func gluedPair() throws -> (client: EmbeddedChannel, backend: EmbeddedChannel, reads: ReadCounter, ends: Ends) {
        let loop = EmbeddedEventLoop()
        let ends = Ends()
        let (clientSide, backendSide) = ChannelRelay.matchedPair(first: ("client", .socket), second: ("backend", .socket)) { ends.add($0) }
        let reads = ReadCounter()
        let client = EmbeddedChannel(loop: loop)
        let backend = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandlers([reads, clientSide])
        try backend.pipeline.syncOperations.addHandler(backendSide)
        return (client, backend, reads, ends)
    }

    func testBytesCrossOnReadCompleteAndReadsWaitForAWritablePartner() throws {
        let (client, backend, reads, _) = try gluedPair()
        client.pipeline.fireChannelRead(NIOAny(ByteBuffer(string: "hello ")))
        client.pipeline.fireChannelRead(NIOAny(ByteBuffer(string: "world")))
        client.pipeline.fireChannelReadComplete()
        XCTAssertEqual(try backend.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "hello "))
        XCTAssertEqual(try backend.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "world"))

        backend.isWritable = false
        backend.pipeline.fireChannelWritabilityChanged()
        client.read()
        XCTAssertEqual(reads.reads, 0, "the backend cannot take more: the client is not read")
        backend.isWritable = true
        backend.pipeline.fireChannelWritabilityChanged()
        XCTAssertEqual(reads.reads, 1, "writable again: the held read goes on")
        client.read()
        XCTAssertEqual(reads.reads, 2)
    }

    func testAnEndOfInputIsAnEmptyWriteThenTheOutputsClose() throws {
        let (client, backend, _, ends) = try gluedPair()
        client.pipeline.fireChannelRead(NIOAny(ByteBuffer(string: "last bytes")))
        client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        XCTAssertEqual(try backend.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "last bytes"))
        XCTAssertEqual(try backend.readOutbound(as: ByteBuffer.self), ByteBuffer(), "an empty write, done after every earlier one")
        XCTAssertFalse(backend.isActive, "then the output's close (an embedded channel closes whole)")
        XCTAssertEqual(ends.all, ["client closed"], "the client finished first, though the backend's channel closed first")
    }

    func testAFailureOnOneSideClosesTheOtherAndIsReportedOnce() throws {
        let (client, backend, _, ends) = try gluedPair()
        struct Broken: Error {}
        client.pipeline.fireErrorCaught(Broken())
        XCTAssertFalse(client.isActive)
        XCTAssertFalse(backend.isActive)
        XCTAssertEqual(ends.all.count, 1, "\(ends.all)")
        XCTAssertTrue(ends.all.first?.hasPrefix("client failed") == true, "\(ends.all)")
    }

    /// Records the outbound user events that reach the head of a channel (a stream's reset).
    private final class OutboundEvents: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var events: [String] = []
        func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
            events.append("\(event)")
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }

    /// A client socket joined to a stream end whose abort event is "reset", with the outbound
    /// events reaching the stream's head recorded.
    private func clientAndStream(
        _ loop: EmbeddedEventLoop, _ ends: Ends
    ) throws -> (client: EmbeddedChannel, stream: EmbeddedChannel, events: OutboundEvents) {
        let (clientSide, streamSide) = ChannelRelay.matchedPair(
            first: ("client", .socket), second: ("stream", .stream(abortEvent: "reset"))
        ) { ends.add($0) }
        let events = OutboundEvents()
        let client = EmbeddedChannel(loop: loop)
        let stream = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandler(clientSide)
        try stream.pipeline.syncOperations.addHandlers([events, streamSide])
        return (client, stream, events)
    }

    func testAStreamEndIsResetWhenTheOtherSideFailsAndFinishedWithoutAnEmptyWrite() throws {
        let loop = EmbeddedEventLoop()
        let ends = Ends()
        let (client, stream, events) = try clientAndStream(loop, ends)
        client.pipeline.fireChannelRead(NIOAny(ByteBuffer(string: "half")))
        client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        XCTAssertEqual(try stream.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "half"))
        XCTAssertNil(try stream.readOutbound(as: ByteBuffer.self), "a stream's FIN needs no empty write before it")
        XCTAssertFalse(stream.isActive, "the output's close (an embedded channel closes whole)")
        XCTAssertEqual(events.events, [], "a clean end is not a reset")

        let (client2, stream2, events2) = try clientAndStream(loop, ends)
        struct Broken: Error {}
        client2.pipeline.fireErrorCaught(Broken())
        XCTAssertEqual(events2.events, ["reset"], "a failure must not look like a complete message: RST, not FIN")
        XCTAssertFalse(stream2.isActive)
        XCTAssertEqual(ends.all.count, 2, "\(ends.all)")
        XCTAssertTrue(ends.all.last?.hasPrefix("client failed") == true, "\(ends.all)")
    }

    func testBytesReadBeforeThePartnerIsUpWaitAndCrossWhenItIs() throws {
        let loop = EmbeddedEventLoop()
        let (clientSide, backendSide) = ChannelRelay.matchedPair(first: ("client", .socket), second: ("backend", .socket))
        let client = EmbeddedChannel(loop: loop)
        let backend = EmbeddedChannel(loop: loop)
        try client.pipeline.syncOperations.addHandler(clientSide)
        client.pipeline.fireChannelRead(NIOAny(ByteBuffer(string: "early")))
        client.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        client.pipeline.fireChannelReadComplete()
        try backend.pipeline.syncOperations.addHandler(backendSide)
        XCTAssertEqual(try backend.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "early"))
        XCTAssertEqual(try backend.readOutbound(as: ByteBuffer.self), ByteBuffer(), "then the end that waited with them")
        XCTAssertFalse(backend.isActive)
    }

    func testASideInstalledAfterItsPartnerWentAwayClosesAtOnce() throws {
        let loop = EmbeddedEventLoop()
        let ends = Ends()
        let (clientSide, backendSide) = ChannelRelay.matchedPair(first: ("client", .socket), second: ("backend", .socket)) {
            ends.add($0)
        }
        let client = EmbeddedChannel(loop: loop)
        let backend = EmbeddedChannel(loop: loop)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try backend.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try client.pipeline.syncOperations.addHandler(clientSide)
        _ = try client.close().wait()
        XCTAssertEqual(ends.all, ["client closed"])
        XCTAssertTrue(backend.isActive)
        try backend.pipeline.syncOperations.addHandler(backendSide)
        XCTAssertFalse(backend.isActive, "its client is gone: so is the session")
    }

    // MARK: Real sockets

    /// The backend peer: collects what arrives and, at the end of its input, answers with the
    /// byte count and closes; the answer crossing back proves the half-close kept the other way open.
    private final class CountingPeer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var count = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { count += unwrapInboundIn(data).readableBytes }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard case ChannelEvent.inputClosed = event else { return context.fireUserInboundEventTriggered(event) }
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "got \(count)"))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// A client sends `size` bytes through a relay to `CountingPeer` and half-closes; the relay is
    /// installed by `join(front, back)` on the front connection and a connection to the peer.
    private func halfCloseExchange(
        size: Int, frontLoop: any EventLoop, backLoop: any EventLoop,
        join: @escaping @Sendable (Channel, Channel) -> EventLoopFuture<Void>
    ) throws -> String {
        let peer = try ServerBootstrap(group: backLoop)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { $0.pipeline.addHandler(CountingPeer()) }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? peer.close().wait() }
        let peerAddress = peer.localAddress!
        let front = try ServerBootstrap(group: frontLoop)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.autoRead, value: true)
            .childChannelInitializer { front in
                ClientBootstrap(group: backLoop).channelOption(.allowRemoteHalfClosure, value: true)
                    .connect(to: peerAddress).flatMap { back in join(front, back) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? front.close().wait() }
        let answer = ReceivedText()
        let client = try ClientBootstrap(group: frontLoop).channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { $0.pipeline.addHandler(answer) }
            .connect(to: front.localAddress!).wait()
        var payload = client.allocator.buffer(capacity: size)
        payload.writeRepeatingByte(0x61, count: size)
        try client.writeAndFlush(payload).wait()
        try client.close(mode: .output).wait()
        try client.closeFuture.wait()
        return answer.text
    }

    func testOnOneLoopTheOtherDirectionStaysOpenAfterAHalfClose() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let loop = group.next()
        let ends = Ends()
        let answer = try halfCloseExchange(size: 3 << 20, frontLoop: loop, backLoop: loop) { front, back in
            let (clientSide, backendSide) = ChannelRelay.matchedPair(first: ("client", .socket), second: ("backend", .socket)) {
                ends.add($0)
            }
            return front.pipeline.addHandler(clientSide).flatMap { back.pipeline.addHandler(backendSide) }
        }
        XCTAssertEqual(answer, "got \(3 << 20)", "every byte one way, then the answer the other way after the half-close")
        XCTAssertEqual(ends.all, ["client closed"], "the client finished first")
    }

    func testAcrossTwoLoopsTheSame() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let frontLoop = group.next()
        let backLoop = group.next()
        XCTAssertFalse(frontLoop === backLoop)
        let ends = Ends()
        let answer = try halfCloseExchange(size: 3 << 20, frontLoop: frontLoop, backLoop: backLoop) { front, back in
            front.eventLoop.flatSubmit {
                let first = ChannelRelay.firstSide("client", end: .socket) { ends.add($0) }
                let bound = NIOLoopBound(first, eventLoop: front.eventLoop)
                return front.pipeline.addHandler(first).flatMap {
                    back.eventLoop.flatSubmit {
                        back.pipeline.addHandler(ChannelRelay.secondSide("backend", end: .socket, on: back.eventLoop, joining: bound))
                    }
                }
            }
        }
        XCTAssertEqual(answer, "got \(3 << 20)")
        // The end is reported on the first side's loop, after the close reaches it.
        let deadline = ContinuousClock.now + .seconds(10)
        while ends.all.isEmpty, ContinuousClock.now < deadline { usleep(10_000) }
        XCTAssertEqual(ends.all, ["client closed"])
    }
}
