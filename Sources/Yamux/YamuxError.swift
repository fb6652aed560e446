/// Everything that can go wrong in yamux, as one small Equatable value.
///
/// The `kind` says what happened; `offset` (when known) is the byte offset in the inbound link
/// stream where the offending frame started, so a log line or `muxcat decode` can point at it.
/// Two errors compare equal when their kinds are equal, so tests can match on the kind alone.
public struct YamuxError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// The version byte was not 0.
        case badVersion(UInt8)
        /// The type byte was not 0–3.
        case unknownFrameType(UInt8)
        /// A Data frame claimed more bytes than this side will ever accept in one frame.
        case dataFrameTooLarge(length: UInt32, limit: UInt32)
        /// The peer sent more Data than the stream's receive window allowed.
        case receiveWindowExceeded(stream: YamuxStreamID, length: UInt32, window: UInt32)
        /// A Window Update would push the send window past 2³¹−1.
        case windowOverflow(stream: YamuxStreamID, window: UInt32, delta: UInt32)
        /// A SYN for a stream id that is already in use, or with the wrong parity.
        case invalidStreamOpen(stream: YamuxStreamID, reason: String)
        /// A frame type that is not valid on this stream id (e.g. Data on stream 0, Ping on a stream).
        case frameOnWrongStream(type: YamuxFrameType, stream: YamuxStreamID)
        /// No ping reply arrived within the keep-alive timeout.
        case keepAliveTimeout(milliseconds: Int64)
        /// The peer said Go Away; new streams cannot be opened.
        case goAwayReceived(code: UInt32)
        /// This side sent Go Away; new streams cannot be opened.
        case goAwaySent
        /// The stream was reset (by the peer, or locally).
        case streamReset(stream: YamuxStreamID)
        /// The link under the session closed while the stream was still open.
        case linkClosed
        /// All stream ids of this side are used up.
        case streamIDsExhausted
        /// The peer refused the stream (RST in answer to our SYN).
        case streamRefused(stream: YamuxStreamID)
        /// The peer made this side queue more control frames than `limit` and did not read them.
        case controlFlood(limit: Int)
    }

    public var kind: Kind
    public var offset: Int?

    public init(_ kind: Kind, offset: Int? = nil) {
        self.kind = kind
        self.offset = offset
    }

    public static func == (lhs: YamuxError, rhs: YamuxError) -> Bool { lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(kind) }

    /// Whether this error breaks the whole session (answer: Go Away with protocol error, close the link).
    public var isProtocolViolation: Bool {
        switch kind {
        case .badVersion, .unknownFrameType, .dataFrameTooLarge, .receiveWindowExceeded, .windowOverflow,
            .invalidStreamOpen, .frameOnWrongStream:
            return true
        default:
            return false
        }
    }

    /// Whether a stream ended because its far end went away (reset) or its link closed: the link
    /// logs and counts these, so the stream's own user need not say it again.
    public var isPeerGone: Bool {
        switch kind {
        case .streamReset, .linkClosed: return true
        default: return false
        }
    }

    /// Every value `metricReason` takes.
    public static let metricReasons = ["protocol_error", "keepalive_timeout", "control_flood", "internal_error"]

    /// The label a link closed for this error carries in metrics (`reason`).
    public var metricReason: String {
        switch kind {
        case .controlFlood: return "control_flood"
        case .keepAliveTimeout: return "keepalive_timeout"
        default: return isProtocolViolation ? "protocol_error" : "internal_error"
        }
    }

    public var description: String {
        let at = offset.map { " at link byte offset \($0)" } ?? ""
        switch kind {
        case .badVersion(let v):
            return
                "yamux: bad version \(v) (expected 0)\(at); the peer does not speak yamux v0 — check that both ends of the link are yamux"
        case .unknownFrameType(let t):
            return "yamux: unknown frame type \(t) (expected 0–3)\(at); the link carries something other than yamux frames"
        case .dataFrameTooLarge(let length, let limit):
            return "yamux: Data frame of \(length) bytes exceeds the limit of \(limit)\(at); refused without buffering it"
        case .receiveWindowExceeded(let stream, let length, let window):
            return "yamux: stream \(stream) sent \(length) bytes but its receive window was \(window)\(at); the peer ignores flow control"
        case .windowOverflow(let stream, let window, let delta):
            return "yamux: window update of \(delta) on stream \(stream) overflows the window \(window) past 2^31-1\(at)"
        case .invalidStreamOpen(let stream, let reason):
            return "yamux: invalid open of stream \(stream)\(at): \(reason)"
        case .frameOnWrongStream(let type, let stream):
            return "yamux: \(type) frame is not allowed on stream \(stream)\(at)"
        case .keepAliveTimeout(let ms):
            return "yamux: no ping reply within \(ms) ms; the peer or the link is dead, closing the link"
        case .goAwayReceived(let code):
            let name = YamuxGoAwayCode(rawValue: code)?.description ?? "code \(code)"
            return "yamux: the peer sent Go Away (\(name)); no new streams on this link"
        case .goAwaySent:
            return "yamux: this side is going away; no new streams on this link"
        case .streamReset(let stream):
            return "yamux: stream \(stream) was reset"
        case .linkClosed:
            return "yamux: the link closed"
        case .streamIDsExhausted:
            return "yamux: stream ids exhausted on this link; open a new link"
        case .streamRefused(let stream):
            return "yamux: the peer refused stream \(stream) (RST)"
        case .controlFlood(let limit):
            return "yamux: the peer does not read the control frames it asks for (\(limit) queued, the limit); closing the link"
        }
    }
}
