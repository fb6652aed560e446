import NIOCore
import XCTest

@testable import Yamux

/// The send queue's turn-taking, by plain calls (no link, no multiplexer).
final class YamuxSendQueueTests: XCTestCase {
    /// A stream end that only has a name (the queue reads nothing else).
    final class NamedStream: YamuxStreamEndpoint {
        let streamID: YamuxStreamID
        var marks = YamuxEndpointMarks()
        var sendableBytes: Int
        init(_ id: UInt32, sendable: Int = 64 * 1024) {
            streamID = YamuxStreamID(id)
            sendableBytes = sendable
        }
        func receiveData(_ buffer: ByteBuffer) {}
        func receiveFinish() {}
        func parentReadComplete() {}
        func receiveReset(error: Error) {}
        func localFinishWasSent(streamClosed: Bool) {}
        func streamClosedOnWire() {}
        var wantsToSendFinish: Bool { false }
        func takeSendable(upTo limit: Int, into pieces: inout [(ByteBuffer, EventLoopPromise<Void>?)]) -> Int { 0 }
    }

    private func ids(_ queue: inout YamuxSendQueue, whileMore more: (UInt32) -> Bool = { _ in false }) -> [UInt32] {
        var order: [UInt32] = []
        queue.startPass()
        while let turn = queue.nextTurn() {
            order.append(turn.stream.streamID.rawValue)
            if more(turn.stream.streamID.rawValue) { queue.takeAnotherTurn(turn.stream) }
        }
        return order
    }

    func testStreamsTakeTurnsOneFrameEach() {
        var queue = YamuxSendQueue()
        let streams = [NamedStream(1), NamedStream(3), NamedStream(5)]
        for stream in streams { queue.enqueue(stream) }
        var framesLeft: [UInt32: Int] = [1: 3, 3: 1, 5: 2]
        let order = ids(&queue) { id in
            framesLeft[id]! -= 1
            return framesLeft[id]! > 0
        }
        XCTAssertEqual(order, [1, 3, 5, 1, 5, 1], "round-robin: the bulk stream 1 never goes twice in a row ahead of others")
        XCTAssertTrue(queue.isEmpty)
        XCTAssertTrue(streams.allSatisfy { !$0.marks.queuedForSend })
    }

    func testAStreamIsQueuedOnce() {
        var queue = YamuxSendQueue()
        let stream = NamedStream(1)
        queue.enqueue(stream)
        queue.enqueue(stream)
        XCTAssertEqual(queue.count, 1)
        XCTAssertTrue(stream.marks.queuedForSend)
        XCTAssertEqual(ids(&queue), [1])
        XCTAssertFalse(stream.marks.queuedForSend)
    }

    func testAStreamStoppedByAFullLinkKeepsItsPlaceAndEndsThePass() {
        var queue = YamuxSendQueue()
        for stream in [NamedStream(1), NamedStream(3), NamedStream(5)] { queue.enqueue(stream) }
        queue.startPass()
        let first = queue.nextTurn()!
        XCTAssertEqual(first.stream.streamID.rawValue, 1)
        queue.keepPlace(first)
        XCTAssertNil(queue.nextTurn(), "the link is full: nobody else goes in this pass")
        XCTAssertEqual(ids(&queue), [1, 3, 5], "stream 1 is still first once the link drains")
    }

    func testAPassOnlyServesStreamsQueuedWhenItStarted() {
        var queue = YamuxSendQueue()
        queue.enqueue(NamedStream(1))
        queue.startPass()
        _ = queue.nextTurn()
        queue.enqueue(NamedStream(3))
        XCTAssertNil(queue.nextTurn(), "a stream queued during the pass waits for the next one")
        XCTAssertEqual(ids(&queue), [3])
    }

    func testASparseStreamGoesAheadOfTheBacklogOnce() {
        var queue = YamuxSendQueue()
        let bulk = [NamedStream(1), NamedStream(3)]
        for stream in bulk { queue.enqueue(stream) }
        let small = NamedStream(5, sendable: 64)
        queue.enqueue(small)
        queue.startPass()
        let first = queue.nextTurn()!
        XCTAssertEqual(first.stream.streamID.rawValue, 5, "the small message goes before the bulk frames queued earlier")
        XCTAssertTrue(first.isSparse)
        XCTAssertEqual(first.byteLimit, YamuxSendQueue.sparseQuantum, "a sparse turn sends one small message at most")
        // It had more after all (say, more came in): it joins the round, behind the bulk streams.
        queue.takeAnotherTurn(small)
        var order: [UInt32] = []
        while let turn = queue.nextTurn() {
            XCTAssertFalse(turn.isSparse)
            XCTAssertEqual(turn.byteLimit, .max)
            order.append(turn.stream.streamID.rawValue)
        }
        XCTAssertEqual(order, [1, 3, 5])
    }

    func testAStreamWithABacklogIsNotSparse() {
        var queue = YamuxSendQueue()
        queue.enqueue(NamedStream(1))
        let big = NamedStream(3, sendable: YamuxSendQueue.sparseQuantum + 1)
        queue.enqueue(big)
        let fin = NamedStream(5, sendable: 0)  // a FIN alone is as small as it gets
        queue.enqueue(fin)
        XCTAssertEqual(ids(&queue), [5, 1, 3])
    }

    func testASparseStreamStoppedByAFullLinkStaysFirst() {
        var queue = YamuxSendQueue()
        queue.enqueue(NamedStream(1))
        queue.enqueue(NamedStream(3, sendable: 10))
        queue.startPass()
        let first = queue.nextTurn()!
        XCTAssertEqual(first.stream.streamID.rawValue, 3)
        queue.keepPlace(first)
        XCTAssertNil(queue.nextTurn())
        queue.enqueue(NamedStream(5, sendable: 10))
        XCTAssertEqual(ids(&queue), [3, 5, 1], "still ahead of the backlog, and of the sparse stream queued after it")
    }

    func testRemoveAllForgetsEveryStream() {
        var queue = YamuxSendQueue()
        let stream = NamedStream(1)
        queue.enqueue(stream)
        queue.removeAll()
        XCTAssertTrue(queue.isEmpty)
        XCTAssertFalse(stream.marks.queuedForSend)
        XCTAssertEqual(ids(&queue), [])
    }
}
