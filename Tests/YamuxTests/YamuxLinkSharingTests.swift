import NIOCore
import XCTest

@testable import Yamux

/// Sharing the link: a receive window that shrinks to a limit while another stream is active and
/// comes back after, and the record of which stream sent last. Plain calls, virtual time.
final class YamuxLinkSharingTests: XCTestCase {
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)  // virtual: only differences matter
    private let shared = 256 * 1024

    /// A window that auto-tuned to `target` bytes (drained fast, update after update).
    private func grownWindow(to target: Int) -> YamuxReceiveWindow {
        var window = YamuxReceiveWindow(maximumTarget: target)
        var now = start
        while window.target < target {
            let inFlight = window.granted
            try! window.receive(UInt32(inFlight), stream: YamuxStreamID(1))
            _ = window.consume(inFlight, now: now, roundTripTime: .microseconds(50))
            now = now + .milliseconds(1)
        }
        return window
    }

    func testAWindowSharedWithAnotherStreamShrinksToTheLimitAndGrowsBackAfter() throws {
        var window = grownWindow(to: 4 << 20)
        XCTAssertEqual(window.granted, 4 << 20, "the peer may have the whole tuned window in flight")
        let limit: (NIODeadline) -> Int = { _ in self.shared }
        var now = start + .seconds(1)

        // The peer sends all it may; while another stream is active, credit is withheld until
        // what is in flight has drained below the shared window.
        try window.receive(UInt32(4 << 20), stream: YamuxStreamID(1))
        var credited = 0
        for _ in 0..<64 {
            if let delta = window.consume(64 * 1024, now: now, roundTripTime: nil, limit: limit) {
                credited += Int(delta)
            }
            XCTAssertLessThanOrEqual(
                window.granted + window.buffered, max(shared, window.buffered),
                "never more in flight than the shared window once it is in force")
            now = now + .microseconds(100)
        }
        XCTAssertEqual(window.buffered, 0)
        XCTAssertEqual(window.inForce, shared)
        XCTAssertEqual(window.granted, shared, "all of the drained backlog credited only up to the shared window")
        XCTAssertEqual(credited, shared)
        XCTAssertEqual(window.target, 4 << 20, "the learned target is kept")

        // Alone again: the first update brings the tuned window back at once.
        try window.receive(UInt32(shared), stream: YamuxStreamID(1))
        let delta = try XCTUnwrap(window.consume(shared, now: now, roundTripTime: nil))
        XCTAssertEqual(Int(delta), 4 << 20)
        XCTAssertEqual(window.inForce, 4 << 20)
    }

    func testWithheldCreditNeverStallsThePeer() throws {
        // However the consumption is cut, once the peer has sent everything it may and the
        // application has consumed it all, an update has gone out: no deadlock.
        for chunk in [1, 1000, 65_536, 100_000, 300_000] {
            var window = grownWindow(to: 2 << 20)
            for round in 0..<8 {
                let inFlight = window.granted
                XCTAssertGreaterThan(inFlight, 0, "chunk \(chunk), round \(round): the peer was left with no window")
                try window.receive(UInt32(inFlight), stream: YamuxStreamID(1))
                var left = inFlight
                while left > 0 {
                    let n = min(chunk, left)
                    left -= n
                    _ = window.consume(n, now: start, roundTripTime: nil, limit: { _ in 200_000 })
                }
            }
            XCTAssertEqual(window.inForce, 200_000)
        }
    }

    func testALimitAboveTheTargetChangesNothing() throws {
        var window = YamuxReceiveWindow()
        try window.receive(200_000, stream: YamuxStreamID(1))
        let delta = try XCTUnwrap(window.consume(200_000, now: start, roundTripTime: nil, limit: { _ in 1 << 30 }))
        XCTAssertEqual(delta, 200_000)
        XCTAssertEqual(window.inForce, YamuxWindow.initial)
    }

    func testOneStreamAloneIsNotSharingAndReadsNoClock() {
        var activity = YamuxInboundActivity()
        let ping = YamuxStreamID(1)
        var clockReads = 0
        for _ in 0..<100 {
            activity.dataArrived(
                on: ping, length: 64,
                now: {
                    clockReads += 1
                    return self.start
                }())
        }
        XCTAssertEqual(clockReads, 0, "no clock read while the same stream keeps sending")
        XCTAssertFalse(activity.smallMessagesOnAnotherStream(besides: ping, now: start, within: .milliseconds(100)))
    }

    func testASmallMessageOnAnotherStreamCountsWithinTheHorizon() {
        var activity = YamuxInboundActivity()
        let bulk = YamuxStreamID(1)
        let ping = YamuxStreamID(3)
        let horizon = TimeAmount.milliseconds(100)
        activity.dataArrived(on: bulk, length: 65_536, now: start)
        activity.dataArrived(on: ping, length: 64, now: start + .milliseconds(1))
        XCTAssertTrue(
            activity.smallMessagesOnAnotherStream(besides: bulk, now: start + .seconds(10), within: horizon),
            "the ping's run is the latest: it came after the bulk stream's last frame")
        activity.dataArrived(on: bulk, length: 65_536, now: start + .milliseconds(2))
        XCTAssertTrue(activity.smallMessagesOnAnotherStream(besides: bulk, now: start + .milliseconds(50), within: horizon))
        XCTAssertFalse(
            activity.smallMessagesOnAnotherStream(besides: bulk, now: start + .milliseconds(103), within: horizon),
            "the ping has been quiet for longer than the horizon")
        XCTAssertFalse(
            activity.smallMessagesOnAnotherStream(besides: ping, now: start + .milliseconds(3), within: horizon),
            "the bulk stream sends no small messages: the ping's window is not limited")
    }

    func testBulkStreamsBesideEachOtherAreNotLimited() {
        var activity = YamuxInboundActivity()
        var now = start
        for round in 0..<50 {
            for id: UInt32 in [1, 3, 5, 7] {
                activity.dataArrived(on: YamuxStreamID(id), length: 65_536, now: now)
                now = now + .microseconds(50)
            }
            XCTAssertFalse(
                activity.smallMessagesOnAnotherStream(besides: YamuxStreamID(1), now: now, within: .milliseconds(100)),
                "round \(round)")
        }
    }
}
