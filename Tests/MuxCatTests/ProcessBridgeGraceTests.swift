import NIOCore
import NIOEmbedded
import XCTest

@testable import MuxCat

/// `--exec`: a command whose stream is gone has `graceUntilTerminate` to exit on its own before
/// it is ended (SIGTERM, then SIGKILL: swift-subprocess's teardown sequence). The clock, on
/// virtual time; the real command's end is tested in ExecAndStdinTests.
final class ProcessBridgeGraceTests: XCTestCase {
    private final class Flag: @unchecked Sendable { var isSet = false }  // on the embedded loop: the test's thread

    func testTheCommandIsEndedAtTheGraceAfterItsStreamClosedAndNotBefore() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let ended = Flag()
        let grace = TimeAmount(ProcessBridge.graceUntilTerminate)
        ProcessBridge.afterGrace(of: channel, grace) { ended.isSet = true }
        loop.advanceTime(by: grace * 3)
        XCTAssertFalse(ended.isSet, "the clock starts when the stream closes, not before")
        try channel.close().wait()
        loop.run()
        loop.advanceTime(by: grace - .nanoseconds(1))
        XCTAssertFalse(ended.isSet, "not ended within its grace")
        loop.advanceTime(by: .nanoseconds(1))
        XCTAssertTrue(ended.isSet, "ended once its grace is over")
    }
}
