import NIOCore
import NIOEmbedded
import XCTest

@testable import Yamux

/// The link's output alone, by plain calls: what it hands to the channel, in which order, and when
/// it says to flush (no link, no multiplexer).
final class YamuxLinkOutputTests: XCTestCase {
    /// What the output handed to the channel, in order.
    private var written: [(bytes: ByteBuffer, promise: EventLoopPromise<Void>?)] = []

    override func setUp() {
        written = []
    }

    private func write(_ bytes: ByteBuffer, _ promise: EventLoopPromise<Void>?) {
        written.append((bytes, promise))
    }

    /// Every frame header in the handed-over bytes, in order (payloads skipped).
    private func headers() throws -> [YamuxFrameHeader] {
        var all = ByteBuffer()
        for var piece in written.map(\.bytes) { all.writeBuffer(&piece) }
        var headers: [YamuxFrameHeader] = []
        while all.readableBytes > 0 {
            let header = try XCTUnwrap(YamuxHeaderCodec.decode(from: &all))
            headers.append(header)
            if header.type == .data { all.moveReaderIndex(forwardBy: Int(header.length)) }
        }
        return headers
    }

    private func payload(_ byte: UInt8, _ count: Int) -> ByteBuffer {
        ByteBuffer(repeating: byte, count: count)
    }

    func testSmallFramesGatherIntoOneBufferUntilTheFlush() throws {
        var output = YamuxLinkOutput()
        output.append(.windowUpdate(YamuxStreamID(1), delta: 100), write: write)
        output.appendData(.data(YamuxStreamID(3), length: 64), pieces: [(payload(0xAB, 64), nil)], write: write)
        output.append(.ping(flags: .syn, opaque: 7), write: write)
        XCTAssertTrue(written.isEmpty, "small frames wait for the flush")
        XCTAssertEqual(output.gatheredBytes, 3 * 12 + 64)

        XCTAssertTrue(output.takeFlush(write: write))
        XCTAssertEqual(written.count, 1, "one buffer for three frames")
        XCTAssertEqual(try headers().map(\.type), [.windowUpdate, .data, .ping])
        XCTAssertFalse(output.takeFlush(write: write), "nothing left to flush")
        XCTAssertEqual(written.count, 1)
    }

    func testALargeDataFrameFollowsTheGatheredFramesAndKeepsItsPieces() throws {
        let loop = EmbeddedEventLoop()
        var output = YamuxLinkOutput()
        output.append(.windowUpdate(YamuxStreamID(1), delta: 100), write: write)
        let large = YamuxLinkOutput.coalescedPayloadLimit + 1
        let first = loop.makePromise(of: Void.self)
        let second = loop.makePromise(of: Void.self)
        output.appendData(
            .data(YamuxStreamID(5), length: UInt32(large)),
            pieces: [(payload(1, 1000), first), (payload(2, large - 1000), second)], write: write)
        XCTAssertEqual(written.count, 3, "the gathered bytes (update and header), then both pieces as they are")
        XCTAssertEqual(written[0].bytes.readableBytes, 24)
        XCTAssertNil(written[0].promise)
        XCTAssertEqual(written[1].bytes.readableBytes, 1000)
        XCTAssertTrue(written[1].promise?.futureResult === first.futureResult)
        XCTAssertEqual(written[2].bytes.readableBytes, large - 1000)
        XCTAssertEqual(try headers().map(\.streamID.rawValue), [1, 5])

        // A frame after it goes into a fresh gathered buffer, behind it on the wire.
        output.append(.windowUpdate(YamuxStreamID(7), delta: 1), write: write)
        XCTAssertTrue(output.takeFlush(write: write))
        XCTAssertEqual(try headers().map(\.streamID.rawValue), [1, 5, 7])
        first.succeed(())
        second.succeed(())
    }

    func testASmallPayloadsPromiseCompletesWithTheGatheredWrite() throws {
        let loop = EmbeddedEventLoop()
        var output = YamuxLinkOutput()
        let a = loop.makePromise(of: Void.self)
        let b = loop.makePromise(of: Void.self)
        output.appendData(.data(YamuxStreamID(1), length: 10), pieces: [(payload(1, 10), a)], write: write)
        output.appendData(.data(YamuxStreamID(3), length: 10), pieces: [(payload(2, 10), b)], write: write)
        XCTAssertTrue(output.takeFlush(write: write))
        XCTAssertEqual(written.count, 1)
        var completed = 0
        a.futureResult.whenSuccess { completed += 1 }
        b.futureResult.whenSuccess { completed += 1 }
        try XCTUnwrap(written[0].promise).succeed(())
        XCTAssertEqual(completed, 2, "both payloads are written when the one buffer is")
    }

    func testGatheredBytesAreHandedOverEarlyPastTheHandOverSize() throws {
        var output = YamuxLinkOutput()
        let frames = YamuxLinkOutput.handOverSize / 12 + 1
        for i in 0..<frames {
            output.append(.windowUpdate(YamuxStreamID(UInt32(2 * i + 1)), delta: 1), write: write)
        }
        XCTAssertEqual(written.count, 1, "handed over once past the hand-over size, so the watermark sees it")
        XCTAssertGreaterThanOrEqual(written[0].bytes.readableBytes, YamuxLinkOutput.handOverSize)
        XCTAssertTrue(output.takeFlush(write: write))
        XCTAssertEqual(try headers().count, frames, "nothing lost or repeated across the hand-over")
    }

    func testTheLinksReadCycleHoldsFramesAndFlushesThemAtItsEnd() {
        var output = YamuxLinkOutput()
        output.linkReadCycleBegan()
        output.append(.windowUpdate(YamuxStreamID(1), delta: 1), write: write)
        XCTAssertEqual(output.framesAppended(), .none, "the read cycle's end flushes them")
        XCTAssertEqual(output.linkReadCycleEnded(), .now)
        XCTAssertTrue(output.takeFlush(write: write))

        output.linkReadCycleBegan()
        XCTAssertEqual(output.linkReadCycleEnded(), .none, "a read that wrote nothing flushes nothing")
    }

    /// The heart of issue 43: three relayed sockets read in one wake, one flush for all of them.
    func testRelayReadCyclesInOneTurnShareOneEndOfTurnFlush() throws {
        var output = YamuxLinkOutput()
        var steps: [YamuxLinkOutput.FlushStep] = []
        for stream in [1, 3, 5] as [UInt32] {
            output.relayReadCycleBegan()
            output.appendData(.data(YamuxStreamID(stream), length: 64), pieces: [(payload(9, 64), nil)], write: write)
            steps.append(output.framesAppended())
            steps.append(output.relayReadCycleEnded())
        }
        XCTAssertEqual(steps, [.none, .atEndOfTurn, .none, .none, .none, .none], "one task for the turn")
        output.endOfTurnFlushRan()
        XCTAssertTrue(output.takeFlush(write: write))
        XCTAssertEqual(written.count, 1, "three sessions' frames in one link write")
        XCTAssertEqual(try headers().map(\.streamID.rawValue), [1, 3, 5])

        // The next turn schedules its own flush.
        output.append(.windowUpdate(YamuxStreamID(1), delta: 1), write: write)
        XCTAssertEqual(output.framesAppended(), .atEndOfTurn)
    }

    func testNestedRelayReadCyclesHoldUntilTheLastEnds() {
        var output = YamuxLinkOutput()
        output.relayReadCycleBegan()
        output.relayReadCycleBegan()
        output.append(.windowUpdate(YamuxStreamID(1), delta: 1), write: write)
        XCTAssertEqual(output.relayReadCycleEnded(), .none, "another socket is still in its read cycle")
        XCTAssertEqual(output.relayReadCycleEnded(), .atEndOfTurn)
    }

    /// One session: nothing to share a write with, so no task per message.
    func testTheOnlyStreamsReadCycleFlushesAtOnce() {
        var output = YamuxLinkOutput()
        output.relayReadCycleBegan()
        output.appendData(.data(YamuxStreamID(1), length: 64), pieces: [(payload(9, 64), nil)], write: write)
        XCTAssertEqual(output.framesAppended(), .none)
        XCTAssertEqual(output.relayReadCycleEnded(othersMayShare: false), .now)
        XCTAssertTrue(output.takeFlush(write: write))

        // Nothing written: nothing to flush, alone or not.
        output.relayReadCycleBegan()
        XCTAssertEqual(output.relayReadCycleEnded(othersMayShare: false), .none)
        // Another socket still in its read cycle holds the flush even for the only stream's frames.
        output.relayReadCycleBegan()
        output.relayReadCycleBegan()
        output.append(.windowUpdate(YamuxStreamID(1), delta: 1), write: write)
        XCTAssertEqual(output.relayReadCycleEnded(othersMayShare: false), .none)
        XCTAssertEqual(output.relayReadCycleEnded(othersMayShare: false), .now)
    }

    func testAReadCycleThatWroteNothingSchedulesNothing() {
        var output = YamuxLinkOutput()
        output.relayReadCycleBegan()
        XCTAssertEqual(output.relayReadCycleEnded(), .none)
        XCTAssertEqual(output.framesAppended(), .none)
        XCTAssertFalse(output.takeFlush(write: write))
    }

    func testFailingDropsTheGatheredFramesAndFailsTheirPromises() {
        let loop = EmbeddedEventLoop()
        var output = YamuxLinkOutput()
        let promise = loop.makePromise(of: Void.self)
        output.appendData(.data(YamuxStreamID(1), length: 8), pieces: [(payload(1, 8), promise)], write: write)
        var failure: Error?
        promise.futureResult.whenFailure { failure = $0 }
        output.fail(YamuxError(.linkClosed))
        XCTAssertNotNil(failure)
        XCTAssertFalse(output.takeFlush(write: write), "nothing is written after the link failed")
        XCTAssertTrue(written.isEmpty)
    }
}
