import NIOCore

/// The pings of one link, as data: which are out and since when, and the smoothed round-trip
/// time their replies measured (for window auto-tuning). No I/O and no clock: the caller passes
/// the time, writes the frame it is given, and owns the timers (keep-alive interval, timeout).
public struct YamuxPingTracker: Sendable {
    /// What a ping reply meant.
    public struct Reply: Sendable {
        /// This ping's round trip.
        public var roundTrip: TimeAmount
        /// The promise given with the ping, to complete with `roundTrip`.
        public var promise: EventLoopPromise<TimeAmount>?
        /// No ping is out any more: a keep-alive timeout can be cancelled.
        public var allAnswered: Bool
    }

    /// Smoothed round-trip time (7/8 of the old value, 1/8 of each new sample, as TCP's SRTT);
    /// nil until the first reply.
    public private(set) var roundTripTime: TimeAmount?
    private var nextOpaque: UInt32 = 1
    private var outstanding: [UInt32: (sent: NIODeadline, promise: EventLoopPromise<TimeAmount>?)] = [:]

    /// `firstOpaque`: the first ping's opaque value (a dialer's `YamuxLinkID`); the rest follow it.
    public init(firstOpaque: UInt32 = 1) {
        nextOpaque = firstOpaque
    }

    /// Whether a ping is waiting for its reply (what a keep-alive timeout checks).
    public var isAwaitingReply: Bool { !outstanding.isEmpty }

    /// Records a ping sent at `now` and returns its frame.
    public mutating func ping(now: NIODeadline, promise: EventLoopPromise<TimeAmount>? = nil) -> YamuxFrameHeader {
        let opaque = nextOpaque
        nextOpaque &+= 1
        outstanding[opaque] = (now, promise)
        return .ping(flags: .syn, opaque: opaque)
    }

    /// A ping reply (ACK) arrived at `now`. Nil for a reply to no ping of ours (ignored: a peer
    /// may echo anything, and a late reply after a timeout is harmless).
    public mutating func receiveReply(opaque: UInt32, now: NIODeadline) -> Reply? {
        guard let pending = outstanding.removeValue(forKey: opaque) else { return nil }
        let sample = now - pending.sent
        roundTripTime = roundTripTime.map { .nanoseconds(($0.nanoseconds * 7 + sample.nanoseconds) / 8) } ?? sample
        return Reply(roundTrip: sample, promise: pending.promise, allAnswered: outstanding.isEmpty)
    }

    /// The link is gone: forgets every ping and returns their promises, to fail.
    public mutating func abandonAll() -> [EventLoopPromise<TimeAmount>] {
        let promises = outstanding.values.compactMap(\.promise)
        outstanding.removeAll()
        return promises
    }
}
