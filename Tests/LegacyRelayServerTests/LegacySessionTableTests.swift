import NIOCore
import XCTest

@testable import LegacyRelayServer

/// A fixed sequence for id allocation, so collisions can be provoked.
struct ScriptedGenerator: RandomNumberGenerator {
    var values: [UInt64]
    mutating func next() -> UInt64 { values.isEmpty ? 12345 : values.removeFirst() }
}

final class LegacySessionTableTests: XCTestCase {
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func testIdsAreNonZeroAndUnique() throws {
        var table = LegacySessionTable<String>(idleTimeout: .seconds(10), capacity: 1000)
        var ids = Set<UInt32>()
        for index in 0..<1000 {
            let id = try table.insert("s\(index)", now: start)
            XCTAssertNotEqual(id, 0, "0 means 'open a new session'")
            ids.insert(id)
        }
        XCTAssertEqual(ids.count, 1000)
        XCTAssertThrowsError(try table.insert("one too many", now: start)) { error in
            XCTAssertEqual(error as? LegacySessionTable<String>.FullError, .init(capacity: 1000))
        }
    }

    /// Each event loop's table hands out only the ids of its partition, so a request on any loop
    /// finds the session's table from the id alone; the extremes of the generator stay in range.
    func testAPartitionsIdsNameItsTableAndNeverZero() throws {
        for count in [1, 2, 3, 7] {
            for partition in 0..<count {
                var table = LegacySessionTable<Int>(idleTimeout: .seconds(10), capacity: 1000, partition: partition, of: count)
                var lowest = ScriptedGenerator(values: [0, 0, 0, 0])
                var highest = ScriptedGenerator(values: [UInt64.max, UInt64.max, UInt64.max, UInt64.max])
                var ids = [try table.insert(-1, now: start, using: &lowest), try table.insert(-2, now: start, using: &highest)]
                for index in 0..<200 { ids.append(try table.insert(index, now: start)) }
                for id in ids {
                    XCTAssertNotEqual(id, 0, "0 means 'open a new session'")
                    XCTAssertEqual(LegacySessionTable<Int>.partition(of: id, count: count), partition, "id \(id), \(partition) of \(count)")
                }
            }
        }
    }

    func testACollidingRandomIdIsDrawnAgain() throws {
        var table = LegacySessionTable<String>(idleTimeout: .seconds(10), capacity: 10)
        var generator = ScriptedGenerator(values: [7, 7, 7, 8])
        let first = try table.insert("a", now: start, using: &generator)
        let second = try table.insert("b", now: start, using: &generator)
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(table.peek(first), "a")
        XCTAssertEqual(table.peek(second), "b")
    }

    func testIdleSessionsExpireAndUsedOnesLive() throws {
        var table = LegacySessionTable<String>(idleTimeout: .seconds(10), capacity: 10)
        let idle = try table.insert("idle", now: start)
        let busy = try table.insert("busy", now: start)
        XCTAssertTrue(table.expire(now: start + .seconds(9)).isEmpty)
        XCTAssertEqual(table.use(busy, now: start + .seconds(9)), "busy")
        let expired = table.expire(now: start + .seconds(10))
        XCTAssertEqual(expired.map(\.id), [idle])
        XCTAssertEqual(expired.map(\.session), ["idle"])
        XCTAssertNil(table.use(idle, now: start + .seconds(10)), "an expired session is unknown")
        XCTAssertEqual(table.use(busy, now: start + .seconds(18)), "busy", "used 9 s ago: still alive")
        XCTAssertEqual(table.expire(now: start + .seconds(28)).map(\.id), [busy])
        XCTAssertEqual(table.count, 0)
    }

    func testRemoveAndUnknownIds() throws {
        var table = LegacySessionTable<Int>(idleTimeout: .seconds(1), capacity: 2)
        let id = try table.insert(1, now: start)
        XCTAssertNil(table.use(id &+ 1, now: start))
        XCTAssertEqual(table.remove(id), 1)
        XCTAssertNil(table.remove(id))
        _ = try table.insert(2, now: start)
        _ = try table.insert(3, now: start)
        XCTAssertEqual(Set(table.removeAll().map(\.session)), [2, 3])
        XCTAssertEqual(table.count, 0)
    }
}

final class LegacySessionInboxTests: XCTestCase {
    private func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    func testAPollWaitsUntilARead() {
        var inbox = LegacySessionInbox(limit: 100)
        XCTAssertEqual(inbox.poll().decision, .wait)
        inbox.received(bytes("ab"))
        inbox.received(bytes("cd"))
        XCTAssertEqual(inbox.readCompleted(), .answer([bytes("ab"), bytes("cd")]), "answered at the end of the read")
        XCTAssertNil(inbox.readCompleted(), "nothing is held any more")
        XCTAssertNil(inbox.pollTimedOut())
    }

    func testAPollWithBytesWaitingIsAnsweredAtOnce() {
        var inbox = LegacySessionInbox(limit: 100)
        inbox.received(bytes("x"))
        XCTAssertEqual(inbox.poll().decision, .answer([bytes("x")]))
        XCTAssertEqual(inbox.poll().decision, .wait)
        XCTAssertEqual(inbox.pollTimedOut(), .answer([]), "the poll wait ran out: answered with no chunks")
    }

    func testForwardedBytesAreAnsweredWithWhateverArrived() {
        var inbox = LegacySessionInbox(limit: 100)
        XCTAssertEqual(inbox.forwarded(), .answer([]))
        inbox.received(bytes("reply"))
        XCTAssertEqual(inbox.forwarded(), .answer([bytes("reply")]))
    }

    func testASecondPollSupersedesTheFirst() {
        var inbox = LegacySessionInbox(limit: 100)
        XCTAssertEqual(inbox.poll().superseded, false)
        let second = inbox.poll()
        XCTAssertTrue(second.superseded)
        XCTAssertEqual(second.decision, .wait)
    }

    func testTheEndOfTheStreamDeliversWhatIsLeftThenSaysGone() {
        var inbox = LegacySessionInbox(limit: 100)
        XCTAssertEqual(inbox.poll().decision, .wait)
        XCTAssertEqual(inbox.streamEnded(reason: "closed"), .gone(reason: "closed"), "a held poll learns at once")

        var other = LegacySessionInbox(limit: 100)
        other.received(bytes("alert"))
        XCTAssertNil(other.streamEnded(reason: "closed"), "no poll held")
        XCTAssertNotNil(other.canForward(), "nothing can be sent any more")
        XCTAssertEqual(other.poll().decision, .answer([bytes("alert")]), "the last bytes still arrive")
        XCTAssertEqual(other.poll().decision, .gone(reason: "closed"))
    }

    func testReadingStopsAtTheLimit() {
        var inbox = LegacySessionInbox(limit: 10)
        XCTAssertTrue(inbox.wantsMoreFromStream)
        inbox.received(bytes("0123456789"))
        XCTAssertFalse(inbox.wantsMoreFromStream)
        _ = inbox.poll()
        XCTAssertTrue(inbox.wantsMoreFromStream, "delivering frees room")
    }
}
