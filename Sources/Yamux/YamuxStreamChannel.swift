import ByteRelay
import NIOCore
import Synchronization

/// Outbound user events a stream channel understands.
public enum YamuxStreamEvent: Sendable {
    /// Reset the stream (RST) at once, dropping anything not yet sent: for errors, where a
    /// graceful FIN would tell the peer that everything arrived.
    case reset
}

extension RelayEnd {
    /// A yamux stream channel as a relay's end: FIN after every byte written, RST on failure.
    public static let yamuxStream = RelayEnd.stream(abortEvent: YamuxStreamEvent.reset)
}

/// One yamux stream as a real NIO `Channel`, so TLS, codecs and relay glue run on it exactly as on
/// a socket.
///
/// Reads wait until the pipeline asks (`read()`, or auto-read), and the receive window is only
/// credited for bytes delivered to the pipeline: a stream whose reader is slow stops its peer and
/// nobody else. Writes are buffered here until the multiplexer can send them within the stream's
/// send window and while the link is writable; the channel reports unwritable past a high
/// watermark, so the writer stops instead of growing memory. `close(mode: .output)` sends FIN
/// after the buffered bytes; an inbound FIN surfaces as `ChannelEvent.inputClosed` when
/// `allowRemoteHalfClosure` is on (else the channel closes, as a socket does).
///
/// All state is confined to the parent's event loop.
// @unchecked Sendable: `Channel` requires Sendable; as in NIO's own channels and nio-http2's
// stream channel, every mutable field is touched only on the event loop (the Channel API hops there),
// and the two any thread may read, `isActive` and `isWritable`, are atomics.
public final class YamuxStreamChannel: Channel, ChannelCore, YamuxStreamEndpoint, @unchecked Sendable {  // loop-confined; see above
    private enum State {
        /// Created, initializer running; inbound bytes are held.
        case idle
        case active
        /// close(mode: .all) requested: flushing what was written, then FIN.
        case closing
        case closed
    }

    public let streamID: YamuxStreamID
    public let allocator: ByteBufferAllocator
    public let eventLoop: EventLoop
    public let parent: Channel?
    public var localAddress: SocketAddress? { parent?.localAddress }
    public var remoteAddress: SocketAddress? { parent?.remoteAddress }
    public var _channelCore: ChannelCore { self }
    public var pipeline: ChannelPipeline { _pipeline }
    public var closeFuture: EventLoopFuture<Void> { closePromise.futureResult }

    private var _pipeline: ChannelPipeline!
    private let closePromise: EventLoopPromise<Void>
    /// Strong on purpose: the multiplexer drops its reference when the stream closes, and a
    /// stream never outlives its link's teardown (which closes every stream).
    private let multiplexer: YamuxMultiplexer

    /// Atomics, not a lock: other threads may ask (the `Channel` contract), but the relay asks
    /// on every read and write, and a lock there showed up in the profile.
    private let activeFlag = Atomic<Bool>(false)
    private let writableFlag = Atomic<Bool>(true)
    public var isActive: Bool { activeFlag.load(ordering: .relaxed) }
    public var isWritable: Bool { writableFlag.load(ordering: .relaxed) }

    private var state: State = .idle
    private var autoRead = true
    private var allowRemoteHalfClosure = false
    private var unsatisfiedRead = false

    // Inbound
    private var pendingReads = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    private var pendingReadBytes = 0
    /// The peer's FIN: `ending` once it arrived, `ended` once surfaced after the pending reads.
    private var fromPeer = RelayState.Flow.open

    // Outbound
    private struct PendingWrite {
        var buffer: ByteBuffer
        var promise: EventLoopPromise<Void>?
    }
    private var pendingWrites = CircularBuffer<PendingWrite>(initialCapacity: 4)
    /// How many entries at the front of `pendingWrites` have been flushed.
    private var flushedCount = 0
    private var flushedBytes = 0
    private var bufferedBytes = 0
    /// Our FIN: `ending` once the output was closed, `ended` once it went out after every byte.
    private var toPeer = RelayState.Flow.open
    private var closePromises: [EventLoopPromise<Void>] = []
    /// The multiplexer's own marks (delivery list, send queue).
    var marks = YamuxEndpointMarks()

    init(streamID: YamuxStreamID, parent: Channel, multiplexer: YamuxMultiplexer) {
        self.streamID = streamID
        self.parent = parent
        self.eventLoop = parent.eventLoop
        self.allocator = parent.allocator
        self.multiplexer = multiplexer
        self.closePromise = parent.eventLoop.makePromise()
        self._pipeline = ChannelPipeline(channel: self)
    }

    public var description: String { "YamuxStreamChannel(stream: \(streamID))" }

    /// Whether the peer's FIN arrived. When ours went first the stream closes at the peer's FIN
    /// without an `inputClosed` event, so a handler that reports how a stream ended (muxcat
    /// -v) asks here. Call on the stream's event loop.
    public var peerFinished: Bool {
        eventLoop.preconditionInEventLoop()
        return fromPeer != .open
    }

    /// The link's name in log lines (`YamuxLinkID`); call on the stream's event loop.
    public var linkID: YamuxLinkID? {
        eventLoop.preconditionInEventLoop()
        return multiplexer.linkID
    }

    // MARK: Lifecycle driven by the multiplexer

    /// Runs the initializer; activates the channel when it completes.
    func configure(initializer: ((Channel) -> EventLoopFuture<Void>)?, promise: EventLoopPromise<Channel>?) {
        let done = initializer?(self) ?? eventLoop.makeSucceededVoidFuture()
        done.hop(to: eventLoop).whenComplete { result in
            switch result {
            case .success:
                guard self.state == .idle else {
                    promise?.fail(ChannelError.ioOnClosedChannel)
                    return
                }
                self.state = .active
                self.activeFlag.store(true, ordering: .relaxed)
                self.multiplexer.streamActivated(self)
                self.pipeline.fireChannelRegistered()
                self.pipeline.fireChannelActive()
                promise?.succeed(self)
                if self.autoRead { self.pipeline.read() }
                self.deliverPendingReadsIfPossible()
            case .failure(let error):
                promise?.fail(error)
                self.multiplexer.resetStream(self)
                self.reset(error: error)
            }
        }
    }

    /// Payload bytes for this stream arrived.
    func receiveData(_ buffer: ByteBuffer) {
        guard state != .closed else { return }
        // Held until the pipeline reads it: not as a slice of a whole link read buffer.
        pendingReads.append(buffer.heldCompactly())
        pendingReadBytes += buffer.readableBytes
    }

    /// Bytes received and not yet read by the pipeline, and the storage they keep alive (each
    /// piece's whole buffer, counted once per piece), for the memory tests.
    var heldInbound: (bytes: Int, storage: Int) {
        pendingReads.reduce((0, 0)) { ($0.0 + $1.readableBytes, $0.1 + $1.storageCapacity) }
    }

    /// The peer half-closed the stream.
    func receiveFinish() {
        guard state != .closed, fromPeer == .open else { return }
        fromPeer = .ending
    }

    /// The parent finished a read cycle: deliver what arrived, if the pipeline asked for it.
    func parentReadComplete() {
        deliverPendingReadsIfPossible()
    }

    /// The stream was reset by the peer, refused, or the link went away.
    func receiveReset(error: Error) {
        reset(error: error)
    }

    /// Our FIN went out (after every buffered byte).
    func localFinishWasSent(streamClosed: Bool) {
        toPeer = .ended
        if state == .closing || (streamClosed && fromPeer == .ended) {
            closeNow(error: nil)
        }
    }

    /// The stream is fully closed in both directions on the wire.
    func streamClosedOnWire() {
        if fromPeer == .ended || state == .closing { closeNow(error: nil) }
    }

    // MARK: Writes, pulled by the multiplexer

    /// Flushed bytes waiting to go out.
    var sendableBytes: Int { flushedBytes }

    /// Whether FIN should follow once the flushed bytes are gone.
    var wantsToSendFinish: Bool { toPeer == .ending && flushedCount == pendingWrites.count }

    /// Takes up to `limit` flushed bytes for one Data frame: slices of the written buffers (no
    /// copy) with the promises of the writes they complete.
    func takeSendable(upTo limit: Int, into pieces: inout [(ByteBuffer, EventLoopPromise<Void>?)]) -> Int {
        var taken = 0
        while taken < limit, flushedCount > 0 {
            let wanted = limit - taken
            let first = pendingWrites.first!
            if first.buffer.readableBytes <= wanted {
                let write = pendingWrites.removeFirst()
                flushedCount -= 1
                taken += write.buffer.readableBytes
                pieces.append((write.buffer, write.promise))
            } else {
                let slice = pendingWrites[pendingWrites.startIndex].buffer.readSlice(length: wanted)!
                taken += wanted
                pieces.append((slice, nil))
            }
        }
        flushedBytes -= taken
        bufferedBytes -= taken
        updateWritability()
        return taken
    }

    /// The link can carry writes again, or stopped carrying them: writability follows buffered bytes.
    private func updateWritability() {
        let high = multiplexer.configuration.streamWriteHighWatermark
        let low = multiplexer.configuration.streamWriteLowWatermark
        let wasWritable = isWritable
        if wasWritable && bufferedBytes > high {
            writableFlag.store(false, ordering: .relaxed)
            pipeline.fireChannelWritabilityChanged()
        } else if !wasWritable && bufferedBytes < low && state != .closed {
            writableFlag.store(true, ordering: .relaxed)
            pipeline.fireChannelWritabilityChanged()
        }
    }

    // MARK: ChannelCore

    public func localAddress0() throws -> SocketAddress {
        guard let address = parent?.localAddress else { throw ChannelError.operationUnsupported }
        return address
    }

    public func remoteAddress0() throws -> SocketAddress {
        guard let address = parent?.remoteAddress else { throw ChannelError.operationUnsupported }
        return address
    }

    public func register0(promise: EventLoopPromise<Void>?) {
        promise?.succeed(())
    }

    public func bind0(to: SocketAddress, promise: EventLoopPromise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }

    public func connect0(to: SocketAddress, promise: EventLoopPromise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }

    public func write0(_ data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard state == .idle || state == .active else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        guard toPeer == .open else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        let buffer = unwrapData(data, as: ByteBuffer.self)
        pendingWrites.append(PendingWrite(buffer: buffer, promise: promise))
        bufferedBytes += buffer.readableBytes
        updateWritability()
    }

    public func flush0() {
        markFlushed()
        if state == .active || state == .closing {
            multiplexer.streamHasSendableData(self)
        }
    }

    private func markFlushed() {
        while flushedCount < pendingWrites.count {
            flushedBytes +=
                pendingWrites[pendingWrites.index(pendingWrites.startIndex, offsetBy: flushedCount)]
                .buffer.readableBytes
            flushedCount += 1
        }
    }

    public func read0() {
        guard state != .closed else { return }
        unsatisfiedRead = true
        deliverPendingReadsIfPossible()
    }

    public func close0(error: Error, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard state != .closed else {
            promise?.fail(ChannelError.alreadyClosed)
            return
        }
        switch mode {
        case .output:
            guard toPeer == .open else {
                promise?.fail(ChannelError.outputClosed)
                return
            }
            toPeer = .ending
            // Unflushed writes are flushed: FIN goes after every byte written.
            markFlushed()
            if state == .active || state == .closing {
                multiplexer.streamHasSendableData(self)
            }
            promise?.succeed(())
        case .input:
            // Stop surfacing inbound bytes; the multiplexer credits and drops them from now on.
            dropPendingReads()
            multiplexer.streamStoppedReading(self)
            promise?.succeed(())
        case .all:
            if let promise { closePromises.append(promise) }
            if state == .idle {
                // Never activated: nothing of ours went out yet besides the SYN.
                multiplexer.resetStream(self)
                reset(error: ChannelError.ioOnClosedChannel)
                return
            }
            guard state == .active else { return }
            state = .closing
            if toPeer == .open { toPeer = .ending }
            markFlushed()
            dropPendingReads()
            multiplexer.streamStoppedReading(self)
            if toPeer == .ended {
                closeNow(error: nil)
            } else {
                multiplexer.streamHasSendableData(self)
                multiplexer.streamIsClosing(self)
            }
        }
    }

    public func triggerUserOutboundEvent0(_ event: Any, promise: EventLoopPromise<Void>?) {
        if case .reset? = event as? YamuxStreamEvent {
            guard state != .closed else {
                promise?.fail(ChannelError.alreadyClosed)
                return
            }
            multiplexer.resetStream(self)
            reset(error: YamuxError(.streamReset(stream: streamID)))
            promise?.succeed(())
        } else {
            promise?.fail(ChannelError.operationUnsupported)
        }
    }

    public func channelRead0(_ data: NIOAny) {}

    public func errorCaught0(error: Error) {}

    // MARK: Options

    public func setOption<Option: ChannelOption>(_ option: Option, value: Option.Value) -> EventLoopFuture<Void> {
        if eventLoop.inEventLoop {
            return eventLoop.makeCompletedFuture { try self.setOption0(option, value: value) }
        }
        return eventLoop.submit { try self.setOption0(option, value: value) }
    }

    public func getOption<Option: ChannelOption>(_ option: Option) -> EventLoopFuture<Option.Value> {
        if eventLoop.inEventLoop {
            return eventLoop.makeCompletedFuture { try self.getOption0(option) }
        }
        return eventLoop.submit { try self.getOption0(option) }
    }

    /// Options set on the event loop without a future (one per stream opened, on the connection-rate path).
    public var syncOptions: NIOSynchronousChannelOptions? { SynchronousOptions(channel: self) }

    private struct SynchronousOptions: NIOSynchronousChannelOptions {
        let channel: YamuxStreamChannel

        func setOption<Option: ChannelOption>(_ option: Option, value: Option.Value) throws {
            channel.eventLoop.preconditionInEventLoop()
            try channel.setOption0(option, value: value)
        }

        func getOption<Option: ChannelOption>(_ option: Option) throws -> Option.Value {
            channel.eventLoop.preconditionInEventLoop()
            return try channel.getOption0(option)
        }
    }

    private func setOption0<Option: ChannelOption>(_ option: Option, value: Option.Value) throws {
        switch option {
        case _ as ChannelOptions.Types.AutoReadOption:
            autoRead = value as! Bool
            if autoRead { read0() }
        case _ as ChannelOptions.Types.AllowRemoteHalfClosureOption:
            allowRemoteHalfClosure = value as! Bool
        default:
            throw ChannelError.operationUnsupported
        }
    }

    private func getOption0<Option: ChannelOption>(_ option: Option) throws -> Option.Value {
        switch option {
        case _ as ChannelOptions.Types.AutoReadOption:
            return autoRead as! Option.Value
        case _ as ChannelOptions.Types.AllowRemoteHalfClosureOption:
            return allowRemoteHalfClosure as! Option.Value
        default:
            throw ChannelError.operationUnsupported
        }
    }

    // MARK: Private

    private func deliverPendingReadsIfPossible() {
        guard state == .active, unsatisfiedRead, !pendingReads.isEmpty || fromPeer == .ending
        else { return }
        unsatisfiedRead = false
        var delivered = 0
        while let buffer = pendingReads.popFirst() {
            delivered += buffer.readableBytes
            pendingReadBytes -= buffer.readableBytes
            pipeline.fireChannelRead(buffer)
            guard state == .active else { return }
        }
        if delivered > 0 {
            pipeline.fireChannelReadComplete()
            multiplexer.streamConsumed(self, bytes: delivered)
        }
        guard state == .active else { return }
        if fromPeer == .ending && pendingReads.isEmpty {
            fromPeer = .ended
            if toPeer == .ended {
                closeNow(error: nil)
                return
            } else if allowRemoteHalfClosure {
                pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            } else {
                close0(error: ChannelError.eof, mode: .all, promise: nil)
                return
            }
        }
        if autoRead && state == .active { pipeline.read() }
    }

    private func dropPendingReads() {
        if pendingReadBytes > 0 {
            let dropped = pendingReadBytes
            pendingReads.removeAll()
            pendingReadBytes = 0
            multiplexer.streamDiscarded(self, bytes: dropped)
        }
    }

    /// Ends the stream at once with an error (reset, link gone, initializer failed).
    private func reset(error: Error) {
        guard state != .closed else { return }
        pendingReads.removeAll()
        pendingReadBytes = 0
        closeNow(error: error)
    }

    private func closeNow(error: Error?) {
        guard state != .closed else { return }
        let wasActive = state == .active || state == .closing
        state = .closed
        activeFlag.store(false, ordering: .relaxed)
        let failure = error ?? ChannelError.ioOnClosedChannel
        while let write = pendingWrites.popFirst() {
            write.promise?.fail(failure)
        }
        flushedCount = 0
        flushedBytes = 0
        bufferedBytes = 0
        let promises = closePromises
        closePromises = []
        multiplexer.endpointClosed(self)
        if let error, wasActive { pipeline.fireErrorCaught(error) }
        for promise in promises { promise.succeed(()) }
        if wasActive {
            pipeline.fireChannelInactive()
            pipeline.fireChannelUnregistered()
        }
        eventLoop.execute {
            self.removeHandlers(pipeline: self.pipeline)
            self.closePromise.succeed(())
        }
    }
}
