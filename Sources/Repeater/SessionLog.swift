import ByteRelay
import EventSummaries
import Logging
import NIOCore
import Yamux
import YamuxLink

/// How a session ended, as the access log and `repeater_sessions_closed_total{cause}` name it.
struct SessionOutcome: Equatable, Sendable {
    /// The metric's label value: client, runtime_manager, idle, drain, link_down, reset.
    var cause: String
    /// Who ended it: `client`, `runtime_manager` or `repeater`.
    var endedBy: String

    /// Why an accepted session ended: closed on purpose (the idle sweep, the drain timeout), ended
    /// cleanly by the side that finished first, reset (a failed client socket, or the runtime
    /// manager's RST), or cut by its link going down.
    init(of reason: RelayEndReason, closedOnPurpose: String?, drained: Bool) {
        if let closedOnPurpose {
            self.init(cause: closedOnPurpose, endedBy: "repeater")
            return
        }
        switch reason {
        case .closed(let side):
            if drained {
                self.init(cause: "drain", endedBy: "repeater")
            } else {
                self.init(cause: side == "client" ? "client" : "runtime_manager", endedBy: side == "client" ? "client" : "runtime_manager")
            }
        case .error(let side, let error):
            let byClient = side == "client"
            if byClient {
                self.init(cause: "reset", endedBy: "client")
            } else if let error = error as? YamuxError, case .streamReset = error.kind {
                self.init(cause: "reset", endedBy: "runtime_manager")
            } else {
                self.init(cause: "link_down", endedBy: "runtime_manager")
            }
        }
    }

    init(cause: String, endedBy: String) {
        self.cause = cause
        self.endedBy = endedBy
    }
}

/// What a client can make repeaterd do at will, beside being served: be turned away at once (the
/// access log's `cause`, and `repeater_sessions_total{result}`'s value), or be closed for silence.
/// Without `--access-log` each is a debug line and a count in a summary line (`ClientEvents`).
enum ClientEvent: String, SummarizedEvent {
    case refusedLimit = "refused_limit"
    case refusedLinkDown = "refused_link_down"
    case refusedProxyHeader = "refused_proxy_header"
    /// The stream could not be opened for another reason (the link going away).
    case refusedOther = "refused_other"
    /// Closed by the idle sweep (`--idle-timeout`); with `--access-log` the session's own line says so.
    case closedIdle = "idle"

    /// How the summary line names `count` of them.
    func phrase(_ count: Int, detail: String?) -> String {
        let clients = count == 1 ? "1 client" : "\(count) clients"
        switch self {
        case .refusedLimit: return "\(clients) refused over the session limit (--max-sessions)"
        case .refusedLinkDown: return "\(clients) refused while the link was down"
        case .refusedProxyHeader: return "\(clients) refused without a valid PROXY header (--accept-proxy)"
        case .refusedOther: return "\(clients) refused: their stream could not be opened"
        case .closedIdle: return "\(clients) closed after no traffic for the idle timeout (--idle-timeout)"
        }
    }
}

/// Client events of every loop, summarized in one warning per 10 s at most ("clients over the last
/// 10 s: …"): an operator must see refusals, once, not once per client.
typealias ClientEvents = EventSummaryLog<ClientEvent>

/// A session's identity in its log lines, and its access-log line. Turned into metadata only when
/// a line is written: setting it on the `Logger` at every accept made swift-log's
/// `StreamLogHandler` format it there and then (2–3 % of repeaterd's CPU at full connection rate).
final class SessionLog {
    let logger: Logger
    /// The session's number (nil: refused before it got one, over `--max-sessions`).
    let session: UInt64?
    /// The client: the socket's peer, or the address its PROXY header announced (nil: unknown).
    var client: SocketAddress?
    /// The balancer the client came through (`--accept-proxy`).
    var via: SocketAddress?
    /// The address the client connected to (read only for the access line).
    let listener: SocketAddress?
    var stream: YamuxStreamID?
    /// Why the repeater closes the session on purpose (the idle sweep: "idle"), set just before
    /// it does, so the end is counted under that cause and not as the client's close.
    var closedOnPurpose: String?
    /// The link's name, as runtime-manager logs it too (`YamuxLinkID`).
    var link: YamuxLinkID?
    /// When the client was accepted; set only with `--access-log` (nil: no access line).
    let acceptedAt: NIODeadline?
    /// Where refusals and idle closes are counted for the summary line when there is no access log.
    let clientEvents: ClientEvents?

    init(
        logger: Logger, session: UInt64?, client: SocketAddress?, listener: SocketAddress?, acceptedAt: NIODeadline?,
        clientEvents: ClientEvents?
    ) {
        self.logger = logger
        self.session = session
        self.client = client
        self.listener = listener
        self.acceptedAt = acceptedAt
        self.clientEvents = clientEvents
    }

    var metadata: Logger.Metadata {
        var metadata: Logger.Metadata = ["client": "\(PeerDescription(address: client))"]
        if let session { metadata["session"] = .stringConvertible(session) }
        if let via { metadata["via"] = "\(via.commandLineForm)" }
        if let stream { metadata["stream"] = .stringConvertible(stream.rawValue) }
        if let link { metadata["link"] = "\(link)" }
        return metadata
    }

    func debug(_ message: @autoclosure () -> Logger.Message) { logger.debug(message(), metadata: metadata) }

    /// The access-log line of a session that ran: who, how much, how long and why it ended.
    func ended(_ outcome: SessionOutcome, activity: RelayActivity) {
        guard let acceptedAt else { return }
        let now = NIODeadline.now()
        var metadata = accessMetadata(now: now, since: acceptedAt)
        metadata["bytes_from_client"] = .stringConvertible(activity.bytesFromSocket)
        metadata["bytes_to_client"] = .stringConvertible(activity.bytesToSocket)
        if let acknowledged = activity.acknowledgedAt {
            metadata["connect_ms"] = .stringConvertible(Self.milliseconds(acknowledged - acceptedAt))
        }
        metadata["cause"] = "\(outcome.cause)"
        metadata["ended_by"] = "\(outcome.endedBy)"
        logger.writingInfo.info("session ended", metadata: metadata)
    }

    /// A client turned away at once. With `--access-log` it is the session's access line (info);
    /// without, a debug line and a count in the next summary line: a client must not be able to
    /// write a line per connection into the log.
    func refused(_ refusal: ClientEvent, _ why: String) {
        guard let acceptedAt else {
            logger.debug("refusing client: \(why)", metadata: metadata)
            clientEvents?.record(refusal)
            return
        }
        var metadata = accessMetadata(now: .now(), since: acceptedAt)
        metadata["bytes_from_client"] = .stringConvertible(0)
        metadata["bytes_to_client"] = .stringConvertible(0)
        metadata["cause"] = "\(refusal.rawValue)"
        metadata["ended_by"] = "repeater"
        metadata["reason"] = "\(why)"
        logger.writingInfo.info("session refused", metadata: metadata)
    }

    private func accessMetadata(now: NIODeadline, since acceptedAt: NIODeadline) -> Logger.Metadata {
        var metadata = self.metadata
        if let listener { metadata["listener"] = "\(listener.commandLineForm)" }
        metadata["duration_ms"] = .stringConvertible(Self.milliseconds(now - acceptedAt))
        return metadata
    }

    private static func milliseconds(_ amount: TimeAmount) -> Int64 {
        max(0, amount.nanoseconds / 1_000_000)
    }
}
