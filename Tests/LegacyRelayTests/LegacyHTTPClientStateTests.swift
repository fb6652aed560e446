import NIOCore
import XCTest

@testable import LegacyRelay

final class LegacyHTTPClientStateTests: XCTestCase {
    /// A TLS record: header (type, version 3.3, length) and `length` body bytes.
    private func record(type: UInt8 = 23, length: Int, fill: UInt8 = 0xAB) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(type)
        buffer.writeInteger(UInt16(0x0303))
        buffer.writeInteger(UInt16(length))
        buffer.writeRepeatingByte(fill, count: length)
        return buffer
    }

    private func concatenated(_ buffers: [ByteBuffer]) -> ByteBuffer {
        var all = ByteBuffer()
        for var buffer in buffers { all.writeBuffer(&buffer) }
        return all
    }

    func testOneWriteOfManyRecordsIsSentOneRecordPerRequestInLockStep() throws {
        var state = LegacyHTTPClientState()
        let records = [record(length: 16_384, fill: 1), record(length: 100, fill: 2), record(length: 0, fill: 3)]
        let end = state.write(concatenated(records))
        XCTAssertEqual(end, 16_389 + 105 + 5)
        XCTAssertEqual(state.next(), .send(records[0]))
        XCTAssertEqual(state.next(), .none, "one request in flight at a time")
        XCTAssertEqual(try state.answered(LegacyRelayResponse(sessionID: 77, chunks: [])), [])
        XCTAssertEqual(state.sessionID, 77, "the first answer names the session")
        XCTAssertEqual(state.bytesAcknowledged, 16_389)
        XCTAssertEqual(state.next(), .send(records[1]))
        _ = try state.answered(LegacyRelayResponse(sessionID: 77, chunks: []))
        XCTAssertEqual(state.next(), .send(records[2]))
        _ = try state.answered(LegacyRelayResponse(sessionID: 77, chunks: []))
        XCTAssertEqual(state.bytesAcknowledged, end, "every byte written is acknowledged")
    }

    func testARecordSplitAcrossWritesWaitsForItsRest() {
        var state = LegacyHTTPClientState()
        var whole = record(length: 50)
        let head = whole.readSlice(length: 20)!
        _ = state.write(head)
        XCTAssertEqual(state.next(), .none, "a partial record is not sent (and no session yet to poll)")
        _ = state.write(whole)
        XCTAssertEqual(state.next(), .send(record(length: 50)))
    }

    func testPollsOnlyWhileAReplyIsAwaitedAndTheSessionIsKnown() throws {
        var state = LegacyHTTPClientState()
        _ = state.write(record(length: 10))
        XCTAssertEqual(state.next(), .send(record(length: 10)))
        let reply = ByteBuffer(string: "server hello")
        XCTAssertEqual(try state.answered(LegacyRelayResponse(sessionID: 5, chunks: [reply])), [reply])
        XCTAssertEqual(state.next(), .poll, "handshake not done: collect the rest")
        _ = try state.answered(LegacyRelayResponse(sessionID: 5, chunks: []))
        state.awaitingReply = false
        XCTAssertEqual(state.next(), .none, "nothing awaited: an idle client does not poll")
        state.awaitingReply = true
        XCTAssertEqual(state.next(), .poll)
    }

    func testAnAnswerForAnotherSessionIsRefused() throws {
        var state = LegacyHTTPClientState()
        _ = state.write(record(length: 1))
        _ = state.next()
        XCTAssertThrowsError(try state.answered(LegacyRelayResponse(sessionID: 0, chunks: [])), "0 names no session")
        _ = state.write(record(length: 1))
        _ = state.next()
        _ = try state.answered(LegacyRelayResponse(sessionID: 5, chunks: []))
        _ = state.write(record(length: 1))
        _ = state.next()
        XCTAssertThrowsError(try state.answered(LegacyRelayResponse(sessionID: 6, chunks: []))) { error in
            XCTAssertEqual(error as? LegacyHTTPClientState.SessionMismatch, .init(expected: 5, got: 6))
        }
    }

    func testBytesThatAreNotTLSArePassedOnRatherThanHeld() {
        var splitter = TLSRecordSplitter()
        var junk = ByteBuffer()
        junk.writeBytes([0x47, 0x45, 0x54, 0xFF, 0xFF, 0x01])
        splitter.append(junk)
        XCTAssertEqual(splitter.nextRecord()?.bytes, junk)
        XCTAssertEqual(splitter.bufferedBytes, 0)
    }
}
