import Logging
import NIOCore
import NIOEmbedded
import Synchronization
import XCTest

@testable import Yamux

/// A peer that asks for answers and never reads them, on an embedded link: the multiplexer queues
/// control frames only up to its cap, pauses link reads at the threshold, coalesces window
/// updates, drops what a reset stream no longer needs, and logs a summary instead of a line per
/// peer-caused event.
final class YamuxControlFloodTests: XCTestCase {
    /// Counts the `read` events that pass the multiplexer on their way to the link's socket.
    private final class ReadCounter: ChannelOutboundHandler, @unchecked Sendable {  // on the embedded loop: the test's own thread
        typealias OutboundIn = ByteBuffer
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    private struct Link {
        let channel: EmbeddedChannel
        let multiplexer: YamuxMultiplexer
        let reads: ReadCounter
        let log: CollectedLog
        var loop: EmbeddedEventLoop { channel.embeddedEventLoop }

        func setWritable(_ writable: Bool) {
            channel.isWritable = writable
            channel.pipeline.fireChannelWritabilityChanged()
            loop.run()
        }

        func receive(_ frames: [YamuxFrameHeader]) throws {
            var bytes = ByteBuffer()
            for frame in frames { bytes.writeYamuxHeader(frame) }
            try channel.writeInbound(bytes)
            loop.run()
        }

        /// Every frame header written to the link so far (Data payloads skipped).
        func sent() throws -> [YamuxFrameHeader] {
            loop.run()
            var decoder = YamuxFrameDecoder(maximumDataLength: .max)
            while let bytes = try channel.readOutbound(as: ByteBuffer.self) { decoder.append(bytes) }
            var headers: [YamuxFrameHeader] = []
            while let item = try decoder.next() {
                if case .header(let header) = item { headers.append(header) }
            }
            return headers
        }
    }

    private func makeLink(
        _ configuration: YamuxConfiguration, streamInitializer: YamuxMultiplexer.StreamInitializer? = nil
    ) throws -> Link {
        var configuration = configuration
        configuration.keepAliveInterval = nil
        let log = CollectedLog()
        let channel = EmbeddedChannel()
        let reads = ReadCounter()
        let multiplexer = YamuxMultiplexer(
            configuration: configuration, logger: log.logger(), inboundStreamInitializer: streamInitializer)
        try channel.pipeline.syncOperations.addHandler(reads)
        try channel.pipeline.syncOperations.addHandler(multiplexer)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return Link(channel: channel, multiplexer: multiplexer, reads: reads, log: log)
    }

    func testAPingFloodPausesReadsAtTheThresholdAndEveryPingIsAnsweredInOrderOnceTheLinkDrains() throws {
        var configuration = YamuxConfiguration(role: .server)
        configuration.controlAnswersPauseThreshold = 100
        let link = try makeLink(configuration)
        link.setWritable(false)
        try link.receive((1...5000).map { .ping(flags: .syn, opaque: UInt32($0)) })
        XCTAssertEqual(try link.sent(), [], "nothing goes to a link that is not writable")
        let readsBefore = link.reads.reads
        link.channel.read()
        XCTAssertEqual(link.reads.reads, readsBefore, "the link is not read while 100 answers wait")
        XCTAssertEqual(link.log.lines(atLeast: .info), [], "a pause is counted for the summary, not a line of its own")

        link.setWritable(true)
        XCTAssertEqual(try link.sent(), (1...5000).map { .ping(flags: .ack, opaque: UInt32($0)) })
        XCTAssertEqual(link.reads.reads, readsBefore + 1, "the read held during the pause goes on")
        link.channel.read()
        XCTAssertEqual(link.reads.reads, readsBefore + 2, "and reads pass again")
        XCTAssertTrue(link.channel.isActive)
    }

    func testPastTheCapTheLinkIsClosedWithOneLineAndAControlFloodReason() throws {
        let reasons = Mutex<[String]>([])
        var configuration = YamuxConfiguration(role: .client)
        configuration.maximumQueuedControlFrames = 50
        configuration.events.linkFailed = { reason in reasons.withLock { $0.append(reason) } }
        let link = try makeLink(configuration)
        link.setWritable(false)
        // Streams opened while the link is not writable: each SYN waits in the queue.
        for _ in 0..<50 { _ = link.multiplexer.createStream() }
        XCTAssertTrue(link.channel.isActive)
        let opened = link.multiplexer.createStream()
        link.loop.run()
        XCTAssertFalse(link.channel.isActive, "the 51st control frame is past the cap: the link is closed")
        XCTAssertEqual(reasons.withLock { $0 }, ["control_flood"])
        XCTAssertThrowsError(try opened.wait())
        let errors = link.log.lines(atLeast: .warning)
        XCTAssertEqual(errors.count, 1, "\(errors)")
        XCTAssertTrue(errors.first?.contains("does not read the control frames it asks for (50 queued, the limit)") ?? false, "\(errors)")
    }

    func testStreamsThePeerOpensAndResetsLeaveNothingQueuedAndOneSummaryLine() throws {
        var configuration = YamuxConfiguration(role: .server)
        configuration.peerEventSummaryInterval = .seconds(10)
        let link = try makeLink(configuration) { $0.eventLoop.makeSucceededVoidFuture() }
        link.setWritable(false)
        var frames: [YamuxFrameHeader] = []
        for id in stride(from: UInt32(1), through: 1999, by: 2) {
            frames += [.windowUpdate(YamuxStreamID(id), flags: .syn, delta: 0), .windowUpdate(YamuxStreamID(id), flags: .rst, delta: 0)]
        }
        try link.receive(frames)
        // A late frame for one of them: dropped, and counted.
        try link.receive([.windowUpdate(YamuxStreamID(7), delta: 100)])
        link.setWritable(true)
        XCTAssertEqual(try link.sent(), [], "the peer reset each stream: the ACKs it was owed are dropped")
        XCTAssertEqual(link.multiplexer.openStreamCount, 0)
        XCTAssertEqual(link.log.lines(atLeast: .info), [], "no line per stream at the default level")
        let debugLines = link.log.lines(atLeast: .trace)
        XCTAssertEqual(
            debugLines.filter { $0.hasPrefix("debug stream") && $0.hasSuffix("reset by the peer") }.count, 1000, "a debug line each")
        XCTAssertEqual(debugLines.filter { $0.contains("(its stream is closed)") }.count, 1)

        link.loop.advanceTime(by: .seconds(9))
        XCTAssertEqual(link.log.lines(atLeast: .info), [])
        link.loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(
            link.log.lines(atLeast: .info),
            ["notice from the link's peer over the last 10 s: 1000 streams reset by the peer, 1 frame for closed streams dropped"])
        link.loop.advanceTime(by: .seconds(60))
        XCTAssertEqual(link.log.lines(atLeast: .info).count, 1, "nothing new, nothing said")

        try link.receive([
            .windowUpdate(YamuxStreamID(2001), flags: .syn, delta: 0), .windowUpdate(YamuxStreamID(2001), flags: .rst, delta: 0),
        ])
        try link.channel.close().wait()
        XCTAssertEqual(
            link.log.lines(atLeast: .info).last,
            "notice from the link's peer before the link closed: 1 stream reset by the peer", "what is counted is said when the link closes"
        )
    }

    func testThePeerOpensAtMostTheBudgetOfStreamsPerReadCycleAndTheRestAtTheNextTurns() throws {
        var configuration = YamuxConfiguration(role: .server)
        configuration.maximumInboundOpensPerReadCycle = 100
        let link = try makeLink(configuration) { $0.eventLoop.makeSucceededVoidFuture() }
        var bytes = ByteBuffer()
        for id in stride(from: UInt32(1), through: 499, by: 2) {
            bytes.writeYamuxHeader(.windowUpdate(YamuxStreamID(id), flags: .syn, delta: 0))
        }
        try link.channel.writeInbound(bytes)
        XCTAssertEqual(link.multiplexer.openStreamCount, 100, "one read cycle opens at most the budget")
        let readsBefore = link.reads.reads
        link.channel.read()
        XCTAssertEqual(link.reads.reads, readsBefore, "the link is not read until the rest is handled")
        link.loop.run()
        XCTAssertEqual(link.multiplexer.openStreamCount, 250, "the rest at the next turns")
        XCTAssertEqual(link.reads.reads, readsBefore + 1)
        XCTAssertEqual(try link.sent().filter { $0.flags == .ack }.count, 250, "every stream accepted")
    }

    func testWindowUpdatesQueuedForOneStreamGoOutAsOne() throws {
        func plainUpdates(writable: Bool) throws -> [YamuxFrameHeader] {
            let link = try makeLink(YamuxConfiguration(role: .server)) { $0.pipeline.addHandler(CollectingHandler()) }
            try link.receive([.windowUpdate(YamuxStreamID(1), flags: .syn, delta: 0)])
            _ = try link.sent()
            link.setWritable(writable)
            for _ in 0..<16 {
                var frame = ByteBuffer()
                frame.writeYamuxHeader(.data(YamuxStreamID(1), length: 16 * 1024))
                frame.writeBytes([UInt8](repeating: 1, count: 16 * 1024))
                try link.channel.writeInbound(frame)
                link.loop.run()
            }
            link.setWritable(true)
            return try link.sent().filter { $0.type == .windowUpdate && $0.flags.isEmpty && $0.streamID == YamuxStreamID(1) }
        }
        let apart = try plainUpdates(writable: true)
        let queued = try plainUpdates(writable: false)
        XCTAssertGreaterThan(apart.count, 1, "on a writable link each update goes when due: \(apart)")
        XCTAssertEqual(queued.count, 1, "queued, they are one: \(queued)")
        XCTAssertGreaterThanOrEqual(queued.first?.length ?? 0, apart.first?.length ?? .max, "the credit is not lost")
    }
}

/// Log lines as an operator reads them ("level message"), at every level.
final class CollectedLog: Sendable {
    private let collected = Mutex<[(Logger.Level, String)]>([])

    func lines(atLeast level: Logger.Level) -> [String] {
        collected.withLock { $0.filter { $0.0 >= level }.map { "\($0.0) \($0.1)" } }
    }

    func logger() -> Logger {
        var logger = Logger(label: "yamux-test") { _ in Handler(log: self) }
        logger.logLevel = .trace
        return logger
    }

    private struct Handler: LogHandler {
        let log: CollectedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            log.collected.withLock { $0.append((event.level, "\(event.message)")) }
        }
    }
}
