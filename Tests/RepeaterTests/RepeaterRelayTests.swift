import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest
import YamuxLink
import Yamux

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
        let fixture = try RepeaterFixture(threads: 1, streamInitializer: { channel in
            channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                try channel.pipeline.syncOperations.addHandler(ReplyAfterFinHandler(replySize: replySize))
            }
        })
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        socket.send(Array("request".utf8))
        socket.shutdownWrite()
        Thread.sleep(forTimeInterval: 1.0)
        let reply = socket.receive(replySize + 100)
        XCTAssertEqual(reply.count, 7 + replySize, "bytes were lost at the end of the reply")
    }

    func testTCPNoDelayIsOnBothLegs() throws {
        let fixture = try RepeaterFixture(threads: 1)
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        socket.send([1, 2, 3])
        XCTAssertEqual(socket.receive(3), [1, 2, 3])

        let clients = fixture.repeater.openSessionChannels
        XCTAssertEqual(clients.count, 1)
        for client in clients {
            let value = try client.getOption(.tcpOption(.tcp_nodelay)).wait()
            XCTAssertNotEqual(value, 0, "TCP_NODELAY is off on the client leg")
        }
        for link in fixture.repeater.links {
            let channel = try XCTUnwrap(try link.eventLoop.submit { link.channel }.wait())
            let value = try channel.getOption(.tcpOption(.tcp_nodelay)).wait()
            XCTAssertNotEqual(value, 0, "TCP_NODELAY is off on the link")
        }
    }

    /// Head-of-line: bytes already below the multiplexer are one FIFO, so both ends of a link keep
    /// it shallow (TCP_NOTSENT_LOWAT and a small write watermark; see `LinkSocketTuning`).
    func testLinkSocketsKeepTheirUnsentQueueShallowOnBothEnds() throws {
        let accepted = NIOLockedValueBox<Channel?>(nil)
        let fixture = try RepeaterFixture(threads: 1) { stream in
            accepted.withLockedValue { $0 = stream.parent }
            return stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                try stream.pipeline.syncOperations.addHandler(StreamEchoHandler())
            }
        }
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

    /// Two small writes, then wait for the answer: with Nagle's algorithm on any leg, the second
    /// write waits for the delayed ACK of the first (about 40 ms). The bound is generous so the
    /// test cannot flake; exact figures belong to the benchmark.
    func testWriteWriteReadNeverShowsTheNagleStall() throws {
        let fixture = try RepeaterFixture(threads: 1, streamInitializer: { channel in
            channel.pipeline.addHandler(AnswerEveryTwoBytesHandler())
        })
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        var durations: [Double] = []
        for _ in 0..<300 {
            let start = DispatchTime.now().uptimeNanoseconds
            socket.send([0x61])
            socket.send([0x62])
            XCTAssertEqual(socket.receive(2), Array("ok".utf8))
            durations.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        durations.sort()
        let median = durations[durations.count / 2]
        XCTAssertLessThan(median, 10, "median write-write-read took \(median) ms: a Nagle stall")
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
        let start = DispatchTime.now().uptimeNanoseconds
        XCTAssertEqual(socket.receive(1), [], "expected EOF")
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        XCTAssertLessThan(elapsed, 2, "the client was left hanging")
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
        let deadline = Date().addingTimeInterval(10)
        var echoed: ByteBuffer?
        while Date() < deadline {
            if let reply = try? sendAndCollect(port: fixture.port, payload: ByteBuffer(string: "again"), group: fixture.group)
                .wait(), reply.readableBytes == 5
            {
                echoed = reply
                break
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertEqual(echoed, ByteBuffer(string: "again"))
    }

    func testIdleClientIsClosedAfterTheIdleTimeout() throws {
        let fixture = try RepeaterFixture(threads: 1, configure: { $0.idleTimeout = .milliseconds(300) })
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        let start = DispatchTime.now().uptimeNanoseconds
        XCTAssertEqual(socket.receive(1), [])
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        XCTAssertGreaterThan(elapsed, 0.25)
        XCTAssertLessThan(elapsed, 5)
    }

    func testAClientThatKeepsTalkingOutlivesTheIdleTimeout() throws {
        let fixture = try RepeaterFixture(threads: 1, configure: { $0.idleTimeout = .milliseconds(300) })
        defer { fixture.shutdown() }
        let socket = try BlockingSocket(port: fixture.port)
        defer { socket.close() }
        // A byte each way every 100 ms for 1.2 s: four idle timeouts, never 300 ms of silence.
        for byte in UInt8(0)..<12 {
            socket.send([byte])
            XCTAssertEqual(socket.receive(1), [byte], "the session is still open after \(byte) × 100 ms")
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertEqual(fixture.repeater.sessionCount, 1)
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
        XCTAssertEqual(socket.receive(1), [])
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

/// Answers "ok" to every two bytes received.
final class AnswerEveryTwoBytesHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var pending = 0
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        pending += unwrapInboundIn(data).readableBytes
        while pending >= 2 {
            pending -= 2
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "ok")), promise: nil)
        }
    }
}
