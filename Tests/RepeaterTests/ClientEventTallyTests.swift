import EventSummaries
import XCTest

@testable import Repeater

/// The summary of what clients caused at will, alone (no loop, no log).
final class ClientEventTallyTests: XCTestCase {
    func testCountsEachKindAndStartsAfreshAfterTheSummary() {
        var tally = EventTally<ClientEvent>()
        XCTAssertNil(tally.takeSummary(), "nothing counted, no line")
        XCTAssertTrue(tally.record(.refusedLinkDown), "the first starts the interval")
        for _ in 0..<999 { XCTAssertFalse(tally.record(.refusedLinkDown)) }
        XCTAssertFalse(tally.record(.refusedLimit))
        XCTAssertFalse(tally.record(.closedIdle))
        XCTAssertFalse(tally.record(.closedIdle))
        XCTAssertEqual(
            tally.takeSummary(),
            "1 client refused over the session limit (--max-sessions), 1000 clients refused while the link was down, "
                + "2 clients closed after no traffic for the idle timeout (--idle-timeout)")
        XCTAssertTrue(tally.isEmpty)
        XCTAssertNil(tally.takeSummary())
        XCTAssertTrue(tally.record(.refusedProxyHeader), "a new interval")
        XCTAssertEqual(tally.takeSummary(), "1 client refused without a valid PROXY header (--accept-proxy)")
    }

    func testEveryRefusalCauseIsTheMetricsValue() {
        XCTAssertEqual(ClientEvent.refusedLimit.rawValue, "refused_limit")
        XCTAssertEqual(ClientEvent.refusedLinkDown.rawValue, "refused_link_down")
        XCTAssertEqual(ClientEvent.refusedProxyHeader.rawValue, "refused_proxy_header")
        XCTAssertEqual(ClientEvent.closedIdle.rawValue, "idle")
    }
}
