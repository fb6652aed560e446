import NIOCore
import NIOEmbedded
import XCTest

@testable import Repeater

/// The drain timeout of a repeater's shutdown, on virtual time: each loop's table waits for its
/// sessions up to the timeout, then closes what is left.
final class LoopSessionTableTests: XCTestCase {
    private let timeout = TimeAmount.seconds(30)

    /// A session as the repeater keeps one: its channel's close removes it from the table.
    private func open(_ table: LoopSessionTable, on loop: EmbeddedEventLoop) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let id = table.add(channel)
        channel.closeFuture.assumeIsolated().whenComplete { _ in table.remove(id) }
        return channel
    }

    func testADrainWithNoSessionIsDoneAtOnce() {
        let loop = EmbeddedEventLoop()
        let table = LoopSessionTable(eventLoop: loop, loopIndex: 0, loopCount: 1)
        var done = false
        table.drain(timeout: timeout) { _ in XCTFail("nothing to time out") }.assumeIsolated().whenSuccess { done = true }
        loop.run()
        XCTAssertTrue(done)
    }

    func testSessionsLeftAtTheTimeoutAreClosedThenAndNotBefore() throws {
        let loop = EmbeddedEventLoop()
        let table = LoopSessionTable(eventLoop: loop, loopIndex: 0, loopCount: 1)
        let finishing = try open(table, on: loop)
        let slow = try open(table, on: loop)
        var left: [Int] = []
        var done = false
        table.drain(timeout: timeout) { left.append($0) }.assumeIsolated().whenSuccess { done = true }

        try finishing.close().wait()
        loop.advanceTime(by: timeout - .nanoseconds(1))
        XCTAssertFalse(done, "one session is still open")
        XCTAssertTrue(slow.isActive, "not closed before the drain timeout")
        XCTAssertFalse(table.drainTimedOut)

        loop.advanceTime(by: .nanoseconds(1))
        XCTAssertFalse(slow.isActive, "closed at the drain timeout")
        XCTAssertEqual(left, [1], "told how many sessions were left")
        XCTAssertTrue(done, "the drain completes once the last session has closed")
        XCTAssertTrue(table.drainTimedOut, "what was closed at the timeout counts as drained")
        XCTAssertEqual(table.count, 0)
    }

    func testADrainThatFinishesInTimeCancelsItsTimer() throws {
        let loop = EmbeddedEventLoop()
        let table = LoopSessionTable(eventLoop: loop, loopIndex: 0, loopCount: 1)
        let session = try open(table, on: loop)
        var done = false
        table.drain(timeout: timeout) { _ in XCTFail("the drain finished before its timeout") }.assumeIsolated().whenSuccess { done = true }
        loop.advanceTime(by: .seconds(1))
        try session.close().wait()
        loop.run()
        XCTAssertTrue(done)
        // A session accepted after that (its listener had accepted it before closing) is not
        // closed by a timer that belonged to the drain before it.
        let late = try open(table, on: loop)
        loop.advanceTime(by: timeout * 2)
        XCTAssertTrue(late.isActive)
        XCTAssertFalse(table.drainTimedOut)
    }

    func testIdsAreUniqueOverTheLoopsWithoutASharedCounter() throws {
        let loop = EmbeddedEventLoop()
        let tables = (0..<3).map { LoopSessionTable(eventLoop: loop, loopIndex: $0, loopCount: 3) }
        var ids: [UInt64] = []
        for _ in 0..<5 {
            for table in tables { ids.append(table.add(EmbeddedChannel(loop: loop))) }
        }
        XCTAssertEqual(Set(ids).count, 15)
        XCTAssertFalse(ids.contains(0), "0 is never an id")
    }
}
