import EventSummaries

/// The events a link's peer can cause at will. The multiplexer logs each at debug level, counts it
/// in a `YamuxPeerEventTally` and writes the tally's summary at most once per
/// `YamuxConfiguration.peerEventSummaryInterval`.
///
/// Why: a line per event lets the peer write our log. Measured before: a peer that opened and
/// reset streams in a loop made runtime-manager write 151,764 warning lines in 10 s (60 MB in
/// 16 s in another run). One client that goes away mid-session is normal, and a thousand in a
/// second is worth one line, not a thousand.
public enum YamuxPeerEvent: Int, SummarizedEvent {
    /// The peer reset a stream (RST).
    case streamResetByPeer
    /// A stream the peer opened was refused (over a limit, or going away).
    case streamRefused
    /// A frame for a stream that is already closed, dropped.
    case frameForClosedStream
    /// Link reads were paused: the peer asked for more answers than it read.
    case readsPaused

    public func phrase(_ count: Int, detail: String?) -> String {
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

/// A link's peer events between two summary lines (kept by the multiplexer on the link's loop).
public typealias YamuxPeerEventTally = EventTally<YamuxPeerEvent>
