import ByteRelay
import EventSummaries
import Logging
import NIOCore

/// The yamux session on a link channel: decodes frames, keeps the session state machine, and
/// gives every stream a local end of one of two kinds (`YamuxStreamEndpoint`):
/// - a `YamuxStreamChannel`, a real child channel (streams we open with `createStream`, streams
///   the peer opens through the inbound initializer), for TLS and codecs;
/// - a `YamuxSocketRelay`, a handler in a socket's own pipeline (streams we open with
///   `createRelayStream`, streams the peer opens through the inbound relay connector), for
///   streams that only copy bytes between a socket and the link: no pipeline per stream, each
///   payload written straight into the socket.
///
/// What it does itself is dispatch: it feeds the link's bytes to `YamuxFrameDecoder`, applies what
/// `YamuxSessionStateMachine` says about each frame to the streams' ends, runs the send pump (turns
/// from `YamuxSendQueue`, window from the state machine, frames into `YamuxLinkOutput`), tells the
/// streams that received something once per read cycle, and tears down. Each decision lives in a
/// value tested alone: the state machine, the send queue, the output (what is written and when it is
/// flushed), the control-frame queue, the keep-alive timers and ping tracker, the open-stream count,
/// the inbound activity and the peer-event tally.
///
/// Scheduling rules, which are what keep the link fast and fair:
/// - Control frames (window updates, pings, RST, Go Away) are written at once while the link
///   channel is writable; Data is only written while it is. So control frames wait behind at most
///   the link's write watermark of data and one frame, never behind a stream's backlog. While the
///   link is not writable, control frames wait in a capped queue (`YamuxControlFrameQueue`) that
///   goes out first when it is again; a peer that asks for answers and never reads them makes this
///   side stop reading its link, and past the cap the link is closed.
/// - Events a peer can cause at will (resets, refused streams, frames for closed streams) are
///   debug lines, and at most one summary line per link per interval (`YamuxPeerEventTally`).
/// - Streams with data take turns, one frame each, round-robin: a bulk stream cannot starve a small one.
///   A stream that had nothing queued and now has a small message goes first, once
///   (`YamuxSendQueue`: sparse streams first, as fq_codel serves sparse flows).
/// - While another stream sends small messages, a stream's receive window stays at
///   `sharedStreamWindow`: the most it can have queued in the link's buffers ahead of them
///   (`YamuxInboundActivity`).
/// - Frames gather in the link's output (`YamuxLinkOutput`, a value tested alone): frames written
///   while the link is read are flushed once at the read's end; frames written while relayed
///   sockets read, or outside any read, are flushed once at the end of the current event-loop
///   turn (a task NIO runs right after this turn's I/O, before it waits again), so the messages of
///   every session ready in one wake leave in one link write. Never a flush per frame or per
///   message. (Flushing at once on every stream flush was tried and measured: no latency gain,
///   and fewer sessions opened per second; docs/bench/NOTES.md.)
/// - A small Data frame goes out in the gathered buffer, header and payload together (one iovec
///   for many frames, and the payload's buffer is released at once).
public final class YamuxMultiplexer: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Never
    public typealias OutboundIn = Never
    public typealias OutboundOut = ByteBuffer

    public typealias StreamInitializer = (Channel) -> EventLoopFuture<Void>
    /// Connects the socket a stream opened by the peer is relayed to, with the relay installed in
    /// the socket's pipeline (before its first read). The stream is accepted once this succeeds,
    /// and refused (RST) if it fails.
    public typealias RelayConnector = (YamuxSocketRelay) -> EventLoopFuture<Void>

    public let configuration: YamuxConfiguration
    /// The session's rules and every stream's slot: its state, its endpoint and its linger timer.
    private var session: YamuxSessionStateMachine<StreamLocalEnd>
    private var decoder: YamuxFrameDecoder
    private let inboundStreamInitializer: StreamInitializer?
    private let inboundRelayConnector: RelayConnector?
    private var logger: Logger

    private var context: ChannelHandlerContext?
    /// The link's loop, kept after the handler is removed so late callers get a failed future.
    private var eventLoop: EventLoop?
    /// Endpoints registered in a slot and not yet closed (`openStreamCount`), and who waits for none.
    private var openStreams = YamuxOpenStreams()
    /// Streams that received bytes or FIN during the current read cycle.
    private var touchedStreams: [any YamuxStreamEndpoint] = []
    /// The list being delivered at a read cycle's end (swapped with `touchedStreams`, so neither
    /// list is copied or reallocated per read).
    private var deliveringStreams: [any YamuxStreamEndpoint] = []
    /// Streams with flushed data (or a FIN) waiting for window or link writability.
    private var sendQueue = YamuxSendQueue()
    /// Which streams sent small messages lately: whether a stream shares the link with one, for
    /// its receive window (`YamuxConfiguration.sharedStreamWindow`).
    private var inboundActivity = YamuxInboundActivity()

    /// Where written frames gather and when they are flushed: one link write per turn of the
    /// event loop (`YamuxLinkOutput`).
    private var output = YamuxLinkOutput()

    /// What is left to do for the Data frame being decoded: where its payload goes, and the
    /// stream's ending (steps 3 and 4 of the state machine's `StreamFrame`) once it is through.
    private struct FrameInProgress {
        /// The stream the frame belongs to (nil: its payload is dropped, nothing follows).
        var endpoint: (any YamuxStreamEndpoint)?
        var deliver: Bool
        var ending: YamuxStreamEnding
    }
    private var frameInProgress: FrameInProgress?

    /// The link is being read (its frames delivered at the read cycle's end).
    private var inReadCycle: Bool { output.isInLinkReadCycle }
    private var closed = false

    /// Control frames waiting while the link channel is not writable (capped, coalesced).
    private var controlQueue: YamuxControlFrameQueue
    /// Decoding and reading the link are paused: the peer asked for more answers than it read.
    private var readsPaused = false
    /// A read was asked for while paused: it is passed on when reads resume.
    private var readPending = false
    /// Set while paused reads resume (they may end in a flush that fires writability again).
    private var resumingReads = false
    /// Streams the peer opened in this read cycle (`maximumInboundOpensPerReadCycle`).
    private var inboundOpensThisCycle = 0
    /// Reads resume at the next turn of the loop (the opens budget was used up).
    private var resumeNextTurnScheduled = false
    /// Peer-caused events since the last summary line, and the timer that writes it.
    private var peerEvents = YamuxPeerEventTally()
    private var peerEventSummaryTask: Scheduled<Void>?

    // Keep-alive and ping
    /// Pings out and the round-trip time they measured (a value type, tested alone).
    private var pings: YamuxPingTracker
    /// When pings go out and when unanswered ones end the link.
    private var keepAlive = YamuxKeepAliveTimers()
    /// Smoothed round-trip time from ping replies (feeds window auto-tuning).
    public var roundTripTime: TimeAmount? { pings.roundTripTime }

    /// Called (on the event loop) when the peer says Go Away.
    public var onGoAway: ((UInt32) -> Void)?

    /// The link's name in log lines on both ends (`YamuxLinkID`): ours when we dialed, the
    /// peer's once its first frame has been read when we accepted (nil if that frame was not a
    /// ping: a peer that names nothing).
    public private(set) var linkID: YamuxLinkID?
    /// Whether the peer's first frame has been read (the accepting side's moment to name the link).
    private var firstFrameRead = false
    /// Called (on the event loop) once, when the peer's first frame has been read, with the
    /// link's name if the peer gave one: the accepting side logs "link accepted" then.
    public var onFirstFrame: ((YamuxLinkID?) -> Void)?

    /// `inboundRelayConnector`, when given, makes every stream the peer opens a relayed socket
    /// (`YamuxSocketRelay`) instead of a child channel, and `inboundStreamInitializer` is unused.
    public init(
        configuration: YamuxConfiguration,
        logger: Logger = Logger(label: "yamux"),
        inboundStreamInitializer: StreamInitializer? = nil,
        inboundRelayConnector: RelayConnector? = nil
    ) {
        self.configuration = configuration
        self.session = YamuxSessionStateMachine(
            role: configuration.role,
            maximumInboundStreams: configuration.maximumInboundStreams,
            acceptBacklog: configuration.acceptBacklog,
            maximumStreamWindow: configuration.maximumStreamWindow)
        self.decoder = YamuxFrameDecoder(maximumDataLength: configuration.maximumInboundFrameSize)
        self.controlQueue = YamuxControlFrameQueue(
            limit: configuration.maximumQueuedControlFrames, pauseThreshold: configuration.controlAnswersPauseThreshold)
        self.inboundStreamInitializer = inboundStreamInitializer
        self.inboundRelayConnector = inboundRelayConnector
        self.pings = YamuxPingTracker(firstOpaque: configuration.announcedLinkID?.rawValue ?? 1)
        self.linkID = configuration.announcedLinkID
        self.logger = logger
    }

    // MARK: Public API (call on the link's event loop)

    /// Number of streams that have a live local end (a channel, or a relayed socket).
    public var openStreamCount: Int { openStreams.count }

    /// The link channel (nil before the handler is added and after it is removed).
    var linkChannel: Channel? { context?.channel }

    /// Whether this side or the peer has said Go Away.
    public var isGoingAway: Bool { session.goAwaySent || session.goAwayReceived != nil }

    /// For the status page: `none`, `sent`, `received` (or both, `sent, received`).
    public var goAwayStatus: String {
        switch (session.goAwaySent, session.goAwayReceived != nil) {
        case (false, false): return "none"
        case (true, false): return "sent"
        case (false, true): return "received"
        case (true, true): return "sent, received"
        }
    }

    /// A stream's windows, for the status page: what this side may still send, and what the peer
    /// may still send before it must wait for credit (nil once the stream's state is gone).
    public func windows(of id: YamuxStreamID) -> (send: Int, receive: Int)? {
        session.state(of: id).map { ($0.sendWindow.available, $0.receiveWindow.granted) }
    }

    /// Opens a stream and runs `initializer` on its channel. The SYN goes out at once; data may
    /// follow without waiting for the ACK.
    public func createStream(initializer: StreamInitializer? = nil) -> EventLoopFuture<Channel> {
        guard let context, !closed else {
            // The link is going or gone: a stream opened now would never be torn down with it.
            return eventLoopFuture(failing: YamuxError(.linkClosed))
        }
        context.eventLoop.preconditionInEventLoop()
        let promise = context.eventLoop.makePromise(of: Channel.self)
        let id: YamuxStreamID
        let syn: YamuxFrameHeader
        do {
            (id, syn) = try session.open()
        } catch {
            promise.fail(error)
            return promise.futureResult
        }
        let channel = YamuxStreamChannel(streamID: id, parent: context.channel, multiplexer: self)
        register(channel)
        writeControl(syn)
        channel.configure(initializer: initializer, promise: promise)
        return promise.futureResult
    }

    /// Opens a stream relayed to `socket`, a channel on this link's event loop, without a child
    /// channel: the relay is added to the socket's pipeline and copies bytes both ways (see
    /// `YamuxSocketRelay`). The SYN goes out at once; data may follow without waiting for the ACK.
    /// A `preamble` is the stream's first bytes, ahead of the socket's (a PROXY header).
    /// Call on the event loop; throws when the link is going away or gone.
    public func createRelayStream(
        to socket: Channel, socketSide: String = "client", streamSide: String = "stream",
        activity: RelayActivity? = nil, preamble: ByteBuffer? = nil, onEnd: ((RelayEndReason) -> Void)? = nil
    ) throws -> YamuxSocketRelay {
        guard let context, !closed else { throw YamuxError(.linkClosed) }
        context.eventLoop.preconditionInEventLoop()
        let (id, syn) = try session.open()
        let relay = YamuxSocketRelay(
            streamID: id, multiplexer: self, started: true, socketSide: socketSide, streamSide: streamSide)
        relay.activity = activity
        relay.onEnd = onEnd
        register(relay)
        writeControl(syn)
        if let preamble, preamble.readableBytes > 0 { relay.sendPreamble(preamble) }
        do {
            try socket.pipeline.syncOperations.addHandler(relay)
        } catch {
            resetStream(relay)
            relay.receiveReset(error: error)
            throw error
        }
        return relay
    }

    /// Sends a ping and reports the round-trip time when its reply arrives.
    public func ping() -> EventLoopFuture<TimeAmount> {
        guard let context else { return eventLoopFuture(failing: YamuxError(.linkClosed)) }
        let promise = context.eventLoop.makePromise(of: TimeAmount.self)
        sendPing(promise: promise)
        return promise.futureResult
    }

    /// Says Go Away: no new streams either way; open streams may finish.
    public func goAway(_ code: YamuxGoAwayCode = .normal) {
        guard let header = session.goAway(code) else { return }
        writeControl(header)
    }

    private func eventLoopFuture<T>(failing error: Error) -> EventLoopFuture<T> {
        guard let eventLoop else {
            preconditionFailure("YamuxMultiplexer used before it was added to a pipeline: \(error)")
        }
        return eventLoop.makeFailedFuture(error)
    }

    // MARK: ChannelHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.eventLoop = context.eventLoop
        if context.channel.isActive { startKeepAlive(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        tearDown(error: YamuxError(.linkClosed))
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        startKeepAlive(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !closed && decoder.isMidFrame && !readsPaused {
            // A header or payload cut off by the peer's close: say so, it is the only trace of it.
            logger.warning(
                "link closed by the peer in the middle of a frame (\(decoder.bytesMissing) bytes of it missing); its streams are closed")
        }
        tearDown(error: YamuxError(.linkClosed))
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        output.linkReadCycleBegan()
        decoder.append(unwrapInboundIn(data))
        decodeFrames()
    }

    /// Handles the frames buffered in the decoder until it needs more bytes — or until the
    /// answers the peer asked for and has not read reach the pause threshold: then the rest stays
    /// in the decoder and the link is not read (`read(context:)`) until they are written.
    private func decodeFrames() {
        do {
            while !closed {
                if controlQueue.pausesReading {
                    pauseReads()
                    return
                }
                if inboundOpensThisCycle >= configuration.maximumInboundOpensPerReadCycle {
                    pauseReadsUntilNextTurn()
                    return
                }
                guard let item = try decoder.next() else { return }
                switch item {
                case .header(let header):
                    handle(header)
                case .payload(let bytes, let isLast):
                    handlePayload(bytes, isLast: isLast)
                }
            }
        } catch let error as YamuxError {
            sessionFailed(error)
        } catch {
            sessionFailed(YamuxError(.linkClosed))
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if !readsPaused { inboundOpensThisCycle = 0 }
        endReadCycle()
        context.fireChannelReadComplete()
        resumeReadsIfPossible(context: context)
    }

    /// Delivers while still in the read cycle: what the streams write in reply is flushed once,
    /// here, instead of scheduling a flush task each.
    private func endReadCycle() {
        swap(&touchedStreams, &deliveringStreams)
        for endpoint in deliveringStreams {
            endpoint.marks.listedForDelivery = false
            endpoint.parentReadComplete()
        }
        deliveringStreams.removeAllKeepingCapacity()
        if output.linkReadCycleEnded() == .now { flushNow() }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            drainControlQueue(context: context)
            pumpSendQueue()
            resumeReadsIfPossible(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Holds the link's reads while paused (see `decodeFrames`).
    public func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
            return
        }
        context.read()
    }

    private func pauseReads() {
        guard !readsPaused else { return }
        readsPaused = true
        notePeerEvent(.readsPaused, "link reads paused: \(controlQueue.answers) answers wait for the peer to read them")
    }

    /// The peer opened as many streams as one read cycle may: the rest waits for the next turn
    /// of the loop, after the tasks queued in this one (those that free the streams it closed).
    private func pauseReadsUntilNextTurn() {
        readsPaused = true
        guard !resumeNextTurnScheduled, let context else { return }
        resumeNextTurnScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.resumeNextTurnScheduled = false
            self.inboundOpensThisCycle = 0
            guard let context = self.context else { return }
            self.resumeReadsIfPossible(context: context)
        }
    }

    /// Resumes paused reads once the answers have been written and the opens budget is fresh:
    /// first the frames left in the decoder (a read cycle of their own), then the link's socket.
    private func resumeReadsIfPossible(context: ChannelHandlerContext) {
        guard readsPaused, !controlQueue.pausesReading,
            inboundOpensThisCycle < configuration.maximumInboundOpensPerReadCycle, !inReadCycle, !resumingReads, !closed
        else { return }
        resumingReads = true
        defer { resumingReads = false }
        readsPaused = false
        logger.debug("link reads resumed")
        output.linkReadCycleBegan()
        decodeFrames()
        endReadCycle()
        if !readsPaused { inboundOpensThisCycle = 0 }
        guard !readsPaused, !closed, readPending else { return }
        readPending = false
        context.read()
    }

    /// Frames gathered in `output` go out before the link closes (a Go Away, an RST, the last
    /// window update): a close drops what was never written to the channel.
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input { flushNow() }
        context.close(mode: mode, promise: promise)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        logger.debug("yamux link error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Inbound frames

    private func handle(_ header: YamuxFrameHeader) {
        if !firstFrameRead { firstFrameArrived(header) }
        let offset = decoder.currentFrameOffset
        var localEnd: StreamLocalEnd?
        switch session.receive(header, localEnd: &localEnd) {
        case .stream(let frame):
            // ACK comes once, on the peer's first frame of a stream this side opened.
            if header.flags.contains(.ack) { localEnd?.endpoint?.openAcknowledged() }
            handleStreamFrame(frame, localEnd: localEnd)
        case .ignore(let payloadBytes):
            notePeerEvent(.frameForClosedStream, "dropped \(header) (its stream is closed)")
            if payloadBytes > 0 { frameInProgress = FrameInProgress(endpoint: nil, deliver: false, ending: .none) }
        case .refuse(let reply, let payloadBytes, let reason):
            notePeerEvent(.streamRefused, "refused stream \(header.streamID) opened by the peer: \(reason)", detail: reason)
            writeControl(reply, isAnswer: true)
            if payloadBytes > 0 { frameInProgress = FrameInProgress(endpoint: nil, deliver: false, ending: .none) }
        case .pingRequest(let reply):
            writeControl(reply)
        case .pingReply(let opaque):
            if let reply = pings.receiveReply(opaque: opaque, now: .now()) {
                configuration.events.pingAnswered?(reply.roundTrip)
                reply.promise?.succeed(reply.roundTrip)
                if reply.allAnswered { keepAlive.answered() }
            }
        case .goAway(let code):
            if code == YamuxGoAwayCode.normal.rawValue {
                logger.info("peer is going away: no new streams on this link")
            } else {
                logger.warning("peer sent Go Away", metadata: ["code": .stringConvertible(code)])
            }
            onGoAway?(code)
        case .sessionError(var error):
            error.offset = offset
            sessionFailed(error)
        }
    }

    /// Applies a stream frame's actions in the state machine's order (see `StreamFrame`).
    private func handleStreamFrame(_ frame: YamuxStreamFrame, localEnd: StreamLocalEnd?) {
        let id = frame.streamID
        var endpoint = localEnd?.endpoint
        if frame.opened, let context {
            inboundOpensThisCycle += 1
            endpoint = openInbound(id, context: context)
        }
        if let update = frame.windowUpdate { writeControl(update) }
        switch frame.ending {
        case .finishedAndClosed: stateWentAway(id, localEnd: localEnd)
        case .reset:
            stateWentAway(id, localEnd: localEnd)
            controlQueue.peerReset(id)
            notePeerEvent(.streamResetByPeer, "stream \(id) reset by the peer")
        case .none, .finished: break
        }
        switch frame.payload {
        case .deliver(let length):
            inboundActivity.dataArrived(on: id, length: length, now: .now())
            frameInProgress = FrameInProgress(endpoint: endpoint, deliver: true, ending: frame.ending)
        case .discard where frame.ending == .reset:
            // A reset needs nothing from the payload, which is dropped: the end hears of it now.
            // (A stream this very frame opened has no slot left by which teardown could find its
            // end, should the link close in the middle of the payload; found by the fuzzer.)
            frameInProgress = FrameInProgress(endpoint: nil, deliver: false, ending: .none)
            applyEnding(.reset, to: endpoint)
        case .discard:
            frameInProgress = FrameInProgress(endpoint: endpoint, deliver: false, ending: frame.ending)
        case .none:
            applyEnding(frame.ending, to: endpoint)
        }
        if frame.sendMayResume, let endpoint, endpoint.sendableBytes > 0 || endpoint.wantsToSendFinish {
            enqueueForSend(endpoint)
            pumpSendQueue()
        }
    }

    /// The local end of a stream the peer just opened: a relayed socket when this link relays
    /// streams to sockets, a child channel otherwise.
    private func openInbound(_ id: YamuxStreamID, context: ChannelHandlerContext) -> any YamuxStreamEndpoint {
        if let connector = inboundRelayConnector {
            let relay = YamuxSocketRelay(
                streamID: id, multiplexer: self, started: false, socketSide: "target", streamSide: "stream")
            register(relay)
            connector(relay).hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                switch result {
                case .success:
                    relay.start()
                case .failure(let error):
                    self.resetStream(relay)
                    relay.receiveReset(error: error)
                }
            }
            return relay
        }
        let channel = YamuxStreamChannel(streamID: id, parent: context.channel, multiplexer: self)
        register(channel)
        channel.configure(initializer: inboundStreamInitializer, promise: nil)
        return channel
    }

    private func handlePayload(_ bytes: ByteBuffer, isLast: Bool) {
        guard let frame = frameInProgress else { return }
        if frame.deliver, let endpoint = frame.endpoint {
            endpoint.receiveData(bytes)
            touch(endpoint)
        }
        if isLast {
            frameInProgress = nil
            applyEnding(frame.ending, to: frame.endpoint)
        }
    }

    private func applyEnding(
        _ ending: YamuxStreamEnding, to endpoint: (any YamuxStreamEndpoint)?
    ) {
        guard let endpoint else { return }
        switch ending {
        case .none:
            break
        case .reset:
            configuration.events.streamReset?(true)
            endpoint.receiveReset(error: YamuxError(.streamReset(stream: endpoint.streamID)))
        case .finished:
            endpoint.receiveFinish()
            touch(endpoint)
        case .finishedAndClosed:
            endpoint.receiveFinish()
            touch(endpoint)
            endpoint.streamClosedOnWire()
        }
    }

    private func touch(_ endpoint: any YamuxStreamEndpoint) {
        if !endpoint.marks.listedForDelivery {
            endpoint.marks.listedForDelivery = true
            touchedStreams.append(endpoint)
        }
        if !inReadCycle {
            // Delivered outside a parent read (cannot normally happen): deliver now.
            touchedStreams.removeAll()
            endpoint.marks.listedForDelivery = false
            endpoint.parentReadComplete()
        }
    }

    // MARK: Calls from stream ends (channels and relays)

    func streamActivated(_ endpoint: any YamuxStreamEndpoint) {
        if let ack = session.accept(endpoint.streamID) { writeControl(ack) }
    }

    func streamHasSendableData(_ endpoint: any YamuxStreamEndpoint) {
        enqueueForSend(endpoint)
        pumpSendQueue()
    }

    /// A relayed socket started a read cycle: hold the link's flush until it ends.
    func relayReadCycleBegan() {
        output.relayReadCycleBegan()
    }

    /// A relayed socket's read cycle ended (read complete, or the socket's input or the socket
    /// went away): what its reads queued is flushed at the end of this turn of the event loop,
    /// once for every socket that read in it (`YamuxLinkOutput`).
    func relayReadCycleEnded() {
        scheduleFlush(output.relayReadCycleEnded(othersMayShare: openStreams.count > 1))
    }

    func streamConsumed(_ endpoint: any YamuxStreamEndpoint, bytes: Int) {
        let id = endpoint.streamID
        let update = session.consumed(id, bytes, now: .now(), roundTripTime: roundTripTime) { now in
            // Asked only when an update is due.
            inboundActivity.smallMessagesOnAnotherStream(besides: id, now: now, within: configuration.streamActivityHorizon)
                ? configuration.sharedStreamWindow : .max
        }
        if let update { writeControl(update) }
    }

    func streamDiscarded(_ endpoint: any YamuxStreamEndpoint, bytes: Int) {
        // Bytes dropped before the application saw them still free window for the peer.
        if let update = session.stopReading(endpoint.streamID, unreadBytes: bytes) { writeControl(update) }
    }

    func streamStoppedReading(_ endpoint: any YamuxStreamEndpoint) {
        if let update = session.stopReading(endpoint.streamID, unreadBytes: 0) { writeControl(update) }
    }

    /// A closing stream must not wait forever for window or for the peer's FIN: after the close
    /// timeout it is reset. The timer lives in the stream's slot and is cancelled when the
    /// stream's state goes (`stateWentAway`) and at teardown.
    ///
    /// The task holds the multiplexer strongly (a weak reference gives the object a side table,
    /// and every retain and release on the data path then takes the slow path); cancelling every
    /// linger task breaks the cycle.
    func streamIsClosing(_ endpoint: any YamuxStreamEndpoint) {
        let id = endpoint.streamID
        guard let context, session.state(of: id) != nil, let localEnd = session.localEnd(of: id),
            localEnd.linger == nil
        else { return }
        localEnd.linger = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.streamCloseTimeout) {
            guard let (reset, localEnd) = self.session.reset(id) else { return }
            self.logger.debug("stream close timed out; resetting", metadata: ["stream": .stringConvertible(id.rawValue)])
            self.configuration.events.streamReset?(false)
            self.writeControl(reset)
            self.stateWentAway(id, localEnd: localEnd)
            localEnd?.endpoint?.receiveReset(error: YamuxError(.streamReset(stream: id)))
        }
    }

    func resetStream(_ endpoint: any YamuxStreamEndpoint) {
        guard let (reset, localEnd) = session.reset(endpoint.streamID) else { return }
        configuration.events.streamReset?(false)
        writeControl(reset)
        stateWentAway(endpoint.streamID, localEnd: localEnd)
    }

    /// Gives a new endpoint its stream's slot. (A frame that opens a stream and resets it at once
    /// leaves no slot: the endpoint is reset as soon as it is made, and is not counted.)
    private func register(_ endpoint: any YamuxStreamEndpoint) {
        if session.setLocalEnd(StreamLocalEnd(endpoint: endpoint), for: endpoint.streamID) {
            openStreams.opened()
        }
    }

    /// A stream's state is gone on the wire (closed both ways, or reset): its linger timer has
    /// nothing left to wait for, and a slot whose endpoint has already closed goes too.
    private func stateWentAway(_ id: YamuxStreamID, localEnd: StreamLocalEnd?) {
        guard let localEnd else { return }
        localEnd.linger?.cancel()
        localEnd.linger = nil
        if localEnd.endpoint == nil { session.setLocalEnd(nil, for: id) }
    }

    /// A stream's local end is done: a channel closed (by the application, or after the wire
    /// closed), or a relay whose stream closed on the wire or was reset.
    func endpointClosed(_ endpoint: any YamuxStreamEndpoint) {
        let id = endpoint.streamID
        guard let localEnd = session.localEnd(of: id), let current = localEnd.endpoint, current === endpoint else {
            return
        }
        let waiters = openStreams.closed()
        localEnd.endpoint = nil
        if session.state(of: id) == nil {
            localEnd.linger?.cancel()
            session.setLocalEnd(nil, for: id)
        } else {
            // Closed by the application while the peer may still send: linger, then reset.
            if localEnd.linger == nil, !closed { streamIsClosing(endpoint) }
        }
        for waiter in waiters { waiter.succeed(()) }
    }

    /// Completes once no stream is open (for draining on shutdown).
    public func allStreamsClosed() -> EventLoopFuture<Void> {
        guard let eventLoop else { preconditionFailure("YamuxMultiplexer is not in a pipeline") }
        return openStreams.noneOpen(on: eventLoop)
    }

    // MARK: Outbound

    private func enqueueForSend(_ endpoint: any YamuxStreamEndpoint) {
        sendQueue.enqueue(endpoint)
    }

    /// Set while `pumpSendQueue` runs; a nested call only asks for another round.
    private var pumping = false
    private var pumpAgain = false

    /// Moves queued stream data onto the link, one frame per stream per turn, while the link is
    /// writable and windows allow.
    ///
    /// Not re-entrant: taking bytes from a stream can make it writable again, and a handler on
    /// that stream may react at once (read, write, flush) while this frame's header and pieces
    /// are not yet written. A nested pump would then put later bytes on the wire first.
    private func pumpSendQueue() {
        if pumping {
            pumpAgain = true
            return
        }
        pumping = true
        defer { pumping = false }
        repeat {
            pumpAgain = false
            pumpSendQueueOnce()
        } while pumpAgain && context != nil && !closed
    }

    /// Scratch space for one frame's pieces, kept between frames (the pump is not re-entrant).
    private var pieces: [(ByteBuffer, EventLoopPromise<Void>?)] = []

    private func pumpSendQueueOnce() {
        guard let context, !closed else { return }
        // Control frames that waited for writability go first.
        if !controlQueue.isEmpty, context.channel.isWritable { drainControlQueue(context: context) }
        sendQueue.startPass()
        while let turn = sendQueue.nextTurn() {
            let channel = turn.stream
            let id = channel.streamID
            if channel.sendableBytes > 0 {
                guard context.channel.isWritable else {
                    // Keep our place; resume on writability.
                    sendQueue.keepPlace(turn)
                    break
                }
                let grant = session.reserveSend(
                    id, upTo: min(channel.sendableBytes, configuration.maximumOutboundFrameSize, turn.byteLimit))
                if grant.bytes == 0 {
                    if grant.streamGone {
                        // The stream is gone (reset): its writes fail with it.
                        channel.receiveReset(error: YamuxError(.streamReset(stream: id)))
                    }
                    // Otherwise: window exhausted; a Window Update re-queues it.
                    continue
                }
                let taken = channel.takeSendable(upTo: grant.bytes, into: &pieces)
                assert(taken == grant.bytes)
                output.appendData(.data(id, length: UInt32(taken)), pieces: pieces) { bytes, promise in
                    context.write(wrapOutboundOut(bytes), promise: promise)
                }
                pieces.removeAllKeepingCapacity()
                if channel.sendableBytes > 0 {
                    if grant.windowLeft > 0 { sendQueue.takeAnotherTurn(channel) }
                    continue
                }
            }
            if channel.sendableBytes == 0, channel.wantsToSendFinish {
                if let (fin, closedNow, closedLocalEnd) = session.finish(id) {
                    writeControl(fin)
                    if closedNow { stateWentAway(id, localEnd: closedLocalEnd) }
                    channel.localFinishWasSent(streamClosed: closedNow)
                }
            }
        }
        scheduleFlush(output.framesAppended())
    }

    /// Writes a control frame now: it never waits behind queued stream data. While the link is
    /// not writable it waits in `controlQueue` instead (in order, after those already there).
    /// `isAnswer`: a reply the peer asked for that holds no stream state (see the queue).
    private func writeControl(_ header: YamuxFrameHeader, isAnswer: Bool = false) {
        guard let context, !closed else { return }
        if !controlQueue.isEmpty || !context.channel.isWritable {
            if context.channel.isWritable {
                // Writable again, its event still on the way: the queue goes first.
                drainControlQueue(context: context)
            } else {
                if controlQueue.append(header, isAnswer: isAnswer) == .overLimit {
                    let error = YamuxError(.controlFlood(limit: controlQueue.limit))
                    logger.error("closing link: \(error)")
                    failSession(error, goAwayCode: nil)
                }
                return
            }
        }
        output.append(header) { bytes, promise in context.write(wrapOutboundOut(bytes), promise: promise) }
        scheduleFlush(output.framesAppended())
    }

    /// Writes the control frames that waited for the link to be writable, in order.
    private func drainControlQueue(context: ChannelHandlerContext) {
        guard !controlQueue.isEmpty, !closed else { return }
        controlQueue.drain { header in
            output.append(header) { bytes, promise in context.write(wrapOutboundOut(bytes), promise: promise) }
        }
        scheduleFlush(output.framesAppended())
    }

    /// Acts on the output's answer: one task flushes at the end of this turn of the loop.
    private func scheduleFlush(_ step: YamuxLinkOutput.FlushStep) {
        switch step {
        case .none:
            return
        case .now:
            flushNow()
        case .atEndOfTurn:
            guard let context else { return }
            context.eventLoop.assumeIsolated().execute {
                self.output.endOfTurnFlushRan()
                self.flushNow()
            }
        }
    }

    /// Hands the gathered frames to the link channel and flushes it, if any frames wait.
    private func flushNow() {
        guard let context else { return }
        let hasFrames = output.takeFlush { bytes, promise in context.write(wrapOutboundOut(bytes), promise: promise) }
        if hasFrames { context.flush() }
    }

    // MARK: Keep-alive

    private func startKeepAlive(context: ChannelHandlerContext) {
        guard keepAlive.markStarted() else { return }
        // One ping at once: the first frame on the link, it names the link to the peer
        // (`announcedLinkID`), and it measures the round-trip time for window auto-tuning.
        // Without keep-alive it is sent only to name the link, and no timeout hangs on it.
        guard let interval = configuration.keepAliveInterval else {
            if configuration.announcedLinkID != nil { writeControl(pings.ping(now: .now())) }
            return
        }
        sendPing(promise: nil)
        // Strong captures (see `streamIsClosing`): teardown stops both timers.
        let multiplexer = NIOLoopBound(self, eventLoop: context.eventLoop)
        keepAlive.startInterval(on: context.eventLoop, every: interval) { multiplexer.value.sendPing(promise: nil) }
    }

    private func sendPing(promise: EventLoopPromise<TimeAmount>?) {
        guard let context, !closed else {
            promise?.fail(YamuxError(.linkClosed))
            return
        }
        writeControl(pings.ping(now: .now(), promise: promise))
        let timeout = configuration.keepAliveTimeout
        let multiplexer = NIOLoopBound(self, eventLoop: context.eventLoop)
        keepAlive.pingSent(on: context.eventLoop, timeout: timeout) {
            let link = multiplexer.value
            link.keepAlive.deadlinePassed()
            guard link.pings.isAwaitingReply else { return }
            let error = YamuxError(.keepAliveTimeout(milliseconds: timeout.nanoseconds / 1_000_000))
            link.logger.warning("\(error)")
            link.failSession(error, goAwayCode: nil)
        }
    }

    /// The accepting side names the link after the peer's first frame (`YamuxLinkID`).
    private func firstFrameArrived(_ header: YamuxFrameHeader) {
        firstFrameRead = true
        if linkID == nil, configuration.role == .server, header.type == .ping, header.flags.contains(.syn) {
            linkID = YamuxLinkID(rawValue: header.length)
            logger[metadataKey: "link"] = "\(linkID!)"
        }
        onFirstFrame?(linkID)
    }

    // MARK: Peer events

    /// An event the peer can cause at will: a debug line, and a count for the next summary line.
    private func notePeerEvent(
        _ event: YamuxPeerEvent, _ message: @autoclosure () -> Logger.Message, detail: String? = nil
    ) {
        logger.debug(message())
        guard peerEvents.record(event, detail: detail), let context else { return }
        // Strong capture (see `streamIsClosing`): teardown cancels it.
        peerEventSummaryTask = context.eventLoop.assumeIsolated().scheduleTask(in: configuration.peerEventSummaryInterval) {
            self.peerEventSummaryTask = nil
            self.logPeerEventSummary(
                "from the link's peer over the last \(self.configuration.peerEventSummaryInterval.intervalDescription)")
        }
    }

    private func logPeerEventSummary(_ lead: String) {
        guard let summary = peerEvents.takeSummary() else { return }
        logger.notice("\(lead): \(summary)")
    }

    // MARK: Failure and teardown

    /// A protocol violation: Go Away with the protocol-error code, then close the link.
    private func sessionFailed(_ error: YamuxError) {
        logger.error("closing link: \(error)")
        failSession(error, goAwayCode: error.isProtocolViolation ? .protocolError : .internalError)
    }

    private func failSession(_ error: YamuxError, goAwayCode: YamuxGoAwayCode?) {
        guard let context, !closed else { return }
        configuration.events.linkFailed?(error.metricReason)
        if let goAwayCode, let frame = session.goAway(goAwayCode) {
            writeControl(frame)
        }
        flushNow()
        tearDown(error: error)
        context.close(promise: nil)
    }

    private func tearDown(error: YamuxError) {
        guard !closed else { return }
        closed = true
        keepAlive.stop()
        peerEventSummaryTask?.cancel()
        peerEventSummaryTask = nil
        logPeerEventSummary("from the link's peer before the link closed")
        controlQueue.drain { _ in }
        for promise in pings.abandonAll() { promise.fail(error) }
        let localEnds = session.closeAll()
        for localEnd in localEnds { localEnd.linger?.cancel() }
        sendQueue.removeAll()
        // Streams hold the multiplexer strongly: drop every other reference to them, or a link
        // that ends in the middle of a Data frame keeps that stream, this handler and the link
        // channel alive forever (a reference cycle; found by the fuzzer under LeakSanitizer).
        frameInProgress = nil
        touchedStreams.removeAll()
        let waiters = openStreams.closeAll()
        for localEnd in localEnds { localEnd.endpoint?.receiveReset(error: error) }
        output.fail(error)
        for waiter in waiters { waiter.succeed(()) }
    }
}
