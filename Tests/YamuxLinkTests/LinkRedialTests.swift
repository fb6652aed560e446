import Glibc
import Logging
import NIOCore
import NIOEmbedded
import XCTest
import Yamux

@testable import YamuxLink

/// The link's redial clock on virtual time: a stand-in connector refuses every dial, and the
/// test counts the dials as time moves on.
final class LinkRedialTests: XCTestCase {
    private final class RefusingConnector: @unchecked Sendable {  // on the embedded loop: the test's thread
        var dials = 0
        func connect(_ address: LinkTarget, _ link: Link) -> EventLoopFuture<Channel> {
            dials += 1
            return link.eventLoop.makeFailedFuture(IOError(errnoCode: ECONNREFUSED, reason: "connect"))
        }
    }

    private func makeLink(_ loop: EmbeddedEventLoop, _ connector: RefusingConnector) -> Link {
        var configuration = Link.Configuration(backend: .tcp(host: "127.0.0.1", port: 1), yamux: YamuxConfiguration(role: .client))
        configuration.initialBackoff = .milliseconds(100)
        configuration.maximumBackoff = .seconds(5)
        return Link(
            index: 0, eventLoop: loop, configuration: configuration, logger: Logger(label: "test"),
            connector: { address, link in connector.connect(address, link) }, jitter: { 1.0 })
    }

    func testRedialsBackOffExponentiallyUpToTheCapAndNotSooner() {
        let loop = EmbeddedEventLoop()
        let connector = RefusingConnector()
        let link = makeLink(loop, connector)
        link.start()
        loop.run()
        XCTAssertEqual(connector.dials, 1, "the first dial is at once")
        // 100 ms, then doubling: 200, 400, … up to the 5 s cap.
        var expectedDials = 1
        for delay in [100, 200, 400, 800, 1600, 3200, 5000, 5000] as [Int64] {
            loop.advanceTime(by: .milliseconds(delay) - .nanoseconds(1))
            XCTAssertEqual(connector.dials, expectedDials, "not redialed before its backoff of \(delay) ms")
            loop.advanceTime(by: .nanoseconds(1))
            expectedDials += 1
            XCTAssertEqual(connector.dials, expectedDials, "redialed at its backoff of \(delay) ms")
        }
        XCTAssertFalse(link.health.isUp)
        XCTAssertEqual(link.health.lastFailure.map { $0.contains("connection refused") }, true, "\(link.health)")
        _ = link.stop()
        loop.run()
    }

    func testAStoppedLinkDialsNoMore() {
        let loop = EmbeddedEventLoop()
        let connector = RefusingConnector()
        let link = makeLink(loop, connector)
        link.start()
        loop.advanceTime(by: .milliseconds(100))
        XCTAssertEqual(connector.dials, 2)
        var stopped = false
        link.stop().assumeIsolated().whenSuccess { stopped = true }
        loop.run()
        XCTAssertTrue(stopped)
        loop.advanceTime(by: .seconds(600))
        XCTAssertEqual(connector.dials, 2, "the pending redial was cancelled")
        XCTAssertEqual(link.health.lastFailure, "stopped")
    }

    /// The jitter scales each backoff (0.5–1), so repeaters that lost the same runtime manager
    /// do not redial in lockstep.
    func testJitterScalesTheBackoff() {
        XCTAssertEqual(Link.backoff(attempt: 1, initial: .milliseconds(100), maximum: .seconds(5), jitter: 0.5), .milliseconds(50))
        XCTAssertEqual(Link.backoff(attempt: 4, initial: .milliseconds(100), maximum: .seconds(5), jitter: 1), .milliseconds(800))
        XCTAssertEqual(Link.backoff(attempt: 40, initial: .milliseconds(100), maximum: .seconds(5), jitter: 0.5), .milliseconds(2500))
    }
}
