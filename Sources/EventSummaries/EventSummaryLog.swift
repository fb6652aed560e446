import Logging
import NIOCore
import Synchronization

/// Events from any event loop, counted, and the timer that writes their summary at most once per
/// interval: "`lead` over the last 10 s: 1000 clients refused while the link was down". The
/// events themselves are the owner's debug lines.
///
/// One per process and kind of source (repeaterd's clients, runtime-manager's sessions); the
/// multiplexer keeps an `EventTally` of its own per link, on the link's loop, without a lock.
public final class EventSummaryLog<Event: SummarizedEvent>: Sendable {
    public static var defaultInterval: TimeAmount { .seconds(10) }

    private let tally = Mutex(EventTally<Event>())
    private let logger: Logger
    private let level: Logger.Level
    private let lead: String
    private let interval: TimeAmount
    private let eventLoop: any EventLoop
    /// The module that owns the events, as swift-log's `source` (a line says `[RuntimeManager]`,
    /// not `[EventSummaries]`).
    private let source: String

    /// - Parameters:
    ///   - lead: what the summary counts, its first words ("clients", "sessions").
    ///   - level: the summary's level: `warning` where an operator must see it, once.
    public init(
        logger: Logger, lead: String, level: Logger.Level = .warning, interval: TimeAmount = defaultInterval,
        eventLoop: any EventLoop, fileID: String = #fileID
    ) {
        self.source = fileID.split(separator: "/", maxSplits: 1).first.map(String.init) ?? "EventSummaries"
        self.logger = logger
        self.lead = lead
        self.level = level
        self.interval = interval
        self.eventLoop = eventLoop
    }

    /// Counts one event; the first of an interval schedules the summary at its end.
    public func record(_ event: Event, detail: String? = nil) {
        guard tally.withLock({ $0.record(event, detail: detail) }) else { return }
        eventLoop.scheduleTask(in: interval) { self.writeSummary() }
    }

    /// Writes what was counted since the last summary: at the end of its interval, and with
    /// `atExit` when the process stops, so nothing counted is lost ("… since the last summary, at exit").
    public func writeSummary(atExit: Bool = false) {
        guard let summary = tally.withLock({ $0.takeSummary() }) else { return }
        let period = atExit ? "since the last summary, at exit" : "over the last \(interval.intervalDescription)"
        logger.log(level: level, "\(lead) \(period): \(summary)", source: source)
    }
}

extension TimeAmount {
    /// "10 s", or "250 ms" for an interval that is not whole seconds: a summary line's period.
    public var intervalDescription: String {
        let milliseconds = nanoseconds / 1_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
    }
}

extension Logger {
    /// This logger writing at `info` even when its level is higher (`--log-level warning`): an
    /// access line is asked for by `--access-log`, whatever else the level keeps out.
    public var writingInfo: Logger {
        var logger = self
        if logger.logLevel > .info { logger.logLevel = .info }
        return logger
    }
}
