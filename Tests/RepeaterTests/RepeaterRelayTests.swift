import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import Yamux
import YamuxLink

@testable import Repeater

/// The repeater on real loopback sockets, in front of a yamux echo backend built from this package.
final class RepeaterRelayTests: XCTestCase {
    func testTwoHundredConcurrentClientsEachEchoOneMiBByteExact() throws {
        let fixture = try RepeaterFixture()
        defer { fixture.shutdown() }
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? clientGroup.syncShutdownGracefully() }
        let payloads = (0..<200).map { pattern(1024 * 1024, seed: $0) }
        let futures = payloads.map { sendAndCollect(port: fixture.port, payload: $0, group: clientGroup) }
        for (index, future) in futures.enumerated() {
            let echoed = try future.wait()
            XCTAssertEqual(echoed.readableBytes, payloads[index].readableBytes, "client \(index)")
            XCTAssertTrue(echoed == payloads[index], "client \(index): bytes differ")
        }
    }

    func testOne256MiBTransfer() throws {
        let fixture = try RepeaterFixture()
        defer { fixture.shutdown() }
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? clientGroup.syncShutdownGracefully() }
        let payload = pattern(256 * 1024 * 1024, seed: 7)
        let echoed = try sendAndCollect(port: fixture.port, payload: payload, group: clientGroup).wait()
        XCTAssertEqual(echoed.readableBytes, payload.readableBytes)
        XCTAssertTrue(echoed == payload, "bytes differ")
    }

    /// shutdown(SHUT_WR) from the client becomes FIN on the stream; the reply still arrives in full.
    func testClientHalfCloseStillGetsTheWholeReply() throws {
        // A backend that answers only after the request is complete (after FIN): the pattern
        // that many proxies break by closing too early.
        let fixture = try RepeaterFixture(streamInitializer: { channel in
            channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                try channel.pipeline.syncOperations.addHandler(ReplyAfterFinHandler())
            }
        })
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        socket.send(Array("request body".utf8))
        socket.shutdownWrite()
        let reply = socket.receive(2_000_000)
        XCTAssertEqual(reply.count, 12 + 1_000_000)
        XCTAssertEqual(Array(reply.prefix(12)), Array("request body".utf8))
        XCTAssertTrue(reply.dropFirst(12).allSatisfy { $0 == 0x5A })
    }

    /// A client that half-closes and then reads slowly: the reply backs up in the repeater's
    /// socket to it, and the stream finishes before the last bytes are written. Closing that
    /// socket must wait for them (a full close would drop them: this once lost the tail).
    func testSlowReaderAfterHalfCloseStillGetsEveryByte() throws {
        let replySize = 16 * 1024 * 1024
        let fixture = try RepeaterFixture(
            threads: 1,
            streamInitializer: { channel in
                channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(ReplyAfterFinHandler(replySize: replySize))
                }
            })
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        socket.send(Array("request".utf8))
        socket.shutdownWrite()
        // Not reading yet: the reply backs up until the repeater cannot write to this client.
        waitUntil("the repeater's socket to the client became unwritable") {
            (try? fixture.repeater.openSessionChannels().wait())?.first.map { !$0.isWritable } ?? false
        }
        let reply = socket.receive(replySize + 100)
        XCTAssertEqual(reply.count, 7 + replySize, "bytes were lost at the end of the reply")
    }

    /// With Nagle's algorithm on any socket of a session, a write-write-read exchange waits for
    /// a delayed ACK (about 40 ms) on every round. The stall itself is measured by tools/bench
    /// (section `nagle`, sockperf -b 2); here every socket a session crosses must have TCP_NODELAY:
    /// the client leg, and both ends of the link.
    func testTCPNoDelayIsOnEverySocketOfASession() throws {
        let accepted = NIOLockedValueBox<Channel?>(nil)
        let fixture = try RepeaterFixture(
            threads: 1,
            streamInitializer: { stream in
                accepted.withLockedValue { $0 = stream.parent }
                return stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                    try stream.pipeline.syncOperations.addHandler(StreamEchoHandler())
                }
            })
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        socket.send([1, 2, 3])
        XCTAssertEqual(socket.receive(3), [1, 2, 3])

        let clients = try fixture.repeater.openSessionChannels().wait()
        XCTAssertEqual(clients.count, 1)
        for client in clients {
            let value = try client.getOption(.tcpOption(.tcp_nodelay)).wait()
            XCTAssertNotEqual(value, 0, "TCP_NODELAY is off on the client leg")
        }
        for link in fixture.repeater.links {
            let channel = try XCTUnwrap(try link.eventLoop.submit { link.channel }.wait())
            let value = try channel.getOption(.tcpOption(.tcp_nodelay)).wait()
            XCTAssertNotEqual(value, 0, "TCP_NODELAY is off on the link (dialing end)")
        }
        let acceptedLink = try XCTUnwrap(accepted.withLockedValue { $0 })
        XCTAssertNotEqual(
            try acceptedLink.getOption(.tcpOption(.tcp_nodelay)).wait(), 0, "TCP_NODELAY is off on the link (accepting end)")
    }

    /// Head-of-line: bytes already below the multiplexer are one FIFO, so both ends of a link keep
    /// it shallow (TCP_NOTSENT_LOWAT and a small write watermark; see `LinkSocketTuning`).
    func testLinkSocketsKeepTheirUnsentQueueShallowOnBothEnds() throws {
        let accepted = NIOLockedValueBox<Channel?>(nil)
        let fixture = try RepeaterFixture(
            threads: 1,
            streamInitializer: { stream in
                accepted.withLockedValue { $0 = stream.parent }
                return stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                    try stream.pipeline.syncOperations.addHandler(StreamEchoHandler())
                }
            })
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        socket.send([1, 2, 3])
        XCTAssertEqual(socket.receive(3), [1, 2, 3])

        let link = fixture.repeater.links[0]
        let dialed = try XCTUnwrap(try link.eventLoop.submit { link.channel }.wait())
        let acceptedLink = try XCTUnwrap(accepted.withLockedValue { $0 })
        for (end, channel) in [("dialing", dialed), ("accepting", acceptedLink)] {
            XCTAssertEqual(
                try channel.getOption(LinkSocketTuning.notSentLowWatermarkOption).wait(),
                LinkSocketTuning.notSentLowWatermark, "TCP_NOTSENT_LOWAT on the \(end) end")
            let waterMark = try channel.getOption(.writeBufferWaterMark).wait()
            XCTAssertEqual(waterMark.high, LinkSocketTuning.writeBufferWaterMark.high, "write watermark on the \(end) end")
            XCTAssertEqual(waterMark.low, LinkSocketTuning.writeBufferWaterMark.low, "write watermark on the \(end) end")
        }
    }

    /// Every event loop has its own listening socket on the same port (SO_REUSEPORT), so a client
    /// is never handed from one loop to another on accept; every one of them is relayed.
    func testEveryEventLoopListensAndRelays() throws {
        let fixture = try RepeaterFixture(threads: 2)
        defer { fixture.shutdown() }
        XCTAssertEqual(fixture.repeater.serverChannels.count, 2)
        XCTAssertEqual(Set(fixture.repeater.serverChannels.map { $0.localAddress?.port }), [fixture.port])
        for i in 0..<20 {
            let socket = try BlockingSocket(port: fixture.port)
            socket.send([UInt8(i), 1, 2])
            XCTAssertEqual(socket.receive(3), [UInt8(i), 1, 2])
            socket.close()
        }
    }

    func testClientsAreClosedAtOnceWhileTheLinkIsDown() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var configuration = RepeaterServer.Configuration()
        configuration.listen = .tcp(host: "127.0.0.1", port: 0)
        configuration.backend = .tcp(host: "127.0.0.1", port: 1)  // nothing listens there
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let repeater = RepeaterServer(configuration: configuration, group: group, logger: logger)
        try repeater.start().wait()
        defer { _ = try? repeater.shutdown().wait() }
        let socket = try BlockingSocket(port: repeater.localAddress!.port!)
        defer { socket.close() }
        // The link never comes up, so a repeater that held the client until it did would never
        // close it: the deadline only bounds a broken run.
        XCTAssertTrue(socket.waitForClose(timeout: 20), "the client was left hanging while the link is down")
    }

    /// One loop's link is down while the other's is up: a client the kernel hands to the loop
    /// without a link is served on the other loop's link (a thread hop each way) instead of
    /// being refused. Twenty clients over two listeners: about half land on the loop whose link
    /// is stopped (all twenty on the other one has a chance of 2⁻²⁰), and every one is echoed
    /// byte-exact, half-close included.
    func testAClientWhoseLoopHasNoLinkIsServedOnAnotherLoopsLink() throws {
        let fixture = try RepeaterFixture(threads: 2)
        defer { fixture.shutdown() }
        try fixture.repeater.links[0].stop().wait()
        XCTAssertFalse(fixture.repeater.links[0].health.isUp)
        XCTAssertTrue(fixture.repeater.links[1].health.isUp)
        for index in 0..<20 {
            let payload = pattern(10_000 + index, seed: index)
            let echoed = try sendAndCollect(port: fixture.port, payload: payload, group: fixture.group).wait()
            XCTAssertEqual(echoed, payload, "client \(index) was not served")
        }
        XCTAssertNil(fixture.repeater.notReadyReason, "one link up: ready")
    }

    func testLinkIsRedialedAfterTheBackendRestarts() throws {
        let fixture = try RepeaterFixture(threads: 1)
        defer { fixture.shutdown() }
        let port = fixture.backend.localAddress!.port!
        try fixture.backend.stop().wait()
        // The link drops; sessions cannot be served until the backend is back.
        let backend2 = YamuxLinkListener(
            address: .tcp(host: "127.0.0.1", port: port), group: fixture.group,
            streamInitializer: { channel in
                channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(StreamEchoHandler())
                }
            })
        try backend2.start().wait()
        defer { _ = try? backend2.stop().wait() }
        // Sessions are refused until the redial finds the new backend; then one is echoed.
        var echoed: ByteBuffer?
        waitUntil("a session echoed through the redialed link") {
            echoed = try? sendAndCollect(port: fixture.port, payload: ByteBuffer(string: "again"), group: fixture.group).wait()
            return echoed?.readableBytes == 5
        }
        XCTAssertEqual(echoed, ByteBuffer(string: "again"))
    }

    /// The idle timeout is wired to the client sockets: a silent client is closed. When (not
    /// before the timeout, within one sweep after it) is tested on virtual time in IdleSweeperTests;
    /// the deadline here only bounds a broken run.
    func testIdleClientIsClosed() throws {
        let fixture = try RepeaterFixture(threads: 1, configure: { $0.idleTimeout = .milliseconds(300) })
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        XCTAssertTrue(socket.waitForClose(timeout: 20), "a silent client must be closed after the idle timeout")
        waitUntil("the idle session left the session table") { fixture.repeater.sessionCount == 0 }
    }

    /// Traffic through the relay counts as activity: a client that keeps talking outlives a silent
    /// one that connected beside it, on the same loop and so the same sweeps. (That the relay marks
    /// bytes either way is tested on virtual time in IdleSweeperTests; this checks the repeater
    /// hands the sweeper the activity its relay marks.)
    func testAClientThatKeepsTalkingOutlivesASilentOne() throws {
        let fixture = try RepeaterFixture(threads: 1, configure: { $0.idleTimeout = .seconds(1) })
        defer { fixture.shutdown() }
        let talking = try BlockingSocket(port: fixture.port)
        defer { talking.close() }
        let silent = try BlockingSocket(port: fixture.port)
        defer { silent.close() }
        // A byte each way, then a look at the silent one, until the silent one is closed.
        var exchanges = 0
        var silentClosed = false
        let deadline = Date().addingTimeInterval(30)
        while !silentClosed, Date() < deadline {
            let byte = UInt8(truncatingIfNeeded: exchanges)
            talking.send([byte])
            guard talking.receive(1) == [byte] else {
                XCTFail("the talking client was closed after \(exchanges) exchanges")
                return
            }
            exchanges += 1
            silentClosed = silent.waitForClose(timeout: 0.02)
        }
        XCTAssertTrue(silentClosed, "the silent client was never closed")
        talking.send([0xEE])
        XCTAssertEqual(talking.receive(1), [0xEE], "the talking client must still be served after the silent one was closed")
        waitUntil("only the talking session is left") { fixture.repeater.sessionCount == 1 }
    }

    func testGracefulShutdownLetsOpenSessionsFinish() throws {
        let fixture = try RepeaterFixture(threads: 1, configure: { $0.drainTimeout = .seconds(5) })
        defer { fixture.shutdown() }
        let port = fixture.port
        let socket = try BlockingSocket(port: port)
        defer { socket.close() }
        socket.send([1])
        XCTAssertEqual(socket.receive(1), [1])
        let stopped = fixture.repeater.shutdown()
        // The open session still works during the drain.
        socket.send([2])
        XCTAssertEqual(socket.receive(1), [2])
        socket.shutdownWrite()
        XCTAssertTrue(socket.waitForClose(timeout: 20), "the session ends after the client's FIN")
        XCTAssertNoThrow(try stopped.wait())
        XCTAssertThrowsError(try BlockingSocket(port: port), "new connections are refused")
    }
}

/// Answers a request only after the client's FIN, with the request and then `replySize` bytes.
final class ReplyAfterFinHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var request = ByteBuffer()
    let replySize: Int
    init(replySize: Int = 1_000_000) { self.replySize = replySize }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        request.writeBuffer(&buffer)
    }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else { return }
        context.write(wrapOutboundOut(request), promise: nil)
        context.write(wrapOutboundOut(ByteBuffer(repeating: 0x5A, count: replySize)), promise: nil)
        context.flush()
        context.close(mode: .output, promise: nil)
    }
}
