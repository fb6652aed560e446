import NIOCore
import XCTest

@testable import Yamux

/// The behaviours of the reference implementation's session tests, as plain calls.
final class YamuxSessionStateMachineTests: XCTestCase {
    /// The local end is a label here: the multiplexer keeps its endpoint there.
    typealias Machine = YamuxSessionStateMachine<String>

    func testClientOpensOddAndServerEvenIDs() throws {
        var client = Machine(role: .client)
        var server = Machine(role: .server)
        XCTAssertEqual(try client.open().0, YamuxStreamID(1))
        XCTAssertEqual(try client.open().0, YamuxStreamID(3))
        XCTAssertEqual(try server.open().0, YamuxStreamID(2))
        XCTAssertEqual(try server.open().0, YamuxStreamID(4))
    }

    func testOpenAndAccept() throws {
        var client = Machine(role: .client)
        var server = Machine(role: .server)
        let (id, syn) = try client.open()
        XCTAssertEqual(syn, .windowUpdate(id, flags: .syn, delta: 0))
        let event = try XCTUnwrap(streamEvent(server.receive(syn)))
        XCTAssertTrue(event.opened)
        XCTAssertEqual(server.pendingAccepts, 1)
        let ack = try XCTUnwrap(server.accept(id))
        XCTAssertEqual(ack.flags, .ack)
        XCTAssertEqual(server.pendingAccepts, 0)
        let acked = try XCTUnwrap(streamEvent(client.receive(ack)))
        XCTAssertTrue(acked.sendMayResume)
        XCTAssertEqual(client.state(of: id)?.phase, .established)
    }

    func testSYNWithDataDeliversTheData() throws {
        var server = Machine(role: .server)
        let event = try XCTUnwrap(streamEvent(server.receive(.data(YamuxStreamID(1), flags: .syn, length: 100))))
        XCTAssertTrue(event.opened)
        XCTAssertEqual(event.deliverBytes, 100)
    }

    func testDuplicateSYNIsAProtocolError() {
        var server = Machine(role: .server)
        _ = server.receive(.windowUpdate(YamuxStreamID(1), flags: .syn, delta: 0))
        assertSessionError(server.receive(.windowUpdate(YamuxStreamID(1), flags: .syn, delta: 0))) {
            if case .invalidStreamOpen = $0 { return true } else { return false }
        }
    }

    func testSYNWithOurParityIsAProtocolError() {
        var server = Machine(role: .server)
        assertSessionError(server.receive(.windowUpdate(YamuxStreamID(2), flags: .syn, delta: 0))) {
            if case .invalidStreamOpen = $0 { return true } else { return false }
        }
    }

    func testFramesForNeverOpenedStreamsAreErrorsButClosedOnesAreTolerated() throws {
        var server = Machine(role: .server)
        // Never opened: Data, FIN, ACK all break the session.
        assertSessionError(server.receive(.data(YamuxStreamID(5), length: 1))) { _ in true }
        var server2 = Machine(role: .server)
        assertSessionError(server2.receive(.windowUpdate(YamuxStreamID(7), flags: .ack, delta: 0))) { _ in true }
        var client = Machine(role: .client)
        assertSessionError(client.receive(.windowUpdate(YamuxStreamID(1), flags: .fin, delta: 0))) { _ in true }

        // Opened once and closed since: late frames are dropped, as the reference does.
        var server3 = Machine(role: .server)
        let id = YamuxStreamID(1)
        _ = server3.receive(.windowUpdate(id, flags: .syn, delta: 0))
        _ = server3.accept(id)
        _ = server3.reset(id)
        XCTAssertEqual(server3.receive(.data(id, length: 10)), .ignore(payloadBytes: 10))
        XCTAssertEqual(server3.receive(.windowUpdate(id, delta: 1000)), .ignore(payloadBytes: 0))
    }

    func testHalfCloseEachWayThenClosed() throws {
        var client = Machine(role: .client)
        var server = Machine(role: .server)
        let (id, syn) = try client.open()
        _ = server.receive(syn)
        _ = client.receive(server.accept(id)!)

        // Client half-closes; server can still send.
        let (fin, closed, _) = try XCTUnwrap(client.finish(id))
        XCTAssertFalse(closed)
        XCTAssertEqual(client.reserveSend(id, upTo: 10).bytes, 0, "no data after our own FIN")
        let event = try XCTUnwrap(streamEvent(server.receive(fin)))
        XCTAssertTrue(event.remoteFinished)
        XCTAssertFalse(event.closed)
        XCTAssertEqual(server.reserveSend(id, upTo: 10).bytes, 10, "the reply may still flow")
        XCTAssertEqual(streamEvent(client.receive(.data(id, length: 10)))?.deliverBytes, 10)

        // Server half-closes: now both sides are done and the state is freed.
        let (serverFin, serverClosed, _) = try XCTUnwrap(server.finish(id))
        XCTAssertTrue(serverClosed)
        XCTAssertNil(server.state(of: id))
        XCTAssertEqual(streamEvent(client.receive(serverFin))?.closed, true)
        XCTAssertNil(client.state(of: id))
        XCTAssertTrue(client.slotCount == 0 && server.slotCount == 0)
    }

    func testResetRemovesTheStreamAtOnce() throws {
        var client = Machine(role: .client)
        var server = Machine(role: .server)
        let (id, syn) = try client.open()
        _ = server.receive(syn)
        let rst = try XCTUnwrap(server.reset(id)).frame
        XCTAssertEqual(rst.flags, .rst)
        XCTAssertNil(server.state(of: id))
        XCTAssertEqual(server.inboundStreamCount, 0)
        XCTAssertEqual(streamEvent(client.receive(rst))?.reset, true)
        XCTAssertNil(client.state(of: id))
    }

    func testGoAwayReceivedRefusesOpens() throws {
        var client = Machine(role: .client)
        _ = client.receive(.goAway(.normal))
        XCTAssertThrowsError(try client.open()) { error in
            XCTAssertEqual(error as? YamuxError, YamuxError(.goAwayReceived(code: 0)))
        }
    }

    func testGoAwaySentRefusesNewSYNsWithRST() throws {
        var server = Machine(role: .server)
        XCTAssertEqual(server.goAway(), .goAway(.normal))
        XCTAssertNil(server.goAway(), "Go Away is sent once")
        guard case .refuse(let reply, let payload, _) = server.receive(.data(YamuxStreamID(1), flags: .syn, length: 4))
        else { return XCTFail("expected refusal") }
        XCTAssertEqual(reply.flags, .rst)
        XCTAssertEqual(payload, 4)
        XCTAssertThrowsError(try server.open())
    }

    func testBacklogExceededIsRefusedAndTheSessionSurvives() throws {
        var server = Machine(role: .server, acceptBacklog: 2)
        _ = server.receive(.windowUpdate(YamuxStreamID(1), flags: .syn, delta: 0))
        _ = server.receive(.windowUpdate(YamuxStreamID(3), flags: .syn, delta: 0))
        guard case .refuse(let rst, _, let reason) = server.receive(.windowUpdate(YamuxStreamID(5), flags: .syn, delta: 0))
        else { return XCTFail("expected refusal") }
        XCTAssertEqual(rst, .windowUpdate(YamuxStreamID(5), flags: .rst, delta: 0))
        XCTAssertTrue(reason.contains("backlog"))
        // Accepting frees a backlog slot.
        _ = server.accept(YamuxStreamID(1))
        XCTAssertEqual(streamEvent(server.receive(.windowUpdate(YamuxStreamID(7), flags: .syn, delta: 0)))?.opened, true)
    }

    func testStreamLimitIsRefused() {
        var server = Machine(role: .server, maximumInboundStreams: 1)
        _ = server.receive(.windowUpdate(YamuxStreamID(1), flags: .syn, delta: 0))
        _ = server.accept(YamuxStreamID(1))
        guard case .refuse = server.receive(.windowUpdate(YamuxStreamID(3), flags: .syn, delta: 0)) else {
            return XCTFail("expected refusal")
        }
    }

    func testWindowExhaustedThenRefreshed() throws {
        var client = Machine(role: .client)
        let (id, _) = try client.open()
        XCTAssertEqual(client.reserveSend(id, upTo: 300_000).bytes, YamuxWindow.initial)
        XCTAssertEqual(client.reserveSend(id, upTo: 1).bytes, 0, "never send past the peer's window")
        let event = try XCTUnwrap(streamEvent(client.receive(.windowUpdate(id, delta: 1000))))
        XCTAssertTrue(event.sendMayResume)
        XCTAssertEqual(client.reserveSend(id, upTo: 5000).bytes, 1000)
    }

    func testReceivingPastTheWindowIsAProtocolError() throws {
        var server = Machine(role: .server)
        let id = YamuxStreamID(1)
        _ = server.receive(.windowUpdate(id, flags: .syn, delta: 0))
        XCTAssertEqual(
            streamEvent(server.receive(.data(id, length: UInt32(YamuxWindow.initial))))?.deliverBytes,
            YamuxWindow.initial)
        assertSessionError(server.receive(.data(id, length: 1))) {
            if case .receiveWindowExceeded = $0 { return true } else { return false }
        }
    }

    /// Partial reads still refresh the window: credit accumulates until half a window is consumed.
    func testPartialReadsStillSendWindowUpdates() throws {
        var server = Machine(role: .server)
        let id = YamuxStreamID(1)
        _ = server.receive(.windowUpdate(id, flags: .syn, delta: 0))
        _ = server.receive(.data(id, length: 200_000))
        var updates: [YamuxFrameHeader] = []
        for _ in 0..<20 {
            if let update = server.consumed(id, 10_000, now: .now()) { updates.append(update) }
        }
        XCTAssertEqual(updates.count, 1)
        XCTAssertEqual(updates.first?.length, 140_000, "credit for the 14 reads that crossed half the window")
        XCTAssertEqual(server.state(of: id)?.receiveWindow.granted, YamuxWindow.initial - 200_000 + 140_000)
    }

    func testWindowAutoTunesWhenDrainedWithinTwoRoundTrips() throws {
        var server = Machine(role: .server, maximumStreamWindow: 1 << 20)
        let id = YamuxStreamID(1)
        _ = server.receive(.windowUpdate(id, flags: .syn, delta: 0))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)  // virtual: only differences matter
        let rtt = TimeAmount.milliseconds(10)
        _ = server.receive(.data(id, length: 131_072))
        let first = try XCTUnwrap(server.consumed(id, 131_072, now: start, roundTripTime: rtt))
        XCTAssertEqual(first.length, 131_072, "no history yet: plain credit")
        _ = server.receive(.data(id, length: 131_072))
        let second = try XCTUnwrap(server.consumed(id, 131_072, now: start + .milliseconds(5), roundTripTime: rtt))
        XCTAssertEqual(second.length, 131_072 + 262_144, "drained within 2 RTT: the window doubles")
        XCTAssertEqual(server.state(of: id)?.receiveWindow.target, 524_288)
        // Slow consumption does not grow it.
        _ = server.receive(.data(id, length: 262_144))
        let third = try XCTUnwrap(server.consumed(id, 262_144, now: start + .seconds(5), roundTripTime: rtt))
        XCTAssertEqual(third.length, 262_144)
    }

    func testWindowAutoTunesOnLoopbackWhereThePingRoundTripIsTiny() throws {
        // A loopback ping comes back in ~50 µs; the credit loop under load is milliseconds. Draining
        // half a window every 2 ms is fast (64 MiB/s): the window must still grow.
        var server = Machine(role: .server, maximumStreamWindow: 1 << 20)
        let id = YamuxStreamID(1)
        _ = server.receive(.windowUpdate(id, flags: .syn, delta: 0))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)  // virtual: only differences matter
        let rtt = TimeAmount.microseconds(50)
        _ = server.receive(.data(id, length: 131_072))
        _ = try XCTUnwrap(server.consumed(id, 131_072, now: start, roundTripTime: rtt))
        _ = server.receive(.data(id, length: 131_072))
        let second = try XCTUnwrap(server.consumed(id, 131_072, now: start + .milliseconds(2), roundTripTime: rtt))
        XCTAssertEqual(second.length, 131_072 + 262_144, "drained within 2 × the tuning floor: the window doubles")
        XCTAssertEqual(server.state(of: id)?.receiveWindow.target, 524_288)
        // Half a window per 100 ms (1.3 MB/s) is slow: no growth.
        _ = server.receive(.data(id, length: 262_144))
        let third = try XCTUnwrap(
            server.consumed(id, 262_144, now: start + .milliseconds(102), roundTripTime: rtt))
        XCTAssertEqual(third.length, 262_144)
        XCTAssertEqual(server.state(of: id)?.receiveWindow.target, 524_288)
    }

    func testWindowUpdateOverflowIsAProtocolError() throws {
        var client = Machine(role: .client)
        let (id, _) = try client.open()
        assertSessionError(client.receive(.windowUpdate(id, delta: UInt32(Int32.max)))) {
            if case .windowOverflow = $0 { return true } else { return false }
        }
    }

    func testPingIsAnsweredWithTheSameOpaqueValue() {
        var server = Machine(role: .server)
        XCTAssertEqual(server.receive(.ping(flags: .syn, opaque: 42)), .pingRequest(reply: .ping(flags: .ack, opaque: 42)))
        XCTAssertEqual(server.receive(.ping(flags: .ack, opaque: 42)), .pingReply(opaque: 42))
    }

    func testDataOnStreamZeroIsAProtocolError() {
        var server = Machine(role: .server)
        assertSessionError(server.receive(.data(.session, length: 1))) {
            if case .frameOnWrongStream = $0 { return true } else { return false }
        }
    }

    func testClosedByApplicationDiscardsAndCreditsInbound() throws {
        var server = Machine(role: .server)
        let id = YamuxStreamID(1)
        _ = server.receive(.windowUpdate(id, flags: .syn, delta: 0))
        _ = server.accept(id)
        XCTAssertNil(server.stopReading(id, unreadBytes: 0))
        let event = try XCTUnwrap(streamEvent(server.receive(.data(id, length: 200_000))))
        XCTAssertEqual(event.deliverBytes, 0)
        XCTAssertEqual(event.discardBytes, 200_000)
        XCTAssertEqual(event.windowUpdate?.length, 200_000, "a closed reader must not stall the peer")
    }

    func testEachFrameCarriesTheLocalEndKeptInItsSlot() throws {
        var server = Machine(role: .server)
        let id = YamuxStreamID(1)
        var openedLocalEnd: String? = "stale"
        let opened = try XCTUnwrap(
            streamEvent(server.receive(.windowUpdate(id, flags: .syn, delta: 0), localEnd: &openedLocalEnd)))
        XCTAssertTrue(opened.opened)
        XCTAssertNil(openedLocalEnd, "a stream the frame opened has no local end yet")
        XCTAssertTrue(server.setLocalEnd("end of 1", for: id))
        _ = server.accept(id)
        var localEnd: String?
        let data = try XCTUnwrap(streamEvent(server.receive(.data(id, length: 5), localEnd: &localEnd)))
        XCTAssertEqual(localEnd, "end of 1")
        XCTAssertEqual(data.payload, .deliver(5))
        XCTAssertFalse(server.setLocalEnd("x", for: YamuxStreamID(3)), "no slot for a stream never opened")
    }

    func testASlotLivesWhileItsStateOrItsLocalEndDoes() throws {
        var server = Machine(role: .server)
        let id = YamuxStreamID(1)
        _ = server.receive(.windowUpdate(id, flags: .syn, delta: 0))
        server.setLocalEnd("channel", for: id)
        _ = server.accept(id)
        // Reset on the wire: the state goes, the local end (still delivering) keeps the slot.
        var localEnd: String?
        let reset = try XCTUnwrap(streamEvent(server.receive(.windowUpdate(id, flags: .rst, delta: 0), localEnd: &localEnd)))
        XCTAssertEqual(reset.ending, .reset)
        XCTAssertEqual(localEnd, "channel")
        XCTAssertNil(server.state(of: id))
        XCTAssertEqual(server.localEnd(of: id), "channel")
        XCTAssertEqual(server.inboundStreamCount, 0)
        XCTAssertEqual(server.receive(.data(id, length: 3)), .ignore(payloadBytes: 3), "late frames are dropped")
        server.setLocalEnd(nil, for: id)
        XCTAssertEqual(server.slotCount, 0)

        // Local end gone first: the state lingers until both FINs, then the slot goes.
        let id2 = YamuxStreamID(3)
        _ = server.receive(.windowUpdate(id2, flags: .syn, delta: 0))
        server.setLocalEnd("relay", for: id2)
        _ = server.accept(id2)
        server.setLocalEnd(nil, for: id2)
        XCTAssertEqual(server.slotCount, 1)
        XCTAssertEqual(try XCTUnwrap(server.finish(id2)).closed, false)
        let closed = try XCTUnwrap(streamEvent(server.receive(.windowUpdate(id2, flags: .fin, delta: 0))))
        XCTAssertEqual(closed.ending, .finishedAndClosed)
        XCTAssertEqual(server.slotCount, 0)
    }

    func testTheSendGrantSaysWhatIsLeftAndWhenTheStreamIsGone() throws {
        var client = Machine(role: .client)
        let (id, _) = try client.open()
        XCTAssertEqual(
            client.reserveSend(id, upTo: 1000),
            Machine.SendGrant(bytes: 1000, windowLeft: YamuxWindow.initial - 1000, streamGone: false))
        _ = client.reset(id)
        XCTAssertEqual(client.reserveSend(id, upTo: 1000), Machine.SendGrant(bytes: 0, windowLeft: 0, streamGone: true))
    }

    // MARK: Helpers

    private func streamEvent(_ result: Machine.InboundResult) -> Machine.StreamFrame? {
        if case .stream(let event) = result { return event }
        return nil
    }

    private func assertSessionError(
        _ result: Machine.InboundResult, file: StaticString = #filePath, line: UInt = #line,
        _ matches: (YamuxError.Kind) -> Bool
    ) {
        guard case .sessionError(let error) = result else {
            return XCTFail("expected a session error, got \(result)", file: file, line: line)
        }
        XCTAssertTrue(error.isProtocolViolation, file: file, line: line)
        XCTAssertTrue(matches(error.kind), "unexpected \(error)", file: file, line: line)
    }
}

/// The frame's actions read as the numbers the assertions compare.
extension YamuxStreamFrame {
    var deliverBytes: Int { if case .deliver(let n) = payload { n } else { 0 } }
    var discardBytes: Int { if case .discard(let n) = payload { n } else { 0 } }
    var remoteFinished: Bool { ending == .finished || ending == .finishedAndClosed }
    var closed: Bool { ending == .finishedAndClosed }
    var reset: Bool { ending == .reset }
}
