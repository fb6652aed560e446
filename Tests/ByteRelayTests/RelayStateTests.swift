import ByteRelay
import XCTest

/// `RelayState` alone: every transition of the lifecycle and of a direction, by plain calls.
final class RelayStateTests: XCTestCase {
    func testARelayThatConnectsStartsOnceAndThenRelays() {
        var state = RelayState(relaying: false)
        XCTAssertEqual(state.phase, .connecting)
        XCTAssertTrue(state.isUp(.near) && state.isUp(.far))
        XCTAssertFalse(state.canWrite(to: .far), "nothing moves before both ends are up")
        XCTAssertFalse(state.canWrite(to: .near))
        XCTAssertTrue(state.takesBytes(from: .near), "but bytes read meanwhile are kept, to wait")
        XCTAssertEqual(state.start(), .relay)
        XCTAssertEqual(state.phase, .relaying)
        XCTAssertTrue(state.canWrite(to: .far) && state.canWrite(to: .near))
        XCTAssertEqual(state.start(), .none, "a second start changes nothing")
        XCTAssertEqual(state.phase, .relaying)
    }

    func testAnEndGoneBeforeTheOtherWasUpIsRefusedOrClosedAtTheStart() {
        var nearGone = RelayState(relaying: false)
        XCTAssertTrue(nearGone.endGone(.near))
        XCTAssertEqual(nearGone.phase, .abandoned(gone: .near))
        XCTAssertEqual(nearGone.start(), .refuseFar, "the socket went away while connecting: refuse the stream")
        XCTAssertEqual(nearGone.phase, .abandoned(gone: .near), "until the refused end is gone too")
        XCTAssertFalse(nearGone.endGone(.near), "gone already")
        XCTAssertTrue(nearGone.endGone(.far))
        XCTAssertEqual(nearGone.phase, .closed)
        XCTAssertEqual(nearGone.start(), .none)

        var farGone = RelayState(relaying: false)
        farGone.endGone(.far)
        XCTAssertEqual(farGone.start(), .closeNear, "the link went away while the socket connected")
        XCTAssertFalse(farGone.canWrite(to: .near))
        farGone.endGone(.near)
        XCTAssertEqual(farGone.phase, .closed)
    }

    func testOneEndGoneLeavesTheOtherClosingThenBothClosed() {
        for gone in [RelayState.End.near, .far] {
            var state = RelayState(relaying: true)
            XCTAssertTrue(state.endGone(gone))
            XCTAssertEqual(state.phase, .closing(gone: gone))
            XCTAssertFalse(state.isUp(gone))
            XCTAssertTrue(state.isUp(gone.other))
            XCTAssertFalse(state.canWrite(to: gone))
            XCTAssertTrue(state.canWrite(to: gone.other), "the end still up finishes what it holds")
            XCTAssertFalse(state.takesBytes(from: gone.other), "nothing read goes to an end that is gone")
            XCTAssertFalse(state.endGone(gone), "reported twice: no change")
            XCTAssertEqual(state.phase, .closing(gone: gone))
            XCTAssertTrue(state.endGone(gone.other))
            XCTAssertEqual(state.phase, .closed)
            XCTAssertFalse(state.isUp(.near) || state.isUp(.far))
            XCTAssertFalse(state.endGone(.near) || state.endGone(.far))
        }
    }

    func testADirectionEndsThenPassesItsEndOnOnce() {
        var state = RelayState(relaying: true)
        XCTAssertEqual(state.nearToFar, .open)
        XCTAssertFalse(state.endPassedOn(from: .near), "no end to pass on before one was read")
        XCTAssertTrue(state.inputEnded(at: .near))
        XCTAssertEqual(state.nearToFar, .ending)
        XCTAssertEqual(state.farToNear, .open, "the other direction is untouched: a half-close")
        XCTAssertTrue(state.takesBytes(from: .far))
        XCTAssertTrue(state.mayPassOnEnd(from: .near))
        XCTAssertFalse(state.inputEnded(at: .near), "read twice: no change")
        XCTAssertTrue(state.endPassedOn(from: .near))
        XCTAssertEqual(state.nearToFar, .ended)
        XCTAssertFalse(state.takesBytes(from: .near), "nothing after the end")
        XCTAssertFalse(state.mayPassOnEnd(from: .near), "passed on once")
        XCTAssertFalse(state.endPassedOn(from: .near))
    }

    func testAnEndReadWhileConnectingWaitsUntilTheOtherEndIsUp() {
        var state = RelayState(relaying: false)
        state.inputEnded(at: .near)
        XCTAssertFalse(state.mayPassOnEnd(from: .near), "the far end is not up to take it")
        XCTAssertEqual(state.start(), .relay)
        XCTAssertTrue(state.mayPassOnEnd(from: .near))
    }

    func testAnEndCannotBePassedOnToAnEndThatIsGone() {
        var state = RelayState(relaying: true)
        state.inputEnded(at: .far)
        state.endGone(.near)
        XCTAssertFalse(state.mayPassOnEnd(from: .far))
        XCTAssertEqual(state.farToNear, .ending)
    }

    func testTheEndToFinishFirstIsTheOneNamed() {
        var farFirst = RelayState(relaying: true)
        farFirst.inputEnded(at: .far)
        farFirst.inputEnded(at: .near)
        XCTAssertEqual(farFirst.finishedFirst, .far)

        var nearFirst = RelayState(relaying: true)
        XCTAssertNil(nearFirst.finishedFirst)
        nearFirst.inputEnded(at: .near)
        nearFirst.endPassedOn(from: .near)
        nearFirst.inputEnded(at: .far)
        XCTAssertEqual(nearFirst.finishedFirst, .near)
    }
}
