import ByteRelay
import NIOCore
import NIOEmbedded
import XCTest
import Yamux
import YamuxLink

@testable import Repeater

final class IdleSweeperTests: XCTestCase {
    private let timeout = TimeAmount.seconds(4)
    private var step: TimeAmount { .nanoseconds(timeout.nanoseconds / Int64(IdleSweeper.sweepsPerTimeout)) }

    private func makeSession(_ loop: EmbeddedEventLoop) throws -> (EmbeddedChannel, RelayActivity) {
        let channel = EmbeddedChannel(loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, RelayActivity())
    }

    func testASilentSessionIsClosedAfterTheTimeoutAndNotBefore() throws {
        let loop = EmbeddedEventLoop()
        var reported: [UInt64] = []
        let sweeper = IdleSweeper(eventLoop: loop, timeout: timeout) { id, _ in reported.append(id) }
        let (channel, activity) = try makeSession(loop)
        sweeper.add(7, channel: channel, activity: activity)

        loop.advanceTime(by: timeout)
        XCTAssertTrue(channel.isActive, "not closed before a whole timeout of silence")
        loop.advanceTime(by: step)
        XCTAssertFalse(channel.isActive, "closed within timeout + one sweep interval")
        XCTAssertEqual(reported, [7])
        XCTAssertEqual(sweeper.sessionCount, 0)
    }

    func testTrafficKeepsASessionOpenAndSilenceAfterItCountsFromTheLastByte() throws {
        let loop = EmbeddedEventLoop()
        let sweeper = IdleSweeper(eventLoop: loop, timeout: timeout) { _, _ in }
        let (talking, talkingActivity) = try makeSession(loop)
        let (silent, silentActivity) = try makeSession(loop)
        sweeper.add(1, channel: talking, activity: talkingActivity)
        sweeper.add(2, channel: silent, activity: silentActivity)

        // Traffic every half sweep interval for three timeouts.
        for _ in 0..<(3 * 2 * IdleSweeper.sweepsPerTimeout) {
            talkingActivity.sawTraffic = true
            loop.advanceTime(by: .nanoseconds(step.nanoseconds / 2))
        }
        XCTAssertTrue(talking.isActive)
        XCTAssertFalse(silent.isActive)

        // Then silence: closed between one timeout and one timeout plus a sweep after the last byte.
        talkingActivity.sawTraffic = true
        loop.advanceTime(by: .nanoseconds(timeout.nanoseconds - 1))
        XCTAssertTrue(talking.isActive)
        loop.advanceTime(by: step + step)
        XCTAssertFalse(talking.isActive)
    }

    func testARemovedSessionIsLeftAlone() throws {
        let loop = EmbeddedEventLoop()
        let sweeper = IdleSweeper(eventLoop: loop, timeout: timeout) { _, _ in XCTFail("no session is idle") }
        let (channel, activity) = try makeSession(loop)
        sweeper.add(1, channel: channel, activity: activity)
        sweeper.remove(1)
        loop.advanceTime(by: timeout * 3)
        XCTAssertTrue(channel.isActive)
        sweeper.stop()
    }

    /// The activity a sweeper reads is the one `ChannelRelay` marks, for bytes in either direction: a
    /// client that only downloads (sends nothing) is as alive as one that only uploads.
    func testBytesEitherWayThroughTheRelayKeepASessionOpen() throws {
        for clientSends in [true, false] {
            let direction = clientSends ? "client to runtime manager" : "runtime manager to client"
            let loop = EmbeddedEventLoop()
            let sweeper = IdleSweeper(eventLoop: loop, timeout: timeout) { _, _ in }
            let activity = RelayActivity()
            let (clientGlue, streamGlue) = ChannelRelay.matchedPair(
                first: ("client", .socket), second: ("stream", .socket), activity: activity)
            let client = EmbeddedChannel(handler: clientGlue, loop: loop)
            let stream = EmbeddedChannel(handler: streamGlue, loop: loop)
            for channel in [client, stream] { try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait() }
            sweeper.add(1, channel: client, activity: activity)
            let (sender, receiver) = clientSends ? (client, stream) : (stream, client)

            // A byte every half sweep interval for three timeouts.
            for _ in 0..<(3 * 2 * IdleSweeper.sweepsPerTimeout) {
                try sender.writeInbound(ByteBuffer(string: "x"))
                loop.advanceTime(by: .nanoseconds(step.nanoseconds / 2))
            }
            XCTAssertTrue(client.isActive, "\(direction): traffic must keep the session open")
            var relayed = 0
            while let bytes = try receiver.readOutbound(as: ByteBuffer.self) { relayed += bytes.readableBytes }
            XCTAssertEqual(relayed, 3 * 2 * IdleSweeper.sweepsPerTimeout, "\(direction): every byte is relayed")

            // Then silence: closed within a timeout and a sweep.
            loop.advanceTime(by: timeout + step)
            XCTAssertFalse(client.isActive, "\(direction): a silent session is closed")
            XCTAssertEqual(sweeper.sessionCount, 0)
        }
    }
}
