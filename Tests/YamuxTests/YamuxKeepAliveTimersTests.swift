import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import XCTest

@testable import Yamux

/// The keep-alive timers alone, on an embedded loop whose clock the test moves.
final class YamuxKeepAliveTimersTests: XCTestCase {
    func testPingsGoOutEveryIntervalUntilStopped() {
        let loop = EmbeddedEventLoop()
        let pings = NIOLockedValueBox(0)
        var timers = YamuxKeepAliveTimers()
        XCTAssertTrue(timers.markStarted())
        XCTAssertFalse(timers.markStarted(), "started once per link")
        timers.startInterval(on: loop, every: .seconds(30)) { pings.withLockedValue { $0 += 1 } }
        loop.advanceTime(by: .seconds(29))
        XCTAssertEqual(pings.withLockedValue { $0 }, 0, "the first after one interval")
        loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(pings.withLockedValue { $0 }, 1)
        loop.advanceTime(by: .seconds(60))
        XCTAssertEqual(pings.withLockedValue { $0 }, 3)
        timers.stop()
        loop.advanceTime(by: .seconds(300))
        XCTAssertEqual(pings.withLockedValue { $0 }, 3, "none after stop")
    }

    func testUnansweredPingsExpireAfterTheTimeoutFromTheFirstOfThem() {
        let loop = EmbeddedEventLoop()
        let expired = NIOLockedValueBox(0)
        var timers = YamuxKeepAliveTimers()
        timers.pingSent(on: loop, timeout: .seconds(10)) { expired.withLockedValue { $0 += 1 } }
        loop.advanceTime(by: .seconds(5))
        // A second ping does not move the first one's deadline.
        timers.pingSent(on: loop, timeout: .seconds(10)) { expired.withLockedValue { $0 += 100 } }
        XCTAssertTrue(timers.awaitsAnswers)
        loop.advanceTime(by: .seconds(5))
        XCTAssertEqual(expired.withLockedValue { $0 }, 1, "10 s after the first unanswered ping")
    }

    func testAnswersCancelTheDeadlineAndTheNextPingSetsANewOne() {
        let loop = EmbeddedEventLoop()
        let expired = NIOLockedValueBox(0)
        var timers = YamuxKeepAliveTimers()
        timers.pingSent(on: loop, timeout: .seconds(10)) { expired.withLockedValue { $0 += 1 } }
        loop.advanceTime(by: .seconds(3))
        timers.answered()
        XCTAssertFalse(timers.awaitsAnswers)
        loop.advanceTime(by: .seconds(30))
        XCTAssertEqual(expired.withLockedValue { $0 }, 0, "answered in time")

        timers.pingSent(on: loop, timeout: .seconds(10)) { expired.withLockedValue { $0 += 1 } }
        loop.advanceTime(by: .seconds(10))
        XCTAssertEqual(expired.withLockedValue { $0 }, 1)
        // The deadline that ran is gone once the multiplexer says so: the next ping gets its own.
        timers.deadlinePassed()
        timers.pingSent(on: loop, timeout: .seconds(10)) { expired.withLockedValue { $0 += 1 } }
        loop.advanceTime(by: .seconds(10))
        XCTAssertEqual(expired.withLockedValue { $0 }, 2)
    }

    func testStopCancelsAPendingDeadline() {
        let loop = EmbeddedEventLoop()
        let expired = NIOLockedValueBox(0)
        var timers = YamuxKeepAliveTimers()
        timers.pingSent(on: loop, timeout: .seconds(10)) { expired.withLockedValue { $0 += 1 } }
        timers.stop()
        loop.advanceTime(by: .seconds(60))
        XCTAssertEqual(expired.withLockedValue { $0 }, 0)
        XCTAssertFalse(timers.awaitsAnswers)
    }
}
