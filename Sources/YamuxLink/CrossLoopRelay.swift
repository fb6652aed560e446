import NIOCore
import Yamux

/// Joins two channels on *different* event loops into a byte pipe, as `RelayGlue` does on one:
/// a read on one side is a write on the other, a half-close becomes `close(mode: .output)`, a
/// close closes the other side, and a side reads only while its partner is writable.
///
/// Every hand-over is an `execute` on the partner's loop: a thread hop per read, which is why
/// the repeater uses it only when a client's own loop has no link up (a session is otherwise
/// served on its loop's link, with no hop at all). Each side's state is touched on its own loop
/// only; what a side knows of its partner's writability it learns from the partner's messages.
public final class CrossLoopRelay: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let side: String
    private let activity: RelayActivity?
    private let onEnd: ((RelayEndReason) -> Void)?
    /// The partner, reachable only through its own loop (nil until the second side joined).
    private var partner: NIOLoopBound<CrossLoopRelay>?
    private var context: ChannelHandlerContext?
    private var partnerIsWritable = false
    private var pendingRead = false
    private var outputClosed = false
    private var ended = false
    /// The side that finished first (read the end of its input), as far as this side knows: the
    /// end's reason names it, as `YamuxSocketRelay` does, not the side whose channel closed first.
    private var finishedFirst: String?
    /// What arrived before the partner joined (a socket may read before its first `read()`
    /// reaches this handler), handed over when it does.
    private var waiting: [ByteBuffer] = []
    private var waitingEOF = false

    private init(side: String, activity: RelayActivity?, onEnd: ((RelayEndReason) -> Void)?) {
        self.side = side
        self.activity = activity
        self.onEnd = onEnd
    }

    /// The first side, made on its channel's loop: it reads nothing until a second side has
    /// joined and said it is writable. `activity` and `onEnd` are touched on this loop only
    /// (`onEnd` once, with the first reason either side reports).
    public static func firstSide(_ side: String, activity: RelayActivity? = nil, onEnd: ((RelayEndReason) -> Void)? = nil)
        -> CrossLoopRelay
    {
        CrossLoopRelay(side: side, activity: activity, onEnd: onEnd)
    }

    /// The second side, made on `loop` (its channel's), joined to `first` (bound to its own loop).
    public static func secondSide(_ side: String, on loop: EventLoop, joining first: NIOLoopBound<CrossLoopRelay>) -> CrossLoopRelay {
        let second = CrossLoopRelay(side: side, activity: nil, onEnd: nil)
        second.partner = first
        let bound = NIOLoopBound(second, eventLoop: loop)
        first.eventLoop.execute { first.value.partnerJoined(bound) }
        return second
    }

    /// Runs `body` on the partner's loop with the partner (nothing before it joined).
    private func toPartner(_ body: @escaping @Sendable (CrossLoopRelay) -> Void) {
        guard let partner else { return }
        partner.eventLoop.execute { body(partner.value) }
    }

    private func partnerJoined(_ partner: NIOLoopBound<CrossLoopRelay>) {
        self.partner = partner
        if ended || context == nil {
            // This side is gone already: so is the session.
            toPartner { $0.partnerClosed(failed: false) }
            return
        }
        for bytes in waiting { toPartner { $0.deliver(bytes) } }
        waiting = []
        if waitingEOF { toPartner { [side] in $0.partnerFinished(by: side) } }
        let writable = context?.channel.isWritable ?? false
        toPartner { $0.partnerWritabilityChanged(writable) }
    }

    private func report(_ reason: RelayEndReason) {
        guard !ended else { return }
        ended = true
        if let onEnd {
            onEnd(reason)
        } else {
            toPartner { $0.report(reason) }
        }
    }

    // MARK: Messages from the partner (on this side's loop)

    private func deliver(_ bytes: ByteBuffer) {
        activity?.deliveredToSocket(bytes.readableBytes)
        context?.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    private func partnerWritabilityChanged(_ writable: Bool) {
        partnerIsWritable = writable
        if writable, pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    private func partnerFinished(by partnerSide: String) {
        if finishedFirst == nil { finishedFirst = partnerSide }
        guard let context, !outputClosed else { return }
        outputClosed = true
        if context.channel is YamuxStreamChannel {
            context.close(mode: .output, promise: nil)
        } else {
            // A socket: after every byte already written (see RelayGlue.partnerWriteEOF).
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in channel.close(mode: .output, promise: nil) }
        }
    }

    private func partnerClosed(failed: Bool) {
        guard let context else { return }
        if failed, context.channel is YamuxStreamChannel {
            context.triggerUserOutboundEvent(YamuxStreamEvent.reset, promise: nil)
            context.close(promise: nil)
            return
        }
        // Finish what the partner sent, then close.
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: ChannelHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let writable = context.channel.isWritable
        toPartner { $0.partnerWritabilityChanged(writable) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        activity?.readFromSocket(bytes.readableBytes)
        guard partner != nil else { return waiting.append(bytes) }
        toPartner { $0.deliver(bytes) }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        toPartner { $0.partnerWritabilityChanged(writable) }
        context.fireChannelWritabilityChanged()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            if finishedFirst == nil { finishedFirst = side }
            if partner == nil { waitingEOF = true } else { toPartner { [side] in $0.partnerFinished(by: side) } }
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        report(.closed(side: finishedFirst ?? side))
        toPartner { $0.partnerClosed(failed: false) }
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        report(.error(side: side, error))
        toPartner { $0.partnerClosed(failed: true) }
        context.close(promise: nil)
    }

    public func read(context: ChannelHandlerContext) {
        if partnerIsWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
