/// An event an outsider can cause at will (a client, a link's peer), and how a summary line names
/// a count of them.
public protocol SummarizedEvent: CaseIterable, Hashable, Sendable {
    /// `count` of this event in words, with the last one's detail if one was given
    /// ("12 TLS handshakes failed (the last: certificate verify failed)").
    func phrase(_ count: Int, detail: String?) -> String
}

/// Events counted between two summary lines. No I/O, no clock: a value tested alone; the owner
/// logs each event at debug level, records it here and writes `takeSummary()` at most once per
/// interval (`EventSummaryLog` does that for events from any event loop).
///
/// Why: a line per event lets whoever causes the events write our log. Measured before: a link
/// peer that opened and reset streams in a loop made runtime-manager write 151,764 warning lines in
/// 10 s; during a link outage every client that connected to repeaterd was a warning line. One
/// line per interval with the counts tells an operator the same.
public struct EventTally<Event: SummarizedEvent>: Sendable, Hashable {
    private var counts: [Event: Int] = [:]
    private var lastDetails: [Event: String] = [:]
    private var total = 0

    public init() {}

    public var isEmpty: Bool { total == 0 }

    /// Counts one event. Returns true for the first since the last summary: the caller starts the
    /// interval at whose end it writes the summary.
    public mutating func record(_ event: Event, detail: String? = nil) -> Bool {
        counts[event, default: 0] += 1
        if let detail { lastDetails[event] = detail }
        total += 1
        return total == 1
    }

    /// What was counted, in the order of `Event.allCases` ("3 …, 1 …"), or nil if nothing was;
    /// counting starts afresh.
    public mutating func takeSummary() -> String? {
        guard total > 0 else { return nil }
        let parts = Event.allCases.compactMap { event in
            counts[event].map { event.phrase($0, detail: lastDetails[event]) }
        }
        counts = [:]
        lastDetails = [:]
        total = 0
        return parts.joined(separator: ", ")
    }
}
