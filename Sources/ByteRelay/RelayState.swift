/// Where one relayed session stands, as one relay object sees it: a value with no I/O, so every
/// transition is tested alone (`RelayStateTests`), and the relays (`ChannelRelay`, Yamux's
/// `YamuxSocketRelay`) only act on what it says.
///
/// A relay joins two ends: `near`, the channel it is installed on (a client socket, a stream
/// channel, a pipe), and `far`, where that channel's bytes go (a yamux stream without a channel,
/// or the partner of a `ChannelRelay` on this or another event loop).
///
///     connecting ───both ends up───▶ relaying ───one end gone───▶ closing(gone:) ──the other──▶ closed
///         │                                                                                   ▲
///         └──one end gone before the other was up──▶ abandoned(gone:) ──the other gone────────┘
///
/// Each direction (near → far, far → near) moves on its own, so a half-closed session keeps
/// relaying the other way:
///
///     open ──its sender's end was read (FIN, input closed)──▶ ending ──passed on (FIN sent,
///     output closed after every byte before it)──▶ ended
///
/// `ending` is where a direction waits while bytes read before the end are still queued, or while
/// the far end is not up yet to take it.
public struct RelayState: Equatable, Sendable {
    public enum End: Equatable, Sendable {
        case near
        case far

        public var other: End { self == .near ? .far : .near }
    }

    public enum Phase: Equatable, Sendable {
        /// The far end is not up yet (a stream the peer opened whose socket is connecting, a
        /// partner on another loop not joined yet): bytes read wait.
        case connecting
        /// An end went away before the other was up: the other is refused or closed when it comes.
        case abandoned(gone: End)
        /// Both ends are up: bytes move both ways.
        case relaying
        /// One end is gone; the other finishes what it holds (writes queued to it, or a stream
        /// lingering for its peer's FIN).
        case closing(gone: End)
        /// Both ends are gone.
        case closed
    }

    public enum Flow: Equatable, Sendable {
        /// Bytes flow.
        case open
        /// The sender's end was read; it is not passed on yet.
        case ending
        /// The end was passed on: nothing more goes this way.
        case ended
    }

    public private(set) var phase: Phase
    /// Bytes the near end reads, bound for the far end.
    public private(set) var nearToFar: Flow = .open
    /// Bytes the far end sends, bound for the near end.
    public private(set) var farToNear: Flow = .open
    /// The end whose input ended first: a clean session's end names it (`RelayEndReason.closed`).
    public private(set) var finishedFirst: End?

    /// A relay that starts `.relaying` (both ends up already) or `.connecting`.
    public init(relaying: Bool) {
        phase = relaying ? .relaying : .connecting
    }

    /// The direction whose bytes come from `end`.
    public func flow(from end: End) -> Flow {
        end == .near ? nearToFar : farToNear
    }

    /// `end` has not gone away.
    public func isUp(_ end: End) -> Bool {
        switch phase {
        case .connecting, .relaying: return true
        case .abandoned(let gone), .closing(let gone): return gone != end
        case .closed: return false
        }
    }

    /// Bytes can be written to `end` now: both ends came up and `end` has not gone since.
    @inline(__always)
    public func canWrite(to end: End) -> Bool {
        switch phase {
        case .relaying: return true
        case .closing(let gone): return gone != end
        case .connecting, .abandoned, .closed: return false
        }
    }

    /// Bytes read from `end` are taken: the end it sends to is up (or still to come), and `end`'s
    /// own input has not been passed on as ended.
    @inline(__always)
    public func takesBytes(from end: End) -> Bool {
        isUp(end.other) && flow(from: end) != .ended
    }

    /// The end of the direction from `end` can be passed on now: it is `ending`, and the other
    /// end can be written to.
    public func mayPassOnEnd(from end: End) -> Bool {
        flow(from: end) == .ending && canWrite(to: end.other)
    }

    public enum StartAction: Equatable, Sendable {
        /// Both ends are up: move what waited.
        case relay
        /// The near end went away first: refuse the far one (a stream: RST).
        case refuseFar
        /// The far end went away first: close the near one.
        case closeNear
        /// Started already, or both are gone: nothing to do.
        case none
    }

    /// Both ends are up (the connecting one came up). Only `.connecting` moves (to `.relaying`); an
    /// abandoned relay stays until the end it is told to refuse or close has gone.
    public mutating func start() -> StartAction {
        switch phase {
        case .connecting:
            phase = .relaying
            return .relay
        case .abandoned(gone: .near): return .refuseFar
        case .abandoned(gone: .far): return .closeNear
        case .relaying, .closing, .closed: return .none
        }
    }

    /// `end` went away (a channel closed; a stream reset, refused or closed on the wire; a
    /// partner left). False if it was gone already.
    @discardableResult
    public mutating func endGone(_ end: End) -> Bool {
        switch phase {
        case .connecting: phase = .abandoned(gone: end)
        case .relaying: phase = .closing(gone: end)
        case .abandoned(let gone), .closing(let gone):
            guard gone != end else { return false }
            phase = .closed
        case .closed: return false
        }
        return true
    }

    /// The end of `end`'s input was read (FIN, input closed, or its channel closed): the direction
    /// from it is ending. The first end to get here is `finishedFirst`. False if it was not open.
    @discardableResult
    public mutating func inputEnded(at end: End) -> Bool {
        guard flow(from: end) == .open else { return false }
        setFlow(from: end, .ending)
        if finishedFirst == nil { finishedFirst = end }
        return true
    }

    /// The end of the direction from `end` was passed on (FIN sent, output closing after every
    /// byte before it). False if it was not `ending` (not read yet, or passed on already).
    @discardableResult
    public mutating func endPassedOn(from end: End) -> Bool {
        guard flow(from: end) == .ending else { return false }
        setFlow(from: end, .ended)
        return true
    }

    private mutating func setFlow(from end: End, _ flow: Flow) {
        if end == .near { nearToFar = flow } else { farToNear = flow }
    }
}
