import NIOCore

/// Joins two channels into a byte pipe, as swift-nio's proxy example does: a read on one side is
/// a write on the other, read-complete is a flush, a half-close (input closed) becomes the other
/// side's FIN after every byte before it, a close closes the other side once its writes are
/// done, and a side reads only while its partner is writable, so a slow reader on either end
/// stalls its own session and nobody else's.
///
/// One handler per channel. The two may be on one event loop (`matchedPair`: a call per message)
/// or on two (`firstSide` and `secondSide`: every message is an `execute` on the partner's loop, a
/// thread hop, which repeaterd pays only for a client whose own loop has no link up). Which of the
/// two it is is a property of the partner (`Partner`), not a check on the channel's type; how a
/// side's channel ends (a socket, a stream that must be reset on failure) is its `RelayEnd`.
///
/// Each side keeps its own `RelayState` (near: its channel; far: the partner), touched on its own
/// loop only; what it knows of its partner it learns from the partner's messages. The first side
/// holds the session's `RelayActivity` (its channel is the client's) and its `onEnd`, called once
/// with the first reason either side reports.
public final class ChannelRelay: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// How this side reaches its partner.
    private enum Partner {
        /// Not joined yet (a first side before its second), or let go (this handler was removed).
        case none
        /// On this side's event loop: messages are calls.
        case sameLoop(ChannelRelay)
        /// On another loop: messages are `execute`s there.
        case otherLoop(NIOLoopBound<ChannelRelay>)
    }

    /// What one side tells the other.
    private enum Message: Sendable {
        /// Bytes the sender read; `flush` when no read-complete follows (across loops).
        case bytes(ByteBuffer, flush: Bool)
        /// The sender's read cycle ended.
        case flush
        /// The sender's channel can (or cannot) take more writes; the first one says it is up.
        case writable(Bool)
        /// The sender read the end of its input.
        case finished(by: String)
        /// The sender's channel closed, cleanly or because it failed.
        case closed(by: String, failed: Bool)
        /// The session ended for this reason (for the side that holds `onEnd`).
        case ended(RelayEndReason)
    }

    private let side: String
    private let end: RelayEnd
    private let activity: RelayActivity?
    private var onEnd: ((RelayEndReason) -> Void)?
    private var partner: Partner = .none
    /// The partner's name, learned with its end (for the reason a session ended).
    private var partnerSide: String?
    private var context: ChannelHandlerContext?
    private var state = RelayState(relaying: false)
    /// The partner's writability, as it last said.
    private var partnerIsWritable = false
    /// A `read()` held back while the partner could not take more.
    private var readHeld = false
    /// What this side read before its partner was up (a channel may read before the first
    /// `read()` reaches this handler), handed over when it is.
    private var waiting: [ByteBuffer] = []
    /// Completes once this side's output is closed after every byte written to it.
    private var outputClosed: EventLoopFuture<Void>?

    private init(side: String, end: RelayEnd, activity: RelayActivity?, onEnd: ((RelayEndReason) -> Void)?) {
        self.side = side
        self.end = end
        self.activity = activity
        self.onEnd = onEnd
    }

    /// Two handlers for two channels on one event loop. `first`'s channel is the client's: it
    /// holds `activity` (its reads and what it is sent are counted) and `onEnd`.
    public static func matchedPair(
        first: (side: String, end: RelayEnd), second: (side: String, end: RelayEnd), activity: RelayActivity? = nil,
        onEnd: ((RelayEndReason) -> Void)? = nil
    ) -> (ChannelRelay, ChannelRelay) {
        let a = ChannelRelay(side: first.side, end: first.end, activity: activity, onEnd: onEnd)
        let b = ChannelRelay(side: second.side, end: second.end, activity: nil, onEnd: nil)
        a.partner = .sameLoop(b)
        b.partner = .sameLoop(a)
        return (a, b)
    }

    /// The first side of a pair across two loops, made on its channel's loop: it reads nothing
    /// until a second side has joined and said it is writable.
    public static func firstSide(
        _ side: String, end: RelayEnd, activity: RelayActivity? = nil, onEnd: ((RelayEndReason) -> Void)? = nil
    ) -> ChannelRelay {
        ChannelRelay(side: side, end: end, activity: activity, onEnd: onEnd)
    }

    /// The second side, made on `loop` (its channel's), joined to `first` (bound to its own loop).
    public static func secondSide(
        _ side: String, end: RelayEnd, on loop: EventLoop, joining first: NIOLoopBound<ChannelRelay>
    ) -> ChannelRelay {
        let second = ChannelRelay(side: side, end: end, activity: nil, onEnd: nil)
        second.partner = .otherLoop(first)
        let bound = NIOLoopBound(second, eventLoop: loop)
        first.eventLoop.execute { first.value.partnerJoined(bound) }
        return second
    }

    // MARK: The partner

    private func send(_ message: Message) {
        switch partner {
        case .sameLoop(let partner): partner.receive(message)
        case .otherLoop(let partner): partner.eventLoop.execute { partner.value.receive(message) }
        case .none: break
        }
    }

    private func partnerJoined(_ bound: NIOLoopBound<ChannelRelay>) {
        partner = .otherLoop(bound)
        if let context, state.isUp(.near) {
            send(.writable(context.channel.isWritable))
        } else {
            // This side is gone already: so is the session.
            send(.closed(by: side, failed: false))
        }
    }

    private func receive(_ message: Message) {
        switch message {
        case .bytes(let bytes, let flush):
            activity?.deliveredToSocket(bytes.readableBytes)
            guard let context else { return }
            if flush {
                context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
            } else {
                context.write(wrapOutboundOut(bytes), promise: nil)
            }
        case .flush:
            context?.flush()
        case .writable(let writable):
            partnerIsWritable = writable
            if state.phase == .connecting || state.phase == .abandoned(gone: .near) { partnerCameUp() }
            if writable, readHeld, let context {
                readHeld = false
                context.read()
            }
        case .finished(let partnerSide):
            self.partnerSide = partnerSide
            if state.inputEnded(at: .far) { passOnEnd(from: .far) }
        case .closed(let partnerSide, let failed):
            self.partnerSide = partnerSide
            state.inputEnded(at: .far)
            if !failed { passOnEnd(from: .far) }
            guard state.endGone(.far), let context else { return }
            if failed {
                end.abort(context)
            } else {
                // Finish writing what the partner sent (a full close would drop it), then close.
                let channel = context.channel
                (outputClosed ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in
                    channel.close(promise: nil)
                }
            }
        case .ended(let reason):
            report(reason, forward: false)
        }
    }

    /// The partner said it is up: move what waited.
    private func partnerCameUp() {
        switch state.start() {
        case .relay:
            if !waiting.isEmpty {
                for bytes in waiting { send(.bytes(bytes, flush: false)) }
                waiting = []
                send(.flush)
            }
            if let context { send(.writable(context.channel.isWritable)) }
            passOnEnd(from: .near)
            passOnEnd(from: .far)
        case .refuseFar:
            send(.closed(by: side, failed: false))
        case .closeNear:
            context?.close(promise: nil)
        case .none:
            break
        }
    }

    /// Passes the end of the direction from `end` on, once it was read and the other end is up.
    private func passOnEnd(from end: RelayState.End) {
        guard state.mayPassOnEnd(from: end) else { return }
        switch end {
        case .near:
            state.endPassedOn(from: .near)
            send(.finished(by: side))
        case .far:
            guard let context else { return }
            state.endPassedOn(from: .far)
            outputClosed = self.end.finishOutput(context)
        }
    }

    private func report(_ reason: RelayEndReason, forward: Bool = true) {
        if let onEnd {
            self.onEnd = nil
            onEnd(reason)
        } else if forward {
            send(.ended(reason))
        }
    }

    // MARK: ChannelHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        guard state.isUp(.far) else {
            // The partner went away before this side was installed.
            context.close(promise: nil)
            return
        }
        send(.writable(context.channel.isWritable))
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        // Let the partner go: two handlers that hold each other would outlive their channels.
        partner = .none
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        activity?.readFromSocket(bytes.readableBytes)
        guard state.canWrite(to: .far) else {
            if state.phase == .connecting { waiting.append(bytes) }
            return
        }
        switch partner {
        case .sameLoop(let partner): partner.receive(.bytes(bytes, flush: false))
        case .otherLoop: send(.bytes(bytes, flush: true))
        case .none: break
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        if case .sameLoop(let partner) = partner { partner.receive(.flush) }
        context.fireChannelReadComplete()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event, state.inputEnded(at: .near) {
            passOnEnd(from: .near)
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        state.inputEnded(at: .near)
        report(.closed(side: state.finishedFirst == .far ? (partnerSide ?? side) : side))
        if state.endGone(.near) { send(.closed(by: side, failed: false)) }
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        report(.error(side: side, error))
        if state.endGone(.near) { send(.closed(by: side, failed: true)) }
        context.close(promise: nil)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        send(.writable(context.channel.isWritable))
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if partnerIsWritable {
            context.read()
        } else {
            readHeld = true
        }
    }
}
