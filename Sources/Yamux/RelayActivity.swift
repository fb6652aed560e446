/// Whether a relayed session carried bytes lately: the relay (`YamuxSocketRelay`, or `RelayGlue`
/// in YamuxLink) sets it on every read, either way, and an idle sweep (repeaterd's
/// `IdleSweeper`) reads and clears it. A plain stored flag, because it is set per message;
/// confined to the session's event loop.
public final class RelayActivity {
    /// Set on every read since the sweeper last looked.
    public var sawTraffic = true
    /// Why the session's owner closes it on purpose (repeaterd's idle sweep: "idle"), set just
    /// before it does, so the end is counted under that cause and not as the client's close.
    public var closedOnPurpose: String?

    public init() {}
}

/// Why a relayed session ended, for the log and the metrics.
public enum RelayEndReason: Sendable, CustomStringConvertible {
    /// Both directions ended cleanly; `side` finished first (sent its FIN or closed).
    case closed(side: String)
    case error(side: String, Error)

    public var description: String {
        switch self {
        case .closed(let side): return "\(side) closed"
        case .error(let side, let error): return "\(side) failed: \(error)"
        }
    }
}
