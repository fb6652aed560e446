import NIOCore
import NIOEmbedded
import XCTest

@testable import Yamux

/// The multiplexer on two embedded link channels pumped into each other: no sockets.
final class YamuxMultiplexerTests: XCTestCase {
    func testStreamEchoesAndHalfCloseDeliversTheReply() throws {
        let pair = try LinkedPair()
        let (stream, collector) = try pair.openStream()
        XCTAssertTrue(stream.isActive)
        let written = stream.writeAndFlush(ByteBuffer(string: "hello yamux"))
        pair.pump()
        XCTAssertNoThrow(try written.wait())
        XCTAssertEqual(collector.received, ByteBuffer(string: "hello yamux"))

        // Half-close: more bytes, then FIN; the echo of those bytes still arrives, then the peer's FIN.
        stream.write(ByteBuffer(string: " and goodbye"), promise: nil)
        stream.close(mode: .output, promise: nil)
        pair.pump()
        XCTAssertEqual(String(buffer: collector.received), "hello yamux and goodbye")
        XCTAssertTrue(collector.inputClosed || collector.inactive)
        XCTAssertTrue(collector.inactive, "both directions finished: the stream channel closes")
        XCTAssertEqual(pair.clientMux.openStreamCount, 0)
        XCTAssertEqual(pair.serverMux.openStreamCount, 0)
    }

    /// A small Data frame goes to the link as one buffer, header and payload together.
    func testASmallFrameGoesToTheLinkAsOneBuffer() throws {
        let pair = try LinkedPair()
        let (stream, _) = try pair.openStream()
        stream.writeAndFlush(ByteBuffer(string: "ping"), promise: nil)
        (pair.client.eventLoop as! EmbeddedEventLoop).run()
        var frame = try XCTUnwrap(try pair.client.readOutbound(as: ByteBuffer.self), "nothing was flushed")
        XCTAssertEqual(frame.readableBytes, YamuxFrameHeader.size + 4)
        let header = try XCTUnwrap(try YamuxHeaderCodec.decode(from: &frame))
        XCTAssertEqual(header.type, .data)
        XCTAssertEqual(header.length, 4)
        XCTAssertEqual(String(buffer: frame), "ping")
        XCTAssertNil(try pair.client.readOutbound(as: ByteBuffer.self))
    }

    /// Go Away and a close in the same event-loop turn (as `muxcat connect` leaves): the Go Away
    /// still reaches the link, although control frames otherwise wait for the end of the turn.
    func testGoAwayReachesTheLinkWhenTheLinkClosesInTheSameTurn() throws {
        let channel = EmbeddedChannel()
        var configuration = YamuxConfiguration(role: .client)
        configuration.keepAliveInterval = nil
        let mux = YamuxMultiplexer(configuration: configuration)
        try channel.pipeline.syncOperations.addHandler(mux)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        mux.goAway(.normal)
        try channel.close().wait()
        var headers: [YamuxFrameHeader] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            while let header = try YamuxHeaderCodec.decode(from: &buffer) { headers.append(header) }
        }
        XCTAssertEqual(headers.map(\.type), [.goAway], "the Go Away, written and flushed before the close")
        XCTAssertEqual(headers.first?.length, YamuxGoAwayCode.normal.rawValue)
    }

    func testManyStreamsStayIndependent() throws {
        let pair = try LinkedPair()
        var streams: [(Channel, CollectingHandler, ByteBuffer)] = []
        for i in 0..<100 {
            let (stream, collector) = try pair.openStream()
            let payload = pattern(1000 + i * 37, seed: UInt8(i))
            stream.write(payload, promise: nil)
            stream.close(mode: .output, promise: nil)
            streams.append((stream, collector, payload))
        }
        pair.pump()
        for (index, (_, collector, payload)) in streams.enumerated() {
            XCTAssertEqual(collector.received, payload, "stream \(index)")
            XCTAssertTrue(collector.inactive)
        }
        XCTAssertEqual(pair.serverMux.openStreamCount, 0)
    }

    func testLargeTransferFlowsThroughManyWindowUpdates() throws {
        let pair = try LinkedPair()
        let (stream, collector) = try pair.openStream()
        let payload = pattern(4 * 1024 * 1024)
        // Write in 64 KiB pieces, as a relay does, respecting writability.
        var offset = 0
        while offset < payload.readableBytes {
            while stream.isWritable && offset < payload.readableBytes {
                let length = min(65536, payload.readableBytes - offset)
                stream.writeAndFlush(payload.getSlice(at: offset, length: length)!, promise: nil)
                offset += length
            }
            pair.pump()
        }
        stream.close(mode: .output, promise: nil)
        pair.pump()
        XCTAssertEqual(collector.received.readableBytes, payload.readableBytes)
        XCTAssertEqual(collector.received, payload)
    }

    func testWriterBecomesUnwritableWhenTheWindowIsExhausted() throws {
        // The server never reads: its window is never credited, so the client must stop.
        let pair = try LinkedPair(serverStreamInitializer: { channel in
            channel.setOption(ChannelOptions.autoRead, value: false)
        })
        let (stream, _) = try pair.openStream()
        var written = 0
        while stream.isWritable {
            stream.writeAndFlush(pattern(16384), promise: nil)
            written += 16384
            pair.pump()
            XCTAssertLessThan(written, 4 * 1024 * 1024, "the writer was never told to stop")
            if written >= 4 * 1024 * 1024 { break }
        }
        // It stopped after one window plus its own buffer.
        XCTAssertLessThanOrEqual(written, YamuxWindow.initial + 64 * 1024 + 16384)
        XCTAssertGreaterThanOrEqual(written, YamuxWindow.initial)
    }

    func testStalledStreamDoesNotStallAnother() throws {
        var stalled: Channel?
        let pair = try LinkedPair(serverStreamInitializer: { channel in
            if stalled == nil {
                stalled = channel
                return channel.setOption(ChannelOptions.autoRead, value: false)
            }
            return channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMap {
                channel.pipeline.addHandler(EchoHandler())
            }
        })
        let (bulk, _) = try pair.openStream()
        for _ in 0..<40 { bulk.writeAndFlush(pattern(16384), promise: nil) }
        pair.pump()
        XCTAssertFalse(bulk.isWritable)

        let (small, collector) = try pair.openStream()
        small.writeAndFlush(ByteBuffer(string: "ping"), promise: nil)
        pair.pump()
        XCTAssertEqual(collector.received, ByteBuffer(string: "ping"), "the small stream flows past the stalled one")

        // Once the stalled reader reads, its peer resumes.
        stalled!.setOption(ChannelOptions.autoRead, value: true).whenFailure { XCTFail("\($0)") }
        pair.pump()
        XCTAssertTrue(bulk.isWritable)
    }

    func testPeerOpenedStreamsUseTheOtherParity() throws {
        let pair = try LinkedPair()
        let collector = CollectingHandler()
        // A client-side inbound initializer is needed for server-opened streams: use a new pair.
        let loop = EmbeddedEventLoop()
        let client = EmbeddedChannel(loop: loop)
        let server = EmbeddedChannel(loop: loop)
        let clientMux = YamuxMultiplexer(configuration: .init(role: .client)) { channel in
            channel.pipeline.addHandler(collector)
        }
        let serverMux = YamuxMultiplexer(configuration: .init(role: .server))
        try client.pipeline.syncOperations.addHandler(clientMux)
        try server.pipeline.syncOperations.addHandler(serverMux)
        let opened = serverMux.createStream()
        pump(client, server)
        let stream = try opened.wait() as! YamuxStreamChannel
        XCTAssertEqual(stream.streamID, YamuxStreamID(2))
        stream.writeAndFlush(ByteBuffer(string: "from server"), promise: nil)
        pump(client, server)
        XCTAssertEqual(collector.received, ByteBuffer(string: "from server"))
        _ = pair
    }

    func testResetReachesThePeerAndFailsItsStream() throws {
        var serverStream: Channel?
        let serverCollector = CollectingHandler()
        let pair = try LinkedPair(serverStreamInitializer: { channel in
            serverStream = channel
            return channel.pipeline.addHandler(serverCollector)
        })
        let (stream, _) = try pair.openStream()
        stream.writeAndFlush(ByteBuffer(string: "x"), promise: nil)
        pair.pump()
        XCTAssertNotNil(serverStream)
        try stream.triggerUserOutboundEvent(YamuxStreamEvent.reset).wait()
        pair.pump()
        XCTAssertTrue(serverCollector.inactive)
        XCTAssertEqual(serverCollector.errors.first as? YamuxError, YamuxError(.streamReset(stream: YamuxStreamID(1))))
        XCTAssertEqual(pair.serverMux.openStreamCount, 0)
    }

    /// The events a daemon counts (`repeater_streams_reset_total{by}`, `repeater_link_rtt_seconds`):
    /// a reset is told to the side that sent it as local and to the other as the peer's; a ping's
    /// round trip to the side that pinged.
    func testResetsAndPingRoundTripsAreToldToTheEventCallbacks() throws {
        final class Tally: @unchecked Sendable {  // confined to the embedded loop: the test's own thread
            var resets: [Bool] = []
            var roundTrips = 0
        }
        let clientTally = Tally()
        let serverTally = Tally()
        var clientConfiguration = YamuxConfiguration(role: .client)
        clientConfiguration.events.streamReset = { clientTally.resets.append($0) }
        clientConfiguration.events.pingAnswered = { _ in clientTally.roundTrips += 1 }
        var serverConfiguration = YamuxConfiguration(role: .server)
        serverConfiguration.events.streamReset = { serverTally.resets.append($0) }
        let pair = try LinkedPair(clientConfiguration: clientConfiguration, serverConfiguration: serverConfiguration)
        let (stream, _) = try pair.openStream()
        stream.writeAndFlush(ByteBuffer(string: "x"), promise: nil)
        pair.pump()
        try stream.triggerUserOutboundEvent(YamuxStreamEvent.reset).wait()
        pair.pump()
        XCTAssertEqual(clientTally.resets, [false], "the client reset its stream: local")
        XCTAssertEqual(serverTally.resets, [true], "the server received the RST: by the peer")
        let before = clientTally.roundTrips  // the link's own first ping (it measures the round trip at once)
        let rtt = pair.clientMux.ping()
        pair.pump()
        XCTAssertNoThrow(try rtt.wait())
        XCTAssertEqual(clientTally.roundTrips, before + 1)
    }

    func testProtocolViolationSendsGoAwayAndClosesTheLink() throws {
        let pair = try LinkedPair()
        let (_, collector) = try pair.openStream()
        // Garbage from the "server": a bad version byte.
        XCTAssertNoThrow(try pair.client.writeInbound(ByteBuffer(bytes: [7, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])))
        (pair.client.eventLoop as! EmbeddedEventLoop).run()
        var sawGoAway = false
        while var out = try pair.client.readOutbound(as: ByteBuffer.self) {
            if out.readableBytes >= 12, let header = try? YamuxHeaderCodec.decode(from: &out), header.type == .goAway {
                XCTAssertEqual(header.length, YamuxGoAwayCode.protocolError.rawValue)
                sawGoAway = true
            }
        }
        XCTAssertTrue(sawGoAway)
        XCTAssertFalse(pair.client.isActive)
        XCTAssertTrue(collector.inactive, "streams of a dead link are closed")
    }

    func testKeepAliveTimeoutClosesADeadLink() throws {
        let loop = EmbeddedEventLoop()
        let link = EmbeddedChannel(loop: loop)
        var configuration = YamuxConfiguration(role: .client)
        configuration.keepAliveInterval = .seconds(1)
        configuration.keepAliveTimeout = .milliseconds(500)
        try link.pipeline.syncOperations.addHandler(YamuxMultiplexer(configuration: configuration))
        try link.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        loop.advanceTime(by: .milliseconds(400))
        XCTAssertTrue(link.isActive)
        loop.advanceTime(by: .milliseconds(200))
        XCTAssertFalse(link.isActive, "no pong within the timeout: the link is closed")
    }

    /// A stream closed here whose peer never finishes its side lingers for the close timeout,
    /// then is reset: not a nanosecond before.
    func testAClosedStreamThePeerNeverFinishesIsResetAtTheCloseTimeout() throws {
        var clientConfiguration = YamuxConfiguration(role: .client)
        clientConfiguration.keepAliveInterval = nil
        clientConfiguration.streamCloseTimeout = .seconds(60)
        var serverConfiguration = YamuxConfiguration(role: .server)
        serverConfiguration.keepAliveInterval = nil
        let serverSide = CollectingHandler()
        let pair = try LinkedPair(
            clientConfiguration: clientConfiguration, serverConfiguration: serverConfiguration,
            serverStreamInitializer: { channel in
                // Half-closure on and nothing that answers the FIN: the peer never finishes.
                channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMap {
                    channel.pipeline.addHandler(serverSide)
                }
            })
        let (stream, _) = try pair.openStream()
        stream.writeAndFlush(ByteBuffer(string: "x"), promise: nil)
        pair.pump()
        stream.close(promise: nil)
        pair.pump()
        XCTAssertTrue(serverSide.inputClosed, "the peer saw the FIN")
        XCTAssertFalse(serverSide.inactive)
        let loop = pair.client.eventLoop as! EmbeddedEventLoop
        loop.advanceTime(by: .seconds(60) - .nanoseconds(1))
        pair.pump()
        XCTAssertFalse(serverSide.inactive, "not reset before the close timeout")
        loop.advanceTime(by: .nanoseconds(1))
        pair.pump()
        XCTAssertTrue(serverSide.inactive, "reset at the close timeout")
        XCTAssertEqual(pair.serverMux.openStreamCount, 0)
    }

    /// The dialer's first frame is the ping that names the link; the accepting side takes the name
    /// from it and says so once. Keep-alive off, the ping still goes.
    func testTheAcceptingSideTakesTheLinksNameFromTheDialersFirstPing() throws {
        var client = YamuxConfiguration(role: .client)
        client.announcedLinkID = YamuxLinkID(rawValue: 0x00c0_ffee)
        client.keepAliveInterval = nil
        let pair = try LinkedPair(clientConfiguration: client)
        var named: [YamuxLinkID?] = []
        pair.serverMux.onFirstFrame = { named.append($0) }
        (pair.client.eventLoop as! EmbeddedEventLoop).run()
        let firstFrame = try XCTUnwrap(pair.client.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(
            Array(firstFrame.readableBytesView), [0, 2, 0, 1, 0, 0, 0, 0, 0x00, 0xc0, 0xff, 0xee], "a SYN ping carrying the name")
        try pair.server.writeInbound(firstFrame)
        let (stream, collector) = try pair.openStream()
        stream.writeAndFlush(ByteBuffer(string: "hi"), promise: nil)
        pair.pump()
        XCTAssertEqual(collector.received, ByteBuffer(string: "hi"))
        XCTAssertEqual(named, [YamuxLinkID(rawValue: 0x00c0_ffee)], "said once")
        XCTAssertEqual(pair.serverMux.linkID, pair.clientMux.linkID)
        XCTAssertEqual("\(pair.serverMux.linkID!)", "00c0ffee")
    }

    /// A dialer that names nothing (Go yamux, keep-alive off) leaves the link unnamed on both
    /// sides: the accepting side's own pings do not name it for the dialer.
    func testALinkWhoseDialerNamesNothingStaysUnnamed() throws {
        var client = YamuxConfiguration(role: .client)
        client.keepAliveInterval = nil
        let pair = try LinkedPair(clientConfiguration: client)
        var named: [YamuxLinkID?] = []
        pair.serverMux.onFirstFrame = { named.append($0) }
        let (stream, collector) = try pair.openStream()
        stream.writeAndFlush(ByteBuffer(string: "hi"), promise: nil)
        pair.pump()
        XCTAssertEqual(collector.received, ByteBuffer(string: "hi"))
        XCTAssertEqual(named.count, 1)
        XCTAssertNil(named.first ?? YamuxLinkID(rawValue: 1))
        XCTAssertNil(pair.serverMux.linkID)
        XCTAssertNil(pair.clientMux.linkID, "the server's keep-alive ping names nothing for the dialer")
    }

    func testPingMeasuresRoundTrip() throws {
        let pair = try LinkedPair()
        let rtt = pair.clientMux.ping()
        pair.pump()
        XCTAssertNoThrow(try rtt.wait())
    }

    func testGoAwayFromPeerRefusesNewStreamsButOldOnesFinish() throws {
        let pair = try LinkedPair()
        let (stream, collector) = try pair.openStream()
        pair.serverMux.goAway()
        pair.pump()
        XCTAssertThrowsError(try pair.clientMux.createStream().wait())
        stream.writeAndFlush(ByteBuffer(string: "still here"), promise: nil)
        stream.close(mode: .output, promise: nil)
        pair.pump()
        XCTAssertEqual(collector.received, ByteBuffer(string: "still here"))
    }

    func testFloodOfOpensBeyondTheBacklogIsRefusedAndTheLinkSurvives() throws {
        var serverConfiguration = YamuxConfiguration(role: .server)
        serverConfiguration.maximumInboundStreams = 10
        let pair = try LinkedPair(serverConfiguration: serverConfiguration)
        var collectors: [CollectingHandler] = []
        for _ in 0..<15 {
            let collector = CollectingHandler()
            _ = pair.clientMux.createStream { $0.pipeline.addHandler(collector) }
            collectors.append(collector)
        }
        pair.pump()
        XCTAssertEqual(pair.serverMux.openStreamCount, 10)
        XCTAssertEqual(collectors.filter(\.inactive).count, 5, "excess streams were reset")
        XCTAssertTrue(pair.client.isActive && pair.server.isActive)
    }

    /// Found by the fuzzer: a frame that opens and resets a stream, cut off in the middle of its
    /// payload by the link's close, must still close the stream channel it created (it has no
    /// slot by which the link's teardown could find it; the channel leaked with the multiplexer).
    func testOpenAndResetCutOffMidPayloadStillClosesTheNewStream() throws {
        let collector = CollectingHandler()
        let pair = try LinkedPair(serverStreamInitializer: { $0.pipeline.addHandler(collector) })
        var frame = ByteBuffer()
        frame.writeYamuxHeader(.data(YamuxStreamID(1), flags: [.syn, .rst], length: 1000))
        frame.writeString("only five")
        XCTAssertNoThrow(try pair.server.writeInbound(frame))
        (pair.server.eventLoop as! EmbeddedEventLoop).run()
        pair.server.pipeline.fireChannelInactive()
        (pair.server.eventLoop as! EmbeddedEventLoop).run()
        XCTAssertTrue(collector.inactive, "the new stream's channel is closed")
        XCTAssertEqual(pair.serverMux.openStreamCount, 0)
    }

    /// Found by the fuzzer: a frame that opens a stream, carries data and resets it at once must
    /// still close the stream channel it created (it used to stay open until the link closed).
    func testOpenDataAndResetInOneFrameClosesTheNewStream() throws {
        let collector = CollectingHandler()
        let pair = try LinkedPair(serverStreamInitializer: { $0.pipeline.addHandler(collector) })
        var frame = ByteBuffer()
        frame.writeYamuxHeader(.data(YamuxStreamID(1), flags: [.syn, .rst], length: 3))
        frame.writeString("abc")
        XCTAssertNoThrow(try pair.server.writeInbound(frame))
        (pair.server.eventLoop as! EmbeddedEventLoop).run()
        XCTAssertTrue(collector.inactive)
        XCTAssertEqual(collector.received.readableBytes, 0, "data of a reset stream is dropped")
        XCTAssertEqual(pair.serverMux.openStreamCount, 0)
        XCTAssertTrue(pair.server.isActive, "the link survives")
    }

    /// Found by the fuzzer (LeakSanitizer): a link that ended in the middle of a Data frame's
    /// payload leaked the stream channel, the multiplexer and the link channel, because the
    /// frame's target stream, which holds the multiplexer, stayed referenced by it.
    func testALinkEndingMidPayloadReleasesTheStreamTheMultiplexerAndTheLink() throws {
        weak var stream: Channel?
        weak var multiplexer: YamuxMultiplexer?
        weak var link: EmbeddedChannel?
        try {
            var configuration = YamuxConfiguration(role: .server)
            configuration.keepAliveInterval = nil
            let mux = YamuxMultiplexer(configuration: configuration) { channel in
                stream = channel
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(mux)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            var frame = ByteBuffer()
            frame.writeYamuxHeader(.data(YamuxStreamID(1), flags: [.syn], length: 100))
            frame.writeString("only the first of 100 bytes")
            try channel.writeInbound(frame)
            XCTAssertNotNil(stream, "the frame opened a stream")
            _ = try channel.finish()
            channel.embeddedEventLoop.run()
            multiplexer = mux
            link = channel
        }()
        XCTAssertNil(stream, "the stream channel outlived its link")
        XCTAssertNil(multiplexer, "the multiplexer outlived its link")
        XCTAssertNil(link, "the link channel was never freed")
    }

    /// Credit the server grants a bulk stream for 256 KiB that its application consumed, when the
    /// peer sends them alone or with a small message on another stream in between.
    private func bulkCredit(besideSmallMessages: Bool) throws -> Int {
        var configuration = YamuxConfiguration(role: .server)
        configuration.keepAliveInterval = nil
        configuration.sharedStreamWindow = 64 * 1024
        let channel = EmbeddedChannel()
        let mux = YamuxMultiplexer(
            configuration: configuration,
            inboundStreamInitializer: { $0.pipeline.addHandler(CollectingHandler()) })
        try channel.pipeline.syncOperations.addHandler(mux)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let bulk = YamuxStreamID(1)
        let small = YamuxStreamID(3)
        func send(_ id: YamuxStreamID, _ flags: YamuxFlags, _ payload: ByteBuffer) throws {
            var frame = ByteBuffer()
            frame.writeYamuxHeader(.data(id, flags: flags, length: UInt32(payload.readableBytes)))
            frame.writeImmutableBuffer(payload)
            try channel.writeInbound(frame)
            (channel.eventLoop as! EmbeddedEventLoop).run()
        }
        try send(bulk, .syn, pattern(65_536))
        if besideSmallMessages { try send(small, .syn, pattern(64)) }
        for _ in 0..<3 { try send(bulk, [], pattern(65_536)) }
        var credit = 0
        while var out = try channel.readOutbound(as: ByteBuffer.self) {
            while let header = try YamuxHeaderCodec.decode(from: &out) {
                if header.type == .data { out.moveReaderIndex(forwardBy: Int(header.length)) }
                if header.type == .windowUpdate && header.streamID == bulk { credit += Int(header.length) }
            }
        }
        return credit
    }

    /// Head-of-line (issue 21): while another stream sends small messages, a bulk stream's window is
    /// refilled only up to the shared window, so little of it can queue in the link ahead of them;
    /// alone, it gets back all it consumed.
    func testABulkStreamBesideSmallMessagesIsCreditedOnlyUpToTheSharedWindow() throws {
        XCTAssertEqual(try bulkCredit(besideSmallMessages: false), 262_144, "alone: all 256 KiB consumed are credited")
        XCTAssertEqual(try bulkCredit(besideSmallMessages: true), 65_536, "beside small messages: the shared window")
    }
}

/// Issue 43: the link's output leaves once per turn of the event loop, whatever number of
/// relayed sockets read in it, so that many sessions cost one link write between them.
final class LinkOutputPerTurnTests: XCTestCase {
    func testFramesOfSocketsThatReadInOneTurnLeaveInOneLinkWrite() throws {
        let loop = EmbeddedEventLoop()
        let link = EmbeddedChannel(loop: loop)
        var configuration = YamuxConfiguration(role: .client)
        configuration.keepAliveInterval = nil
        let mux = YamuxMultiplexer(configuration: configuration)
        try link.pipeline.syncOperations.addHandler(mux)
        try link.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let sockets = (0..<3).map { _ in EmbeddedChannel(loop: loop) }
        for socket in sockets {
            try socket.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
            _ = try mux.createRelayStream(to: socket)
        }
        loop.run()
        while try link.readOutbound(as: ByteBuffer.self) != nil {}  // the SYNs

        // Three sockets read, one after another, as NIO runs their read cycles in one wake.
        for (index, socket) in sockets.enumerated() {
            try socket.writeInbound(ByteBuffer(string: "message \(index)"))
        }
        XCTAssertNil(try link.readOutbound(as: ByteBuffer.self), "nothing leaves before the turn ends")
        loop.run()
        var write = try XCTUnwrap(try link.readOutbound(as: ByteBuffer.self))
        XCTAssertNil(try link.readOutbound(as: ByteBuffer.self), "one link write for the three")
        var payloads: [String] = []
        while let header = write.readBytes(length: 12) {
            let length = Int(header[8]) << 24 | Int(header[9]) << 16 | Int(header[10]) << 8 | Int(header[11])
            XCTAssertEqual(header[1], 0, "a Data frame")
            payloads.append(write.readString(length: length) ?? "")
        }
        XCTAssertEqual(payloads, ["message 0", "message 1", "message 2"])
    }
}
