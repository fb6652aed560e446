import EventSummaries

/// What a client (or anyone who can reach the listener) can make a session end with at will: a
/// debug line each, and without `--access-log` a count in one warning per 10 s at most
/// (`SessionEvents`); with it, the session's access line says the same in `cause` and `reason`.
///
/// Why: each was a warning line per session, so whoever could open connections could write the
/// log (a TLS scanner, a client without a certificate retrying, a balancer's plain TCP checks).
enum SessionEvent: String, SummarizedEvent {
    case refusedProxyHeader = "refused_proxy_header"
    case handshakeTimeout = "handshake_timeout"
    case handshakeFailed = "tls_failed"
    /// A message too large, or one that stopped arriving: answered with an error, then closed.
    case badRequest = "bad_request"
    /// A message that could not be parsed: answered with an error, the session goes on.
    case malformedMessage = "malformed_message"
    /// The client closed in the middle of a message.
    case truncatedMessage = "truncated_message"
    case idle
    /// Anything else that ended a session (the last one's text is in the summary).
    case error

    func phrase(_ count: Int, detail: String?) -> String {
        let sessions = count == 1 ? "1 session" : "\(count) sessions"
        let last = detail.map { " (the last: \($0))" } ?? ""
        switch self {
        case .refusedProxyHeader: return "\(sessions) refused without a valid PROXY header (--accept-proxy)\(last)"
        case .handshakeTimeout: return "\(sessions) closed with the TLS handshake not finished in time\(last)"
        case .handshakeFailed: return "\(sessions) closed for a failed TLS handshake\(last)"
        case .badRequest: return "\(sessions) closed for a message too large or stalled\(last)"
        case .malformedMessage: return "\(count) malformed message\(count == 1 ? "" : "s") answered with an error\(last)"
        case .truncatedMessage: return "\(sessions) ended by the client in the middle of a message"
        case .idle: return "\(sessions) closed after no traffic for the idle timeout (--idle-timeout)"
        case .error: return "\(sessions) ended by an error\(last)"
        }
    }
}

/// Session events of every loop, summarized in one warning per 10 s at most ("sessions over the
/// last 10 s: …").
typealias SessionEvents = EventSummaryLog<SessionEvent>
