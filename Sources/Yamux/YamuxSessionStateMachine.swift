import NIOCore

/// The legality of a yamux session, as data: which streams exist, in which state, with which
/// windows, and whether either side is going away. It performs no I/O: every method returns what
/// the caller (the multiplexer handler) must do — frames to send, events for stream channels, or a
/// session error — so every rule can be tested with plain calls.
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
public struct YamuxSessionStateMachine: Sendable {
    public enum Role: Sendable, Hashable {
        /// The dialing side: opens odd stream ids (the repeater).
        case client
        /// The accepting side: opens even stream ids (the runtime manager).
        case server
    }

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

    /// What one inbound frame means for a stream.
    public struct StreamEvent: Sendable, Hashable {
        public var streamID: YamuxStreamID
        /// The peer opened this stream with this frame: create a stream channel, then `accept` it.
        public var opened = false
        /// Our open was acknowledged.
        public var acknowledged = false
        /// The send window grew: pending writes may move.
        public var windowIncreased = false
        /// Payload bytes that follow and belong to the stream's reader.
        public var deliverBytes = 0
        /// Payload bytes that follow and are to be dropped (and were already credited).
        public var discardBytes = 0
        /// A Window Update to send right away (credit for discarded bytes).
        public var windowUpdate: YamuxFrameHeader?
        /// The peer half-closed: no more inbound bytes after this frame.
        public var remoteFinished = false
        /// The peer reset the stream; its state is gone.
        public var reset = false
        /// Both directions are finished; its state is gone.
        public var closed = false
    }

    /// The meaning of one inbound frame header.
    public enum InboundResult: Sendable, Hashable {
        case stream(StreamEvent)
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

    public let role: Role
    /// Streams the peer may have open at once; SYNs past it are refused with RST.
    public var maximumInboundStreams: Int
    /// Streams opened by the peer and not yet accepted by the application; SYNs past it are refused.
    public var acceptBacklog: Int
    /// Largest receive window auto-tuning may grant a stream.
    public var maximumStreamWindow: Int

    public private(set) var streams: [YamuxStreamID: StreamState] = [:]
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

    /// Interprets one inbound frame header. Payload bytes (for Data) are handled by the caller
    /// according to the result: delivered, or dropped.
    public mutating func receive(_ header: YamuxFrameHeader) -> InboundResult {
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

        var event = StreamEvent(streamID: id)
        if header.flags.contains(.syn) {
            if isLocallyInitiated(id) {
                return .sessionError(
                    YamuxError(.invalidStreamOpen(stream: id, reason: "the peer used an id of this side's parity")))
            }
            // Only an id in use now is a duplicate: SYNs need not arrive in id order (Go's
            // yamux hands out ids under a lock but sends each SYN from its own goroutine).
            if streams[id] != nil {
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
            streams[id] = StreamState(
                phase: .synReceived, receiveWindow: YamuxReceiveWindow(maximumTarget: maximumStreamWindow))
            inboundStreamCount += 1
            pendingAccepts += 1
            event.opened = true
        }

        guard var stream = streams[id] else {
            if wasEverOpened(id) {
                // A late frame for a stream that is gone: the spec and the reference implementation drop it.
                return .ignore(payloadBytes: payload)
            }
            return .sessionError(
                YamuxError(.invalidStreamOpen(stream: id, reason: "\(header.type) for a stream that was never opened")))
        }

        if header.flags.contains(.ack), stream.phase == .synSent {
            stream.phase = .established
            event.acknowledged = true
        }

        switch header.type {
        case .windowUpdate:
            if header.length > 0 {
                do {
                    try stream.sendWindow.increase(by: header.length, stream: id)
                } catch let error as YamuxError {
                    return .sessionError(error)
                } catch { preconditionFailure("unexpected \(error)") }
                event.windowIncreased = true
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
                event.discardBytes = payload
                if let delta = stream.receiveWindow.discard(payload) {
                    event.windowUpdate = .windowUpdate(id, delta: delta)
                }
            } else {
                event.deliverBytes = payload
            }
        default:
            break
        }

        if header.flags.contains(.rst) {
            removeStream(id)
            event.reset = true
            event.deliverBytes = 0
            event.discardBytes = payload
            event.windowUpdate = nil
            return .stream(event)
        }
        if header.flags.contains(.fin) {
            stream.remoteFinReceived = true
            event.remoteFinished = true
        }
        if stream.isClosedBothWays {
            removeStream(id)
            event.closed = true
        } else {
            streams[id] = stream
        }
        return .stream(event)
    }

    private mutating func removeStream(_ id: YamuxStreamID) {
        guard let state = streams.removeValue(forKey: id) else { return }
        if !isLocallyInitiated(id) {
            inboundStreamCount -= 1
            if state.phase == .synReceived { pendingAccepts -= 1 }
        }
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
        streams[id] = StreamState(phase: .synSent, receiveWindow: YamuxReceiveWindow(maximumTarget: maximumStreamWindow))
        return (id, .windowUpdate(id, flags: .syn, delta: 0))
    }

    /// The application took an inbound stream: returns the ACK to send.
    public mutating func accept(_ id: YamuxStreamID) -> YamuxFrameHeader? {
        guard var stream = streams[id], stream.phase == .synReceived else { return nil }
        stream.phase = .established
        streams[id] = stream
        pendingAccepts -= 1
        return .windowUpdate(id, flags: .ack, delta: 0)
    }

    /// How many of `wanted` bytes may go out on the stream now; the send window is charged for them.
    public mutating func reserveSend(_ id: YamuxStreamID, upTo wanted: Int) -> Int {
        // One hash lookup, then the window is changed in place (no copy of the state out and back).
        guard let index = streams.index(forKey: id), !streams.values[index].localFinSent else { return 0 }
        return streams.values[index].sendWindow.take(upTo: wanted)
    }

    /// The send window currently available on a stream (0 for unknown streams).
    public func sendWindow(_ id: YamuxStreamID) -> Int {
        streams[id]?.sendWindow.available ?? 0
    }

    /// The application consumed `count` bytes of a stream: returns a Window Update to send, if due.
    ///
    /// `now` is only read when an update is due (a clock read per consumed chunk showed in profiles).
    public mutating func consumed(
        _ id: YamuxStreamID, _ count: Int, now: @autoclosure () -> NIODeadline = .now(),
        roundTripTime: TimeAmount? = nil
    ) -> YamuxFrameHeader? {
        guard let index = streams.index(forKey: id) else { return nil }
        let delta = streams.values[index].receiveWindow.consume(count, now: now(), roundTripTime: roundTripTime)
        // No credit after the peer's FIN: it cannot send any more anyway.
        guard let delta, !streams.values[index].remoteFinReceived else { return nil }
        return .windowUpdate(id, delta: delta)
    }

    /// Half-closes our direction: returns the FIN to send, and whether the stream is now fully closed.
    public mutating func finish(_ id: YamuxStreamID) -> (YamuxFrameHeader, closed: Bool)? {
        guard var stream = streams[id], !stream.localFinSent else { return nil }
        stream.localFinSent = true
        if stream.isClosedBothWays {
            removeStream(id)
            return (.windowUpdate(id, flags: .fin, delta: 0), true)
        }
        streams[id] = stream
        return (.windowUpdate(id, flags: .fin, delta: 0), false)
    }

    /// The application closed the stream while the peer may still send: discard (and credit) what
    /// arrives until the peer's FIN. Returns a Window Update crediting what was buffered, if due.
    public mutating func stopReading(_ id: YamuxStreamID, unreadBytes: Int) -> YamuxFrameHeader? {
        guard var stream = streams[id] else { return nil }
        stream.discardingInbound = true
        let delta = stream.receiveWindow.discard(unreadBytes)
        streams[id] = stream
        guard let delta, !stream.remoteFinReceived else { return nil }
        return .windowUpdate(id, delta: delta)
    }

    /// Resets a stream: returns the RST to send (nil when the stream is already gone).
    public mutating func reset(_ id: YamuxStreamID) -> YamuxFrameHeader? {
        guard streams[id] != nil else { return nil }
        removeStream(id)
        return .windowUpdate(id, flags: .rst, delta: 0)
    }

    /// Starts going away: no new streams either way from now on. Returns the frame (once).
    public mutating func goAway(_ code: YamuxGoAwayCode = .normal) -> YamuxFrameHeader? {
        guard !goAwaySent else { return nil }
        goAwaySent = true
        return .goAway(code)
    }

    /// Forgets every stream (the link closed). Returns their ids.
    public mutating func closeAll() -> [YamuxStreamID] {
        let ids = Array(streams.keys)
        streams.removeAll()
        inboundStreamCount = 0
        pendingAccepts = 0
        return ids
    }

    public func state(of id: YamuxStreamID) -> StreamState? { streams[id] }
}
