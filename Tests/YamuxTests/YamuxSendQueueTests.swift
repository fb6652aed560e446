import NIOCore
import XCTest

@testable import Yamux

/// The send queue's turn-taking, by plain calls (no link, no multiplexer).
final class YamuxSendQueueTests: XCTestCase {
    /// A stream end that only has a name (the queue reads nothing else).
    final class NamedStream: YamuxStreamEndpoint {
        let streamID: YamuxStreamID
        var hasNewInbound = false
        var isQueuedForSend = false
        init(_ id: UInt32) { streamID = YamuxStreamID(id) }
        func receiveData(_ buffer: ByteBuffer) {}
        func receiveFinish() {}
        func parentReadComplete() {}
        func receiveReset(error: Error) {}
        func localFinishWasSent(streamClosed: Bool) {}
        func streamClosedOnWire() {}
        var sendableBytes: Int { 0 }
        var wantsToSendFinish: Bool { false }
        func takeSendable(upTo limit: Int, into pieces: inout [(ByteBuffer, EventLoopPromise<Void>?)]) -> Int { 0 }
    }

    private func ids(_ queue: inout YamuxSendQueue, whileMore more: (UInt32) -> Bool = { _ in false }) -> [UInt32] {
        var order: [UInt32] = []
        queue.startPass()
        while let stream = queue.nextTurn() {
            order.append(stream.streamID.rawValue)
            if more(stream.streamID.rawValue) { queue.takeAnotherTurn(stream) }
        }
        return order
    }

    func testStreamsTakeTurnsOneFrameEach() {
        var queue = YamuxSendQueue()
        let streams = [NamedStream(1), NamedStream(3), NamedStream(5)]
        streams.forEach { queue.enqueue($0) }
        var framesLeft: [UInt32: Int] = [1: 3, 3: 1, 5: 2]
        let order = ids(&queue) { id in
            framesLeft[id]! -= 1
            return framesLeft[id]! > 0
        }
        XCTAssertEqual(order, [1, 3, 5, 1, 5, 1], "round-robin: the bulk stream 1 never goes twice in a row ahead of others")
        XCTAssertTrue(queue.isEmpty)
        XCTAssertTrue(streams.allSatisfy { !$0.isQueuedForSend })
    }

    func testAStreamIsQueuedOnce() {
        var queue = YamuxSendQueue()
        let stream = NamedStream(1)
        queue.enqueue(stream)
        queue.enqueue(stream)
        XCTAssertEqual(queue.count, 1)
        XCTAssertTrue(stream.isQueuedForSend)
        XCTAssertEqual(ids(&queue), [1])
        XCTAssertFalse(stream.isQueuedForSend)
    }

    func testAStreamStoppedByAFullLinkKeepsItsPlaceAndEndsThePass() {
        var queue = YamuxSendQueue()
        [NamedStream(1), NamedStream(3), NamedStream(5)].forEach { queue.enqueue($0) }
        queue.startPass()
        let first = queue.nextTurn()!
        XCTAssertEqual(first.streamID.rawValue, 1)
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

    func testRemoveAllForgetsEveryStream() {
        var queue = YamuxSendQueue()
        let stream = NamedStream(1)
        queue.enqueue(stream)
        queue.removeAll()
        XCTAssertTrue(queue.isEmpty)
        XCTAssertFalse(stream.isQueuedForSend)
        XCTAssertEqual(ids(&queue), [])
    }
}
