import EventSummaries
import NIOCore
import XCTest

@testable import Yamux

/// The capped queue of control frames, alone: order, coalescing, drops on reset, the pause and
/// the cap.
final class YamuxControlFrameQueueTests: XCTestCase {
    private func drained(_ queue: inout YamuxControlFrameQueue) -> [YamuxFrameHeader] {
        var frames: [YamuxFrameHeader] = []
        queue.drain { frames.append($0) }
        return frames
    }

    func testFramesComeOutInOrderAndTheQueueIsEmptyAfter() {
        var queue = YamuxControlFrameQueue(limit: 100, pauseThreshold: 10)
        let frames: [YamuxFrameHeader] = [
            .windowUpdate(YamuxStreamID(1), flags: .syn, delta: 0), .ping(flags: .ack, opaque: 7),
            .windowUpdate(YamuxStreamID(2), flags: .ack, delta: 0), .goAway(.normal),
        ]
        for frame in frames { XCTAssertEqual(queue.append(frame), .queued) }
        XCTAssertEqual(queue.count, 4)
        XCTAssertEqual(queue.answers, 1, "only the ping reply is an answer")
        XCTAssertEqual(drained(&queue), frames)
        XCTAssertTrue(queue.isEmpty)
        XCTAssertEqual(queue.answers, 0)
        XCTAssertEqual(drained(&queue), [])
    }

    func testWindowUpdatesForOneStreamCoalesceInTheFirstOnesPlace() {
        var queue = YamuxControlFrameQueue(limit: 100, pauseThreshold: 10)
        let one = YamuxStreamID(1)
        let three = YamuxStreamID(3)
        XCTAssertEqual(queue.append(.windowUpdate(one, delta: 1000)), .queued)
        XCTAssertEqual(queue.append(.windowUpdate(three, delta: 5)), .queued)
        XCTAssertEqual(queue.append(.windowUpdate(one, delta: 2000)), .coalesced)
        XCTAssertEqual(queue.append(.windowUpdate(one, flags: .fin, delta: 0)), .queued, "a FIN is its own frame")
        XCTAssertEqual(queue.append(.windowUpdate(one, delta: 4)), .coalesced)
        XCTAssertEqual(queue.count, 3)
        XCTAssertEqual(
            drained(&queue),
            [.windowUpdate(one, delta: 3004), .windowUpdate(three, delta: 5), .windowUpdate(one, flags: .fin, delta: 0)])
    }

    func testACoalescedDeltaThatWouldOverflowIsQueuedApart() {
        var queue = YamuxControlFrameQueue(limit: 100, pauseThreshold: 10)
        let one = YamuxStreamID(1)
        XCTAssertEqual(queue.append(.windowUpdate(one, delta: UInt32.max - 1)), .queued)
        XCTAssertEqual(queue.append(.windowUpdate(one, delta: 2)), .queued)
        XCTAssertEqual(drained(&queue), [.windowUpdate(one, delta: UInt32.max - 1), .windowUpdate(one, delta: 2)])
    }

    func testAStreamThePeerResetLosesEverythingQueuedForIt() {
        var queue = YamuxControlFrameQueue(limit: 100, pauseThreshold: 10)
        let one = YamuxStreamID(1)
        let two = YamuxStreamID(2)
        _ = queue.append(.windowUpdate(two, flags: .ack, delta: 0))
        _ = queue.append(.windowUpdate(one, flags: .ack, delta: 0))
        _ = queue.append(.windowUpdate(one, delta: 10))
        _ = queue.append(.windowUpdate(two, delta: 20))
        _ = queue.append(.windowUpdate(one, flags: .fin, delta: 0))
        queue.peerReset(one)
        XCTAssertEqual(queue.count, 2)
        XCTAssertEqual(drained(&queue), [.windowUpdate(two, flags: .ack, delta: 0), .windowUpdate(two, delta: 20)])
    }

    func testAStreamWeResetLosesItsWindowUpdateButNotItsOpen() {
        var queue = YamuxControlFrameQueue(limit: 100, pauseThreshold: 10)
        let one = YamuxStreamID(1)
        _ = queue.append(.windowUpdate(one, flags: .syn, delta: 0))
        _ = queue.append(.windowUpdate(one, delta: 10))
        XCTAssertEqual(queue.append(.windowUpdate(one, flags: .rst, delta: 0)), .queued)
        XCTAssertEqual(drained(&queue), [.windowUpdate(one, flags: .syn, delta: 0), .windowUpdate(one, flags: .rst, delta: 0)])
    }

    func testAnswersPauseReadingAtTheThresholdAndStreamFramesDoNot() {
        var queue = YamuxControlFrameQueue(limit: 1000, pauseThreshold: 3)
        for id in stride(from: UInt32(1), through: 99, by: 2) {
            _ = queue.append(.windowUpdate(YamuxStreamID(id), flags: .syn, delta: 0))
        }
        XCTAssertFalse(queue.pausesReading, "50 frames tied to streams: bounded by the streams, no pause")
        _ = queue.append(.ping(flags: .ack, opaque: 1))
        _ = queue.append(.windowUpdate(YamuxStreamID(2), flags: .rst, delta: 0), isAnswer: true)
        XCTAssertFalse(queue.pausesReading)
        _ = queue.append(.ping(flags: .ack, opaque: 2))
        XCTAssertTrue(queue.pausesReading)
        XCTAssertEqual(queue.answers, 3)
        _ = drained(&queue)
        XCTAssertFalse(queue.pausesReading)
    }

    func testPastTheLimitNothingIsQueuedAndTheCallerIsTold() {
        var queue = YamuxControlFrameQueue(limit: 5, pauseThreshold: 100)
        XCTAssertEqual(queue.pauseThreshold, 5, "the threshold is never above the limit")
        for opaque in 1...5 { XCTAssertEqual(queue.append(.ping(flags: .ack, opaque: UInt32(opaque))), .queued) }
        XCTAssertEqual(queue.append(.ping(flags: .ack, opaque: 6)), .overLimit)
        XCTAssertEqual(queue.count, 5)
        // A window update that coalesces adds no frame, so it is still taken at the limit.
        var streams = YamuxControlFrameQueue(limit: 1, pauseThreshold: 1)
        XCTAssertEqual(streams.append(.windowUpdate(YamuxStreamID(1), delta: 1)), .queued)
        XCTAssertEqual(streams.append(.windowUpdate(YamuxStreamID(1), delta: 1)), .coalesced)
        XCTAssertEqual(streams.append(.windowUpdate(YamuxStreamID(3), delta: 1)), .overLimit)
    }
}

/// The tally of peer-caused events behind the summary lines.
final class YamuxPeerEventTallyTests: XCTestCase {
    func testTheFirstEventStartsAPeriodAndTheSummaryCountsEachKind() {
        var tally = YamuxPeerEventTally()
        XCTAssertNil(tally.takeSummary())
        XCTAssertTrue(tally.record(.streamResetByPeer), "the first event starts the period")
        for _ in 0..<99_999 { XCTAssertFalse(tally.record(.streamResetByPeer)) }
        XCTAssertFalse(tally.record(.streamRefused, detail: "accept backlog of 256 full"))
        XCTAssertEqual(
            tally.takeSummary(),
            "100000 streams reset by the peer, 1 stream opened by the peer refused (the last: accept backlog of 256 full)")
        XCTAssertTrue(tally.isEmpty)
        XCTAssertNil(tally.takeSummary())
        XCTAssertTrue(tally.record(.readsPaused), "after a summary, the next event starts a new period")
        XCTAssertEqual(tally.takeSummary(), "link reads paused 1 time (the peer asks for answers it does not read)")
    }
}
