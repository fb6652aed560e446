import NIOCore

/// The knobs of one yamux session. Defaults follow the reference implementation where it has
/// one, except that the receive window auto-tunes up to `maximumStreamWindow`.
public struct YamuxConfiguration: Sendable {
    public var role: YamuxRole
    /// Streams the peer may have open at once; SYNs past it are answered with RST.
    public var maximumInboundStreams = 16_384
    /// Streams opened by the peer whose initializer has not finished yet; SYNs past it get RST.
    public var acceptBacklog = 256
    /// Largest receive window a stream's auto-tuning may grant (bounds memory per stream).
    public var maximumStreamWindow = 16 * 1024 * 1024
    /// The receive window a stream keeps, in place of its auto-tuned one, while another stream on
    /// the link sent a small message within `streamActivityHorizon`: the most its bytes can queue
    /// in the link's buffers ahead of that stream's messages, which are one FIFO (the link's kernel
    /// buffers at both ends, and the receiver's queue). A stream alone, or beside other bulk
    /// streams, keeps its auto-tuned window (up to `maximumStreamWindow`), so a lone transfer keeps
    /// its speed. The default is the spec's initial window, the reference implementation's for
    /// every stream.
    public var sharedStreamWindow = YamuxWindow.initial
    /// How recently another stream must have sent a small message for a stream to count as
    /// sharing the link with it.
    public var streamActivityHorizon: TimeAmount = .milliseconds(100)
    /// Largest Data frame this side sends: one socket read of a bulk client (NIO reads at most
    /// 64 KiB), so a read goes out as one frame. At 16 KiB each read became four headers, four
    /// writes into the link and four into the far socket: relay CPU per GiB 1.24–1.51× the NIO
    /// floor's, 1.04–1.26× at 64 KiB (docs/bench/NOTES.md). Streams still take turns frame by
    /// frame; a small stream's frame waits behind at most the link's write watermark and one
    /// such frame (~50 µs on loopback).
    public var maximumOutboundFrameSize = 64 * 1024
    /// Largest Data frame accepted from the peer (a sanity cap above any window we grant).
    public var maximumInboundFrameSize = UInt32(Int32.max)
    /// Told of rare link events (a ping's round trip, a stream reset), for metrics; the yamux
    /// layer itself counts nothing.
    public var events = YamuxLinkEvents()
    /// The dialing side's name for this connection, sent as its first ping's opaque value (written
    /// when the link becomes active, keep-alive or not); nil on the accepting side, which takes
    /// the peer's (`YamuxMultiplexer.linkID`).
    public var announcedLinkID: YamuxLinkID?
    /// How often to ping the peer; nil turns keep-alive off.
    public var keepAliveInterval: TimeAmount? = .seconds(30)
    /// How long a ping may go unanswered before the link is declared dead and closed.
    public var keepAliveTimeout: TimeAmount = .seconds(10)
    /// A stream channel buffers at most this many outbound bytes before it reports unwritable.
    public var streamWriteHighWatermark = 64 * 1024
    /// ... and becomes writable again below this.
    public var streamWriteLowWatermark = 32 * 1024
    /// How long a locally closed stream may wait for the peer's FIN (or for window to drain its
    /// last bytes) before it is reset, so a peer that never closes cannot leak streams.
    public var streamCloseTimeout: TimeAmount = .seconds(60)
    /// Most control frames (window updates, SYN/ACK/FIN/RST, ping replies, Go Away) that may wait
    /// for a link that is not writable; past it the link is closed (`controlFlood`). Above what
    /// legitimate use queues: `controlAnswersPauseThreshold` plus four frames per stream
    /// (1,024 + 4 × 16,384 = 66,560 with the defaults). 12 bytes a frame (docs/SECURITY.md).
    public var maximumQueuedControlFrames = 100_000
    /// Answers the peer asked for (ping replies, refusals of its SYNs) that may wait for a link
    /// that is not writable before this side stops reading the link until they are written.
    public var controlAnswersPauseThreshold = 1_024
    /// Streams the peer may open in one read cycle of the link; past it the rest of what was read
    /// waits for the next turn of the event loop. A stream the peer opens and resets at once is
    /// only freed at the end of the turn (its channel's handlers are removed then), so without a
    /// cap one read of 4 × 64 KiB opened ~11,000 streams at once: runtime-manager grew by ~20 KiB
    /// each (the TLS handler's buffer alone is 16 KiB), +250 MiB.
    public var maximumInboundOpensPerReadCycle = 128
    /// Events a peer can cause at will (a stream it resets, a stream refused, a frame for a closed
    /// stream) are logged one by one at debug level only; at most one summary line per link per
    /// this interval says how many there were.
    public var peerEventSummaryInterval: TimeAmount = .seconds(10)

    public init(role: YamuxRole) {
        self.role = role
    }
}

/// Callbacks for events a link sees a few times a minute at most, never per message: what a
/// daemon counts through swift-metrics without the yamux module depending on it. Called on the
/// link's event loop.
public struct YamuxLinkEvents: Sendable {
    /// A keep-alive ping was answered after `roundTrip`.
    public var pingAnswered: (@Sendable (_ roundTrip: TimeAmount) -> Void)?
    /// A stream was reset: by this side (`byPeer` false: a failed socket, a close that timed out)
    /// or by the peer's RST.
    public var streamReset: (@Sendable (_ byPeer: Bool) -> Void)?
    /// The link was closed by this side because of the peer: `reason` is a metric label
    /// (`YamuxError.metricReason`: protocol_error, keepalive_timeout, control_flood).
    public var linkFailed: (@Sendable (_ reason: String) -> Void)?

    public init() {}
}
