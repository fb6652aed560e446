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
    /// Largest Data frame this side sends: small enough that streams interleave finely on the
    /// link (head-of-line latency), large enough that the 12-byte header is noise.
    public var maximumOutboundFrameSize = 16 * 1024
    /// Largest Data frame accepted from the peer (a sanity cap above any window we grant).
    public var maximumInboundFrameSize = UInt32(Int32.max)
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

    public init(role: YamuxRole) {
        self.role = role
    }
}
