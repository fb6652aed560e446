import NIOCore
import NIOEmbedded
import XCTest

@testable import Yamux

final class YamuxPingTrackerTests: XCTestCase {
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func testEachPingHasItsOwnOpaqueValueAndTheReplyMeasuresItsRoundTrip() throws {
        var tracker = YamuxPingTracker()
        XCTAssertFalse(tracker.isAwaitingReply)
        let first = tracker.ping(now: start)
        let second = tracker.ping(now: start + .milliseconds(1))
        XCTAssertEqual(first.type, .ping)
        XCTAssertTrue(first.flags.contains(.syn))
        XCTAssertNotEqual(first.length, second.length, "the opaque value (carried in the length field) differs")
        XCTAssertTrue(tracker.isAwaitingReply)

        let reply = try XCTUnwrap(tracker.receiveReply(opaque: first.length, now: start + .milliseconds(4)))
        XCTAssertEqual(reply.roundTrip, .milliseconds(4))
        XCTAssertFalse(reply.allAnswered, "the second ping is still out")
        XCTAssertEqual(tracker.roundTripTime, .milliseconds(4), "the first sample is taken as it is")

        let last = try XCTUnwrap(tracker.receiveReply(opaque: second.length, now: start + .milliseconds(13)))
        XCTAssertEqual(last.roundTrip, .milliseconds(12))
        XCTAssertTrue(last.allAnswered)
        XCTAssertFalse(tracker.isAwaitingReply)
        XCTAssertEqual(tracker.roundTripTime, .nanoseconds((4_000_000 * 7 + 12_000_000) / 8), "smoothed 7/8 : 1/8")
    }

    func testRepliesToNoPingOfOursAreIgnored() {
        var tracker = YamuxPingTracker()
        let ping = tracker.ping(now: start)
        XCTAssertNil(tracker.receiveReply(opaque: ping.length &+ 100, now: start + .milliseconds(1)))
        XCTAssertTrue(tracker.isAwaitingReply)
        XCTAssertNil(tracker.roundTripTime)
        XCTAssertNotNil(tracker.receiveReply(opaque: ping.length, now: start + .milliseconds(1)))
        XCTAssertNil(tracker.receiveReply(opaque: ping.length, now: start + .milliseconds(2)), "a second reply to one ping")
    }

    func testAbandonAllReturnsThePromisesToFail() throws {
        let loop = EmbeddedEventLoop()
        var tracker = YamuxPingTracker()
        let promise = loop.makePromise(of: TimeAmount.self)
        _ = tracker.ping(now: start, promise: promise)
        _ = tracker.ping(now: start)
        let abandoned = tracker.abandonAll()
        XCTAssertEqual(abandoned.count, 1)
        XCTAssertFalse(tracker.isAwaitingReply)
        for promise in abandoned { promise.fail(YamuxError(.linkClosed)) }
        XCTAssertThrowsError(try promise.futureResult.wait())
    }
}
