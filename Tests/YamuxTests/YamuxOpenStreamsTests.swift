import NIOCore
import NIOEmbedded
import XCTest

@testable import Yamux

/// The open-stream count and its drain waiters alone.
final class YamuxOpenStreamsTests: XCTestCase {
    func testWaitersCompleteWhenTheLastStreamCloses() throws {
        let loop = EmbeddedEventLoop()
        var streams = YamuxOpenStreams()
        streams.opened()
        streams.opened()
        var done = false
        streams.noneOpen(on: loop).whenSuccess { done = true }
        XCTAssertEqual(streams.closed().count, 0, "one is still open")
        let waiters = streams.closed()
        XCTAssertEqual(waiters.count, 1)
        XCTAssertFalse(done, "the caller completes them, after the count changed")
        for waiter in waiters { waiter.succeed(()) }
        XCTAssertTrue(done)
        XCTAssertEqual(streams.count, 0)
    }

    func testWithNothingOpenTheFutureIsAlreadyDone() throws {
        let loop = EmbeddedEventLoop()
        var streams = YamuxOpenStreams()
        XCTAssertNoThrow(try streams.noneOpen(on: loop).wait())
    }

    func testClosingTheLinkHandsOverEveryWaiterOnce() {
        let loop = EmbeddedEventLoop()
        var streams = YamuxOpenStreams()
        streams.opened()
        _ = streams.noneOpen(on: loop)
        _ = streams.noneOpen(on: loop)
        let waiters = streams.closeAll()
        XCTAssertEqual(waiters.count, 2)
        XCTAssertEqual(streams.count, 0)
        XCTAssertEqual(streams.closeAll().count, 0, "each waiter is handed over once")
        for waiter in waiters { waiter.succeed(()) }
    }
}
