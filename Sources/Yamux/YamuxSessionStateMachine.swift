import NIOCore

/// The legality of a yamux session, as data: which streams exist, in which state, with which
/// windows, and whether either side is going away. It performs no I/O and never reads the clock:
/// every method returns what the caller (the multiplexer handler) must do — frames to send,
/// actions for a stream's local end, or a session error — so every rule can be tested with plain
/// calls.
///
/// Every stream has one slot, found with one lookup per frame: its protocol state and the
/// caller's `LocalEnd` (the multiplexer keeps the stream's endpoint and linger timer there). A
/// slot lives while either is there: the state goes when the stream is closed or reset on the
/// wire, the local end when the caller says so (`setLocalEnd(nil, for:)`); a local end may still
/// be finishing (delivering the last bytes) after its state is gone, and a state may linger after
/// its local end closed, until the peer's FIN or a timeout.
///
/// A stream's life, from either side:
///
/// ```
///            open() / SYN sent                         SYN received
///   idle ─────────────────────► synSent      idle ─────────────────► synReceived
///                                  │ ACK received                       │ accept() / ACK sent
///                                  ▼                                    ▼
///                             ┌──────────── established ◄───────────────┘
///           FIN sent ─────────┤                         ├──────── FIN received
///                             ▼                         ▼
///                       localClosed               remoteClosed
///                             └──── FIN received / FIN sent ────┘
///                                            ▼
///                                  closed (state removed)
///   RST sent or received, in any state: reset (state removed at once)
/// ```
///
/// Half-close is independent per direction: after our FIN we still receive (and credit) Data,
/// after theirs we still send.
/// Which side of the link this session is.
public enum YamuxRole: Sendable, Hashable {
    /// The dialing side: opens odd stream ids (the repeater).
    case client
    /// The accepting side: opens even stream ids (the runtime manager).
    case server
}

/// Where a Data frame's payload goes (a stream frame's step 3).
///
/// Top-level rather than nested in the generic state machine: a nested type's copies went through
/// generic value witnesses, per frame.
public enum YamuxPayloadRoute: Sendable, Hashable {
    case none
    /// To the stream's reader: that many bytes follow.
    case deliver(Int)
    /// Dropped: that many bytes follow, already credited (`StreamFrame.windowUpdate`) or not owed.
    case discard(Int)
}

/// What a frame did to a stream's life (a stream frame's step 4), applied once its payload is through.
public enum YamuxStreamEnding: Sendable, Hashable {
    case none
    /// The peer half-closed: no more inbound bytes after this frame.
    case finished
    /// The peer half-closed and our side had already: the stream is closed, its state gone.
    case finishedAndClosed
    /// The peer reset the stream; its state is gone.
    case reset
}

/// What one inbound frame means for a stream, as actions the handler applies in this order
/// (the stream's local end comes with it, from `YamuxSessionStateMachine.receive(_:localEnd:)`):
/// 1. `opened`: the peer opened the stream; make its local end (`setLocalEnd`), later `accept` it;
/// 2. `windowUpdate`: send it now;
/// 3. `payload`: route the bytes that follow;
/// 4. `ending`: once they are through, tell the local end;
/// 5. `sendMayResume`: our open was acknowledged or the send window grew — queued data may move.
///
/// Top-level, not nested in the generic state machine, and without the local end: copies of a
/// generic frame went through the runtime's value witnesses, per frame (seen in a profile).
public struct YamuxStreamFrame: Sendable, Hashable {
    public var streamID: YamuxStreamID
    public var opened = false
    public var windowUpdate: YamuxFrameHeader?
    public var payload: YamuxPayloadRoute = .none
    public var ending: YamuxStreamEnding = .none
    public var sendMayResume = false
}

/// The meaning of one inbound frame header.
public enum YamuxInboundResult: Sendable, Hashable {
    case stream(YamuxStreamFrame)
    /// Drop the frame's payload (if any); nothing else to do (e.g. a frame for a stream that closed).
    case ignore(payloadBytes: Int)
    /// Answer with this frame (RST for a refused SYN), dropping the payload.
    case refuse(YamuxFrameHeader, payloadBytes: Int, reason: String)
    /// Answer a ping with this frame.
    case pingRequest(reply: YamuxFrameHeader)
    /// A reply to one of our pings.
    case pingReply(opaque: UInt32)
    case goAway(code: UInt32)
    /// The session is broken: send Go Away with this code (where the link can still carry it) and close.
    case sessionError(YamuxError)
}

public struct YamuxSessionStateMachine<LocalEnd> {
    public typealias Role = YamuxRole

    public enum StreamPhase: Sendable, Hashable {
        case synSent
        case synReceived
        case established
    }

    public struct StreamState: Sendable {
        public var phase: StreamPhase
        public var localFinSent = false
        public var remoteFinReceived = false
        /// The application closed the stream: inbound Data is discarded (and credited) until the peer's FIN.
        public var discardingInbound = false
        public var sendWindow = YamuxSendWindow()
        public var receiveWindow: YamuxReceiveWindow

        public var isClosedBothWays: Bool { localFinSent && remoteFinReceived }
    }

    /// One stream's slot: its protocol state and the caller's local end.
    struct Slot {
        /// nil once the stream is closed or reset on the wire (the local end is still finishing).
        var state: StreamState?
        var localEnd: LocalEnd?
    }

    public typealias Payload = YamuxPayloadRoute
    public typealias Ending = YamuxStreamEnding

    public typealias StreamFrame = YamuxStreamFrame
    public typealias InboundResult = YamuxInboundResult

    /// What the send window allows on a stream now (`reserveSend`).
    public struct SendGrant: Sendable, Hashable {
        /// Bytes that may go out now; the window was charged for them.
        public var bytes: Int
        /// Window left after them.
        public var windowLeft: Int
        /// The stream's state is gone (reset or closed): nothing more will go out on it.
        public var streamGone: Bool
    }

    public let role: Role
    /// Streams the peer may have open at once; SYNs past it are refused with RST.
    public var maximumInboundStreams: Int
    /// Streams opened by the peer and not yet accepted by the application; SYNs past it are refused.
    public var acceptBacklog: Int
    /// Largest receive window auto-tuning may grant a stream.
    public var maximumStreamWindow: Int

    private var slots: [YamuxStreamID: Slot] = [:]
    public private(set) var inboundStreamCount = 0
    public private(set) var pendingAccepts = 0
    private var nextLocalID: UInt32
    /// Highest id the peer has opened: ids up to it existed once, ids beyond it never did.
    private var highestRemoteID: UInt32 = 0
    public private(set) var goAwaySent = false
    public private(set) var goAwayReceived: UInt32?

    public init(
        role: Role, maximumInboundStreams: Int = 4096, acceptBacklog: Int = 256,
        maximumStreamWindow: Int = YamuxWindow.initial
    ) {
        self.role = role
        self.maximumInboundStreams = maximumInboundStreams
        self.acceptBacklog = acceptBacklog
        self.maximumStreamWindow = maximumStreamWindow
        self.nextLocalID = role == .client ? 1 : 2
    }

    private func isLocallyInitiated(_ id: YamuxStreamID) -> Bool {
        id.isClientInitiated == (role == .client)
    }

    /// Whether an id was ever in use on this session (so a late frame for it is tolerated).
    private func wasEverOpened(_ id: YamuxStreamID) -> Bool {
        isLocallyInitiated(id) ? id.rawValue < nextLocalID : id.rawValue <= highestRemoteID
    }

    // MARK: Inbound

    /// Interprets one inbound frame header, without the stream's local end (tests, decoders).
    public mutating func receive(_ header: YamuxFrameHeader) -> InboundResult {
        var localEnd: LocalEnd?
        return receive(header, localEnd: &localEnd)
    }

    /// Interprets one inbound frame header. Payload bytes (for Data) are handled by the caller
    /// according to the result: delivered, or dropped. For a stream frame, `localEnd` is set to
    /// what the stream's slot keeps (nil for a stream this frame opened).
    public mutating func receive(_ header: YamuxFrameHeader, localEnd: inout LocalEnd?) -> InboundResult {
        switch header.type {
        case .ping:
            if header.flags.contains(.syn) {
                return .pingRequest(reply: .ping(flags: .ack, opaque: header.length))
            }
            if header.flags.contains(.ack) { return .pingReply(opaque: header.length) }
            return .ignore(payloadBytes: 0)
        case .goAway:
            goAwayReceived = header.length
            return .goAway(code: header.length)
        case .data, .windowUpdate:
            break
        }
        let id = header.streamID
        let payload = header.payloadLength
        guard id != .session else {
            return .sessionError(YamuxError(.frameOnWrongStream(type: header.type, stream: id)))
        }

        var frame = StreamFrame(streamID: id)
        var index = slots.index(forKey: id)
        if header.flags.contains(.syn) {
            if isLocallyInitiated(id) {
                return .sessionError(
                    YamuxError(.invalidStreamOpen(stream: id, reason: "the peer used an id of this side's parity")))
            }
            // Only an id in use now is a duplicate: SYNs need not arrive in id order (Go's
            // yamux hands out ids under a lock but sends each SYN from its own goroutine).
            if index != nil {
                return .sessionError(YamuxError(.invalidStreamOpen(stream: id, reason: "duplicate SYN")))
            }
            highestRemoteID = max(highestRemoteID, id.rawValue)
            if goAwaySent {
                return .refuse(.windowUpdate(id, flags: .rst, delta: 0), payloadBytes: payload, reason: "going away")
            }
            if inboundStreamCount >= maximumInboundStreams {
                return .refuse(
                    .windowUpdate(id, flags: .rst, delta: 0), payloadBytes: payload,
                    reason: "stream limit of \(maximumInboundStreams) reached")
            }
            if pendingAccepts >= acceptBacklog {
                return .refuse(
                    .windowUpdate(id, flags: .rst, delta: 0), payloadBytes: payload,
                    reason: "accept backlog of \(acceptBacklog) full")
            }
            slots[id] = Slot(
                state: StreamState(
                    phase: .synReceived, receiveWindow: YamuxReceiveWindow(maximumTarget: maximumStreamWindow)))
            index = slots.index(forKey: id)
            inboundStreamCount += 1
            pendingAccepts += 1
            frame.opened = true
        }

        // The slot is changed in place: one lookup per frame, no copy out and back.
        var gone = index == nil
        var failure: InboundResult?
        var closedBothWays = false
        if let index {
            Self.inPlace(&slots.values[index]) { slot in
                guard slot.state != nil else {
                    gone = true
                    return
                }
                localEnd = slot.localEnd
                failure = Self.apply(header, payload: payload, to: &slot.state!, frame: &frame)
                closedBothWays = slot.state!.isClosedBothWays
            }
        }
        guard let index, !gone else {
            if wasEverOpened(id) {
                // A late frame for a stream that is gone: the spec and the reference implementation drop it.
                return .ignore(payloadBytes: payload)
            }
            return .sessionError(
                YamuxError(.invalidStreamOpen(stream: id, reason: "\(header.type) for a stream that was never opened")))
        }
        if let failure { return failure }

        if header.flags.contains(.rst) {
            removeState(at: index)
            frame.ending = .reset
            frame.payload = payload > 0 ? .discard(payload) : .none
            frame.windowUpdate = nil
        } else if closedBothWays {
            removeState(at: index)
            frame.ending = .finishedAndClosed
        }
        return .stream(frame)
    }

    /// Runs `body` on a slot in place. Reading a slot through `Dictionary.Values`' getter copies
    /// all of it, local end included (generic value-witness calls that showed in repeaterd's
    /// profile, per frame); a mutating access does not.
    @inline(__always)
    private static func inPlace<Result>(_ slot: inout Slot, _ body: (inout Slot) -> Result) -> Result {
        body(&slot)
    }

    /// One frame's effect on its stream's state (ACK, window, data, FIN); a result only on failure.
    private static func apply(
        _ header: YamuxFrameHeader, payload: Int, to stream: inout StreamState, frame: inout StreamFrame
    ) -> InboundResult? {
        let id = header.streamID
        if header.flags.contains(.ack), stream.phase == .synSent {
            stream.phase = .established
            frame.sendMayResume = true
        }
        switch header.type {
        case .windowUpdate:
            if header.length > 0 {
                do {
                    try stream.sendWindow.increase(by: header.length, stream: id)
                } catch let error as YamuxError {
                    return .sessionError(error)
                } catch { preconditionFailure("unexpected \(error)") }
                frame.sendMayResume = true
            }
        case .data:
            if stream.remoteFinReceived && header.length > 0 {
                // Data after FIN: the peer broke its own half-close. Drop it, like a closed stream.
                return .ignore(payloadBytes: payload)
            }
            do {
                try stream.receiveWindow.receive(header.length, stream: id)
            } catch let error as YamuxError {
                return .sessionError(error)
            } catch { preconditionFailure("unexpected \(error)") }
            if stream.discardingInbound {
                if payload > 0 { frame.payload = .discard(payload) }
                if let delta = stream.receiveWindow.discard(payload) {
                    frame.windowUpdate = .windowUpdate(id, delta: delta)
                }
            } else if payload > 0 {
                frame.payload = .deliver(payload)
            }
        default:
            break
        }
        if header.flags.contains(.fin), !header.flags.contains(.rst) {
            stream.remoteFinReceived = true
            frame.ending = .finished
        }
        return nil
    }

    /// The stream's state is gone on the wire; its slot stays while the caller keeps a local end.
    @discardableResult
    private mutating func removeState(at index: Dictionary<YamuxStreamID, Slot>.Index) -> LocalEnd? {
        let id = slots.keys[index]
        var removed: StreamState?
        var localEnd: LocalEnd?
        Self.inPlace(&slots.values[index]) { slot in
            removed = slot.state
            localEnd = slot.localEnd
            slot.state = nil
        }
        guard let removed else { return localEnd }
        if !isLocallyInitiated(id) {
            inboundStreamCount -= 1
            if removed.phase == .synReceived { pendingAccepts -= 1 }
        }
        if localEnd == nil { slots.remove(at: index) }
        return localEnd
    }

    // MARK: Local ends

    /// Keeps `localEnd` in the stream's slot (nil: the local end is gone; the slot goes too once
    /// the stream's state has). Returns false for a stream with no slot.
    @discardableResult
    public mutating func setLocalEnd(_ localEnd: LocalEnd?, for id: YamuxStreamID) -> Bool {
        guard let index = slots.index(forKey: id) else { return false }
        let stateGone = Self.inPlace(&slots.values[index]) { slot in
            slot.localEnd = localEnd
            return slot.state == nil
        }
        if localEnd == nil, stateGone { slots.remove(at: index) }
        return true
    }

    /// The local end kept for a stream.
    public func localEnd(of id: YamuxStreamID) -> LocalEnd? {
        slots[id]?.localEnd
    }

    // MARK: Outbound

    /// Opens a new stream: returns its id and the SYN frame to send now (a Window Update, so the
    /// peer learns of the stream before any data, and may grant more than 256 KiB at once).
    public mutating func open() throws -> (YamuxStreamID, YamuxFrameHeader) {
        if let code = goAwayReceived { throw YamuxError(.goAwayReceived(code: code)) }
        if goAwaySent { throw YamuxError(.goAwaySent) }
        guard nextLocalID <= UInt32.max - 2 else { throw YamuxError(.streamIDsExhausted) }
        let id = YamuxStreamID(nextLocalID)
        nextLocalID += 2
        slots[id] = Slot(
            state: StreamState(phase: .synSent, receiveWindow: YamuxReceiveWindow(maximumTarget: maximumStreamWindow)))
        return (id, .windowUpdate(id, flags: .syn, delta: 0))
    }

    /// The application took an inbound stream: returns the ACK to send.
    public mutating func accept(_ id: YamuxStreamID) -> YamuxFrameHeader? {
        guard let index = slots.index(forKey: id) else { return nil }
        let accepted = Self.inPlace(&slots.values[index]) { slot in
            guard slot.state?.phase == .synReceived else { return false }
            slot.state!.phase = .established
            return true
        }
        guard accepted else { return nil }
        pendingAccepts -= 1
        return .windowUpdate(id, flags: .ack, delta: 0)
    }

    /// How many of `wanted` bytes may go out on the stream now; the send window is charged for them.
    public mutating func reserveSend(_ id: YamuxStreamID, upTo wanted: Int) -> SendGrant {
        guard let index = slots.index(forKey: id) else { return SendGrant(bytes: 0, windowLeft: 0, streamGone: true) }
        return Self.inPlace(&slots.values[index]) { slot in
            guard slot.state != nil else { return SendGrant(bytes: 0, windowLeft: 0, streamGone: true) }
            if slot.state!.localFinSent { return SendGrant(bytes: 0, windowLeft: 0, streamGone: false) }
            let bytes = slot.state!.sendWindow.take(upTo: wanted)
            return SendGrant(bytes: bytes, windowLeft: slot.state!.sendWindow.available, streamGone: false)
        }
    }

    /// The application consumed `count` bytes of a stream: returns a Window Update to send, if due.
    ///
    /// `now` is only read when an update is due (a clock read per consumed chunk showed in profiles),
    /// and so is `limit`: the window the stream may have while it shares the link
    /// (`YamuxReceiveWindow`'s "Sharing").
    public mutating func consumed(
        _ id: YamuxStreamID, _ count: Int, now: @autoclosure () -> NIODeadline, roundTripTime: TimeAmount? = nil,
        limit: (NIODeadline) -> Int = { _ in .max }
    ) -> YamuxFrameHeader? {
        guard let index = slots.index(forKey: id) else { return nil }
        let delta: UInt32? = Self.inPlace(&slots.values[index]) { slot in
            guard slot.state != nil else { return nil }
            let delta = slot.state!.receiveWindow.consume(
                count, now: now(), roundTripTime: roundTripTime, limit: limit)
            // No credit after the peer's FIN: it cannot send any more anyway.
            return slot.state!.remoteFinReceived ? nil : delta
        }
        return delta.map { .windowUpdate(id, delta: $0) }
    }

    /// Half-closes our direction: returns the FIN to send, and whether the stream is now fully
    /// closed (its state gone; `closedLocalEnd` is what its slot kept).
    public mutating func finish(_ id: YamuxStreamID) -> (frame: YamuxFrameHeader, closed: Bool, closedLocalEnd: LocalEnd?)? {
        guard let index = slots.index(forKey: id) else { return nil }
        let finished: (sent: Bool, closed: Bool) = Self.inPlace(&slots.values[index]) { slot in
            guard slot.state != nil, !slot.state!.localFinSent else { return (false, false) }
            slot.state!.localFinSent = true
            return (true, slot.state!.remoteFinReceived)
        }
        guard finished.sent else { return nil }
        let fin = YamuxFrameHeader.windowUpdate(id, flags: .fin, delta: 0)
        if finished.closed {
            return (fin, true, removeState(at: index))
        }
        return (fin, false, nil)
    }

    /// The application closed the stream while the peer may still send: discard (and credit) what
    /// arrives until the peer's FIN. Returns a Window Update crediting what was buffered, if due.
    public mutating func stopReading(_ id: YamuxStreamID, unreadBytes: Int) -> YamuxFrameHeader? {
        guard let index = slots.index(forKey: id) else { return nil }
        let delta: UInt32? = Self.inPlace(&slots.values[index]) { slot in
            guard slot.state != nil else { return nil }
            slot.state!.discardingInbound = true
            let delta = slot.state!.receiveWindow.discard(unreadBytes)
            return slot.state!.remoteFinReceived ? nil : delta
        }
        return delta.map { .windowUpdate(id, delta: $0) }
    }

    /// Resets a stream: returns the RST to send and what its slot kept (nil when the stream is already gone).
    public mutating func reset(_ id: YamuxStreamID) -> (frame: YamuxFrameHeader, localEnd: LocalEnd?)? {
        guard let index = slots.index(forKey: id),
            Self.inPlace(&slots.values[index], { slot in slot.state != nil })
        else { return nil }
        return (.windowUpdate(id, flags: .rst, delta: 0), removeState(at: index))
    }

    /// Starts going away: no new streams either way from now on. Returns the frame (once).
    public mutating func goAway(_ code: YamuxGoAwayCode = .normal) -> YamuxFrameHeader? {
        guard !goAwaySent else { return nil }
        goAwaySent = true
        return .goAway(code)
    }

    /// Forgets every stream (the link closed). Returns the local ends the slots kept.
    public mutating func closeAll() -> [LocalEnd] {
        let ends = slots.values.compactMap(\.localEnd)
        slots.removeAll()
        inboundStreamCount = 0
        pendingAccepts = 0
        return ends
    }

    public func state(of id: YamuxStreamID) -> StreamState? { slots[id]?.state }

    /// Streams with a slot (a state, a local end, or both).
    public var slotCount: Int { slots.count }
}

extension YamuxSessionStateMachine: Sendable where LocalEnd: Sendable {}
extension YamuxSessionStateMachine.Slot: Sendable where LocalEnd: Sendable {}
