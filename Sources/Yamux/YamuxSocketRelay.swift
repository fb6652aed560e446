import ByteRelay
import NIOCore

/// One yamux stream relayed to one socket, without a child channel: the lean stream end for
/// programs that only copy bytes (repeaterd's clients, `muxcat listen --forward`'s targets).
///
/// It is a handler in the socket's own pipeline and the stream's end in the multiplexer at once:
/// - socket → stream: each read is queued here and handed to the multiplexer, which writes the
///   Data frame at once when the window is open and the link writable. The socket is only read
///   while less than the stream write watermark is queued, so a full window or a busy link stops
///   this client and nobody else.
/// - stream → socket: the link's payload is written straight into the socket when it is
///   writable, and queued here (uncredited) while it is not. The receive window is credited only
///   for bytes the socket took, so memory stays bounded by one window plus the socket's write
///   watermark, as with a child channel and `ChannelRelay`.
///
/// Closing follows `ChannelRelay`'s rules, with its state in a `RelayState` (near: the socket; far:
/// the stream): the socket's half-close becomes FIN after every queued
/// byte, and the peer's FIN becomes the socket's half-close after every byte written; the socket
/// is closed once both directions are done. A socket error resets the stream (a failure must not
/// look like a complete message); a reset stream, or a link that goes away, closes the socket.
/// A socket that goes away first gets its queued bytes sent, then FIN, and the stream lingers
/// for the peer's FIN (inbound bytes credited and dropped) until the close timeout resets it.
///
/// All state is confined to the link's event loop, which must also be the socket's.
public final class YamuxSocketRelay: ChannelDuplexHandler, YamuxStreamEndpoint {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public let streamID: YamuxStreamID
    private let multiplexer: YamuxMultiplexer
    private var context: ChannelHandlerContext?

    /// The link channel this stream is on (nil once the link is gone).
    public var link: Channel? { multiplexer.linkChannel }

    /// Marked on every read either way, for an idle timeout. Set before the relay starts.
    public var activity: RelayActivity?
    /// Called once, with the first reason the session ends for. Set before the relay starts.
    public var onEnd: ((RelayEndReason) -> Void)?
    /// Names of the two sides in `onEnd`'s reasons ("client", "runtime manager", ...).
    private let socketSide: String
    private let streamSide: String

    /// Near: the socket; far: the stream. `.connecting` until a stream the peer opened has its
    /// socket connected; each direction's end (the socket's input closed, the peer's FIN) is
    /// `ending` until it is passed on.
    private var state: RelayState

    // Socket → stream
    private var outbound = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    private(set) var sendableBytes = 0
    /// A read the socket asked for, held back while the queue is over the watermark.
    private var readHeld = false
    /// Between the socket's first read of a cycle and its read complete: the multiplexer
    /// flushes the link once at the end instead of scheduling a flush per read.
    private var inSocketReadCycle = false

    // Stream → socket
    private var inbound = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    /// Bytes written into the socket since its last flush, credited to the peer at the flush.
    private var unflushedBytes = 0
    /// Completes once the socket's output is closed after every byte written to it.
    private var socketOutputClosed: EventLoopFuture<Void>?

    /// `deliverInbound` is not re-entrant: the socket's flush can make it writable again, which
    /// calls back in. The nested call only asks for another round.
    private enum Delivery {
        case idle
        case delivering
        /// Writability came back during the flush: go round once more.
        case deliveringAgain
    }
    private var delivery = Delivery.idle

    /// The multiplexer's own marks (delivery list, send queue).
    var marks = YamuxEndpointMarks()

    init(
        streamID: YamuxStreamID, multiplexer: YamuxMultiplexer, started: Bool, socketSide: String,
        streamSide: String
    ) {
        self.streamID = streamID
        self.multiplexer = multiplexer
        self.state = RelayState(relaying: started)
        self.socketSide = socketSide
        self.streamSide = streamSide
    }

    private var highWatermark: Int { multiplexer.configuration.streamWriteHighWatermark }
    private var lowWatermark: Int { multiplexer.configuration.streamWriteLowWatermark }

    private func report(_ reason: RelayEndReason) {
        guard let onEnd else { return }
        self.onEnd = nil
        onEnd(reason)
    }

    // MARK: Started by the multiplexer (streams the peer opened)

    /// The socket connected: accept the stream, and let what waited on either side move.
    func start() {
        switch state.start() {
        case .relay:
            multiplexer.streamActivated(self)
            if sendableBytes > 0 || state.nearToFar == .ending { multiplexer.streamHasSendableData(self) }
            deliverInbound()
        case .closeNear:
            // The link went away while the socket connected.
            context?.close(promise: nil)
        case .refuseFar:
            // The socket went away before the stream was accepted: refuse it.
            multiplexer.resetStream(self)
            streamEnded()
        case .none:
            break
        }
    }

    /// Bytes the stream carries before any of the socket's (a PROXY header, `--send-proxy`):
    /// queued like a read, but not the socket's, so not counted as relayed.
    func sendPreamble(_ bytes: ByteBuffer) {
        sendableBytes += bytes.readableBytes
        outbound.append(bytes)
        if state.canWrite(to: .far) { multiplexer.streamHasSendableData(self) }
    }

    // MARK: ChannelHandler (the socket)

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        endSocketReadCycle()
        self.context = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        activity?.sawTraffic = true
        guard state.takesBytes(from: .near) else { return }
        if !inSocketReadCycle {
            inSocketReadCycle = true
            multiplexer.relayReadCycleBegan()
        }
        let bytes = unwrapInboundIn(data)
        activity?.readFromSocket(bytes.readableBytes)
        sendableBytes += bytes.readableBytes
        outbound.append(bytes)
        if state.canWrite(to: .far) { multiplexer.streamHasSendableData(self) }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        endSocketReadCycle()
        context.fireChannelReadComplete()
    }

    /// Ends the socket's read cycle, if one is open: on read complete, and on every way a cycle
    /// can end without one (input closed, error, the socket or this handler gone), since a
    /// cycle left open would hold the link's flush for every stream.
    private func endSocketReadCycle() {
        guard inSocketReadCycle else { return }
        inSocketReadCycle = false
        multiplexer.relayReadCycleEnded()
    }

    public func read(context: ChannelHandlerContext) {
        if sendableBytes < highWatermark {
            context.read()
        } else {
            readHeld = true
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            endSocketReadCycle()
            if state.inputEnded(at: .near), state.canWrite(to: .far) { multiplexer.streamHasSendableData(self) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { deliverInbound() }
        context.fireChannelWritabilityChanged()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        endSocketReadCycle()
        state.inputEnded(at: .near)
        report(.closed(side: state.finishedFirst == .far ? streamSide : socketSide))
        let unread = inbound.reduce(unflushedBytes) { $0 + $1.readableBytes }
        inbound.removeAll()
        unflushedBytes = 0
        let wasRelaying = state.canWrite(to: .far)
        state.endGone(.near)
        if wasRelaying {
            // Nothing can take the peer's bytes any more: credit and drop them until its FIN;
            // send what the socket sent, then FIN; reset if the peer never finishes.
            multiplexer.streamDiscarded(self, bytes: unread)
            multiplexer.streamHasSendableData(self)
            if state.isUp(.far) { multiplexer.streamIsClosing(self) }
        }
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        endSocketReadCycle()
        report(.error(side: socketSide, error))
        if state.isUp(.far) {
            // A failure must not look like a complete message to the far end: RST, not FIN.
            multiplexer.resetStream(self)
            streamEnded()
        }
        context.close(promise: nil)
    }

    // MARK: YamuxStreamEndpoint (the stream)

    func receiveData(_ piece: ByteBuffer) {
        guard state.isUp(.far) else { return }
        // Held here or in the socket's pending writes until the client reads it: not as a
        // slice of a whole link read buffer.
        let buffer = piece.heldCompactly()
        activity?.deliveredToSocket(buffer.readableBytes)
        if state.canWrite(to: .near), inbound.isEmpty, delivery == .idle, let context, context.channel.isWritable {
            unflushedBytes += buffer.readableBytes
            context.write(wrapOutboundOut(buffer), promise: nil)
        } else {
            inbound.append(buffer)
        }
    }

    func receiveFinish() {
        state.inputEnded(at: .far)
    }

    func parentReadComplete() {
        deliverInbound()
    }

    func receiveReset(error: Error) {
        guard state.isUp(.far) else { return }
        streamEnded()
        if state.isUp(.near) {
            report(.error(side: streamSide, error))
            context?.close(promise: nil)
        }
    }

    func localFinishWasSent(streamClosed: Bool) {
        state.endPassedOn(from: .near)
        if streamClosed { streamClosedOnWire() }
    }

    func openAcknowledged() {
        activity?.acknowledgedAt = .now()
    }

    func streamClosedOnWire() {
        guard state.endGone(.far) else { return }
        multiplexer.endpointClosed(self)
        closeSocketIfDone()
    }

    var wantsToSendFinish: Bool { sendableBytes == 0 && state.mayPassOnEnd(from: .near) }

    func takeSendable(upTo limit: Int, into pieces: inout [(ByteBuffer, EventLoopPromise<Void>?)]) -> Int {
        var taken = 0
        while taken < limit, let first = outbound.first {
            let wanted = limit - taken
            if first.readableBytes <= wanted {
                outbound.removeFirst()
                taken += first.readableBytes
                pieces.append((first, nil))
            } else {
                let slice = outbound[outbound.startIndex].readSlice(length: wanted)!
                taken += wanted
                pieces.append((slice, nil))
            }
        }
        sendableBytes -= taken
        if readHeld, sendableBytes < lowWatermark, state.isUp(.near), let context {
            readHeld = false
            context.read()
        }
        return taken
    }

    /// The stream's windows (what this side may still send, what the peer may), for the status
    /// page; nil once the stream is gone.
    public var windows: (send: Int, receive: Int)? {
        state.isUp(.far) ? multiplexer.windows(of: streamID) : nil
    }

    /// Bytes from the link held here for the socket (not yet written into it), for the status page.
    public var queuedTowardSocket: Int {
        inbound.reduce(0) { $0 + $1.readableBytes }
    }

    /// Bytes of the link's payload held for the socket, and the storage they keep alive (each
    /// piece's whole buffer, counted once per piece), for the memory tests.
    var heldInbound: (bytes: Int, storage: Int) {
        inbound.reduce((0, 0)) { ($0.0 + $1.readableBytes, $0.1 + $1.storageCapacity) }
    }

    // MARK: Private

    /// Writes what waited for the socket, flushes, credits the peer for it, and passes the
    /// peer's FIN on once everything before it is written.
    private func deliverInbound() {
        guard state.canWrite(to: .near), let context else { return }
        guard delivery == .idle else {
            // Called from inside the flush below (the socket turned writable again as it wrote):
            // that writability change is the only one there will be, so go round once more.
            delivery = .deliveringAgain
            return
        }
        repeat {
            delivery = .delivering
            var written = unflushedBytes
            unflushedBytes = 0
            while !inbound.isEmpty, context.channel.isWritable {
                let next = inbound.removeFirst()
                written += next.readableBytes
                context.write(wrapOutboundOut(next), promise: nil)
            }
            if written > 0 {
                context.flush()
                if state.isUp(.far) { multiplexer.streamConsumed(self, bytes: written) }
            }
        } while delivery == .deliveringAgain && state.isUp(.near)
        delivery = .idle
        if inbound.isEmpty, state.mayPassOnEnd(from: .far) {
            state.endPassedOn(from: .far)
            socketOutputClosed = RelayEnd.socket.finishOutput(context)
            closeSocketIfDone()
        }
    }

    /// Both directions are done: close the socket once its last bytes are written.
    private func closeSocketIfDone() {
        guard !state.isUp(.far), state.isUp(.near), state.farToNear == .ended, let context else { return }
        let channel = context.channel
        (socketOutputClosed ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// The stream is gone (reset, refused, link closed): nothing more moves either way.
    private func streamEnded() {
        state.endGone(.far)
        outbound.removeAll()
        sendableBytes = 0
        inbound.removeAll()
        unflushedBytes = 0
        multiplexer.endpointClosed(self)
    }
}
