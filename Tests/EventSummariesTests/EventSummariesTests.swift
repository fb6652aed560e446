import EventSummaries
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import XCTest

private enum Knock: String, SummarizedEvent {
    case door, window

    func phrase(_ count: Int, detail: String?) -> String {
        "\(count) \(rawValue) knock\(count == 1 ? "" : "s")" + (detail.map { " (the last: \($0))" } ?? "")
    }
}

/// The tally alone: counts, order, details, a fresh start.
final class EventTallyTests: XCTestCase {
    func testCountsEachKindInDeclarationOrderWithTheLastDetail() {
        var tally = EventTally<Knock>()
        XCTAssertTrue(tally.isEmpty)
        XCTAssertNil(tally.takeSummary(), "nothing counted, no line")
        XCTAssertTrue(tally.record(.window, detail: "first"), "the first event starts the interval")
        XCTAssertFalse(tally.record(.window, detail: "second"))
        XCTAssertFalse(tally.record(.window))
        for _ in 0..<10 { XCTAssertFalse(tally.record(.door)) }
        XCTAssertFalse(tally.isEmpty)
        XCTAssertEqual(tally.takeSummary(), "10 door knocks, 3 window knocks (the last: second)")
        XCTAssertTrue(tally.isEmpty)
        XCTAssertNil(tally.takeSummary(), "counting starts afresh")
        XCTAssertTrue(tally.record(.door), "a new interval")
        XCTAssertEqual(tally.takeSummary(), "1 door knock", "details do not outlive their interval")
    }

    func testIntervalDescription() {
        XCTAssertEqual(TimeAmount.seconds(10).intervalDescription, "10 s")
        XCTAssertEqual(TimeAmount.milliseconds(250).intervalDescription, "250 ms")
    }
}

/// The summary log on a real event loop: events from many threads, one line per interval.
final class EventSummaryLogTests: XCTestCase {
    func testEventsFromManyThreadsGiveOneLinePerInterval() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let lines = CapturedLines()
        let logger = Logger(label: "test") { _ in lines }
        let summaries = EventSummaryLog<Knock>(
            logger: logger, lead: "visitors", interval: .milliseconds(300), eventLoop: group.next())

        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<250 { summaries.record(.door) }
        }
        summaries.record(.window, detail: "at night")
        XCTAssertEqual(lines.all, [], "nothing before the interval ends")
        let deadline = Date().addingTimeInterval(5)
        while lines.all.isEmpty, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertEqual(lines.all, ["warning visitors over the last 300 ms: 1000 door knocks, 1 window knock (the last: at night)"])

        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertEqual(lines.all.count, 1, "no events, no line")
        summaries.record(.door)
        summaries.writeSummary(atExit: true)
        XCTAssertEqual(lines.all.last, "warning visitors since the last summary, at exit: 1 door knock", "written at once when asked")
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertEqual(lines.all.count, 2, "the interval's timer finds nothing left to write")
        XCTAssertEqual(lines.sources.withLock { $0 }, ["EventSummariesTests", "EventSummariesTests"], "the owner's module is the source")
    }

    func testWritingInfoRaisesNoOtherLevel() {
        var logger = Logger(label: "test") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = .warning
        XCTAssertEqual(logger.writingInfo.logLevel, .info, "access lines are written under --log-level warning")
        logger.logLevel = .debug
        XCTAssertEqual(logger.writingInfo.logLevel, .debug, "a finer level is kept")
    }
}

/// A log handler that keeps "level message" lines.
private final class CapturedLines: LogHandler, @unchecked Sendable {
    private let store = Mutex<[String]>([])
    let sources = Mutex<[String]>([])
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var all: [String] { store.withLock { $0 } }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        store.withLock { $0.append("\(event.level) \(event.message)") }
        sources.withLock { $0.append(event.source) }
    }
}
