import NIOCore
import Yamux

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One link as `/status.json` shows it: read on the link's event loop when the page asks (a
/// `submit` per loop), from state the link keeps anyway; nothing is counted per message for it.
public struct LinkStatus: Sendable {
    public enum State: String, Sendable {
        case up, connecting, down, stopped
    }

    public var index: Int
    public var state: State
    /// Where the link dials (the runtime manager's address).
    public var peer: String
    /// The name both ends log for the connection (`YamuxLinkID`), while up.
    public var linkID: String?
    /// Since when the link is up.
    public var upSince: NIODeadline?
    /// The last keep-alive round trip.
    public var roundTripTime: TimeAmount?
    /// Dials after the first.
    public var redials: Int
    public var streamsOpen: Int
    /// Bytes written to the link's socket and not yet taken by the kernel.
    public var queuedBytes: Int?
    /// `none`, `sent` or `received`.
    public var goAway: String
    /// Why the last dial failed or the link went down, while it is not up.
    public var lastFailure: String?
    /// What happened to the link lately, oldest first.
    public var events: [RecentLinkEvents.Event]

    public init(
        index: Int, state: State, peer: String, linkID: String? = nil, upSince: NIODeadline? = nil,
        roundTripTime: TimeAmount? = nil, redials: Int = 0, streamsOpen: Int = 0, queuedBytes: Int? = nil,
        goAway: String = "none", lastFailure: String? = nil, events: [RecentLinkEvents.Event] = []
    ) {
        self.index = index
        self.state = state
        self.peer = peer
        self.linkID = linkID
        self.upSince = upSince
        self.roundTripTime = roundTripTime
        self.redials = redials
        self.streamsOpen = streamsOpen
        self.queuedBytes = queuedBytes
        self.goAway = goAway
        self.lastFailure = lastFailure
        self.events = events
    }
}

/// What happened to a link lately (up, down, Go Away), with when: the page's event list. At most
/// `capacity` are kept per link, the oldest dropped: a link that flaps cannot grow it.
public struct RecentLinkEvents: Sendable {
    public struct Event: Sendable, Equatable {
        /// Wall-clock time, seconds since the epoch (the page shows it as a time of day).
        public var time: Double
        public var link: Int
        public var kind: String
        public var detail: String?

        public init(time: Double, link: Int, kind: String, detail: String?) {
            self.time = time
            self.link = link
            self.kind = kind
            self.detail = detail
        }
    }

    public static let capacity = 32
    public private(set) var events: [Event] = []

    public init() {}

    public mutating func record(_ event: Event) {
        if events.count == Self.capacity { events.removeFirst() }
        events.append(event)
    }
}

/// The wall clock, for times a person reads (NIO's deadlines are monotonic).
public enum WallClock {
    public static func secondsSinceEpoch() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
