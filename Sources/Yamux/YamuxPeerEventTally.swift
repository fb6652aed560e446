/// Counts of the events a link's peer can cause at will, between two summary lines. No I/O, no
/// clock: the multiplexer logs each event at debug level, records it here, and writes `summary`
/// at most once per `YamuxConfiguration.peerEventSummaryInterval`.
///
/// Why: a line per event lets the peer write our log. Measured before: a peer that opened and
/// reset streams in a loop made runtime-manager write 151,764 warning lines in 10 s (60 MB in
/// 16 s in another run). One client that goes away mid-session is normal, and a thousand in a
/// second is worth one line, not a thousand.
public struct YamuxPeerEventTally: Sendable, Hashable {
    public enum Event: Int, CaseIterable, Sendable {
        /// The peer reset a stream (RST).
        case streamResetByPeer
        /// A stream the peer opened was refused (over a limit, or going away).
        case streamRefused
        /// A frame for a stream that is already closed, dropped.
        case frameForClosedStream
        /// Link reads were paused: the peer asked for more answers than it read.
        case readsPaused

        /// How the summary names `count` of them, with the last one's detail.
        func phrase(_ count: Int, detail: String?) -> String {
            let last = detail.map { " (the last: \($0))" } ?? ""
            switch self {
            case .streamResetByPeer: return "\(count) stream\(count == 1 ? "" : "s") reset by the peer"
            case .streamRefused: return "\(count) stream\(count == 1 ? "" : "s") opened by the peer refused\(last)"
            case .frameForClosedStream: return "\(count) frame\(count == 1 ? "" : "s") for closed streams dropped"
            case .readsPaused:
                return "link reads paused \(count) time\(count == 1 ? "" : "s") (the peer asks for answers it does not read)"
            }
        }
    }

    private var counts = [Int](repeating: 0, count: Event.allCases.count)
    private var lastDetails = [String?](repeating: nil, count: Event.allCases.count)
    private var total = 0

    public init() {}

    /// Counts one event. Returns true for the first since the last summary: the caller starts the
    /// interval at whose end it writes the summary.
    public mutating func record(_ event: Event, detail: String? = nil) -> Bool {
        counts[event.rawValue] += 1
        if let detail { lastDetails[event.rawValue] = detail }
        total += 1
        return total == 1
    }

    public var isEmpty: Bool { total == 0 }

    /// The summary of what was counted (nil if nothing was), and a fresh start.
    public mutating func takeSummary() -> String? {
        guard total > 0 else { return nil }
        let parts = Event.allCases.compactMap { event in
            counts[event.rawValue] > 0 ? event.phrase(counts[event.rawValue], detail: lastDetails[event.rawValue]) : nil
        }
        counts = [Int](repeating: 0, count: Event.allCases.count)
        lastDetails = [String?](repeating: nil, count: Event.allCases.count)
        total = 0
        return parts.joined(separator: ", ")
    }
}
