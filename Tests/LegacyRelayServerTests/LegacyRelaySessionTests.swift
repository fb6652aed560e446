import NIOCore
import NIOEmbedded
import XCTest

@testable import LegacyRelayServer

/// The long poll of one old-style session, on virtual time: a poll with nothing to collect is
/// held for the whole poll wait and then answered empty; bytes from the runtime manager answer it
/// at once.
final class LegacyRelaySessionTests: XCTestCase {
    private let pollWait = TimeAmount.milliseconds(300)

    private func makeSession() throws -> (EmbeddedEventLoop, EmbeddedChannel, LegacyRelaySession) {
        let loop = EmbeddedEventLoop()
        let session = LegacyRelaySession(eventLoop: loop, pollWait: pollWait, bufferLimit: 1 << 20)
        let stream = EmbeddedChannel(handler: session, loop: loop)
        try stream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (loop, stream, session)
    }

    func testAPollWithNothingToCollectIsHeldForThePollWaitThenAnsweredEmpty() throws {
        let (loop, stream, session) = try makeSession()
        var answer: LegacySessionInbox.Decision?
        session.exchange(ByteBuffer()).assumeIsolated().whenSuccess { answer = $0 }
        loop.advanceTime(by: pollWait - .nanoseconds(1))
        XCTAssertNil(answer, "a poll is held for the whole poll wait")
        loop.advanceTime(by: .nanoseconds(1))
        XCTAssertEqual(answer, .answer([]), "then answered with nothing")
        _ = try? stream.finish()
    }

    func testAHeldPollIsAnsweredAsSoonAsBytesArrive() throws {
        let (loop, stream, session) = try makeSession()
        var answer: LegacySessionInbox.Decision?
        session.exchange(ByteBuffer()).assumeIsolated().whenSuccess { answer = $0 }
        loop.advanceTime(by: .milliseconds(100))
        XCTAssertNil(answer)
        try stream.writeInbound(ByteBuffer(string: "from the runtime manager"))
        XCTAssertEqual(answer, .answer([ByteBuffer(string: "from the runtime manager")]), "answered at the end of the read")
        // The poll wait running out later changes nothing.
        loop.advanceTime(by: pollWait)
        XCTAssertEqual(answer, .answer([ByteBuffer(string: "from the runtime manager")]))
        _ = try? stream.finish()
    }

    func testBytesThatArrivedBeforeAPollAreAnsweredWithoutWaiting() throws {
        let (_, stream, session) = try makeSession()
        try stream.writeInbound(ByteBuffer(string: "early"))
        var answer: LegacySessionInbox.Decision?
        session.exchange(ByteBuffer()).assumeIsolated().whenSuccess { answer = $0 }
        XCTAssertEqual(answer, .answer([ByteBuffer(string: "early")]), "no virtual time passed")
        _ = try? stream.finish()
    }
}
