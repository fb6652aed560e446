import Logging
import NIOCore
import Synchronization

/// Clients turned away at once or closed for silence, counted between two summary lines. No I/O, no clock: a value
/// tested alone (`ClientEvents` holds it and writes the line).
///
/// Why: without `--access-log`, a line per refused client lets anyone write repeaterd's log (during
/// a link outage every client that connects was a warning line). One line per interval with the
/// counts says the same to an operator.
struct ClientEventTally: Sendable, Hashable {
    private var counts = [Int](repeating: 0, count: ClientEvent.allCases.count)
    private var total = 0

    var isEmpty: Bool { total == 0 }

    /// Counts one event; true for the first since the last summary (the caller starts the
    /// interval at whose end it writes the summary).
    mutating func record(_ event: ClientEvent) -> Bool {
        counts[ClientEvent.allCases.firstIndex(of: event)!] += 1
        total += 1
        return total == 1
    }

    /// "1000 clients refused while the link was down, 3 clients refused over the session limit …",
    /// or nil if nothing was counted; counting starts afresh.
    mutating func takeSummary() -> String? {
        guard total > 0 else { return nil }
        let parts = zip(ClientEvent.allCases, counts).compactMap { event, count in
            count > 0 ? event.phrase(count) : nil
        }
        counts = [Int](repeating: 0, count: ClientEvent.allCases.count)
        total = 0
        return parts.joined(separator: ", ")
    }
}

/// The client events of every loop, and the timer that writes their summary at most once per
/// interval (a warning: an operator must see refusals, once, not once per client).
final class ClientEvents: Sendable {
    static let defaultInterval: TimeAmount = .seconds(10)

    private let tally = Mutex(ClientEventTally())
    private let logger: Logger
    private let interval: TimeAmount
    private let eventLoop: EventLoop

    init(logger: Logger, interval: TimeAmount = ClientEvents.defaultInterval, eventLoop: EventLoop) {
        self.logger = logger
        self.interval = interval
        self.eventLoop = eventLoop
    }

    func record(_ event: ClientEvent) {
        guard tally.withLock({ $0.record(event) }) else { return }
        eventLoop.scheduleTask(in: interval) { self.writeSummary() }
    }

    /// Writes what was counted since the last summary (also at shutdown, so nothing is lost).
    func writeSummary() {
        guard let summary = tally.withLock({ $0.takeSummary() }) else { return }
        let seconds = interval.nanoseconds / 1_000_000_000
        logger.warning("clients over the last \(seconds) s: \(summary)")
    }
}
