import NIOCore
import Yamux

/// Joins two channels into a byte pipe: a read on one side is a write on the other,
/// read-complete is a flush, a half-close (input closed) becomes `close(mode: .output)` on the
/// other side, and a side only reads while its partner is writable — so a slow reader on either
/// end stalls only its own session.
///
/// Both channels must be on the same event loop (a hop between loops costs tens of µs per
/// message; the repeater keeps each client on the loop of its link).
public final class RelayGlue: ChannelDuplexHandler {
    public typealias InboundIn = NIOAny
    public typealias OutboundIn = NIOAny
    public typealias OutboundOut = NIOAny

    public typealias EndReason = RelayEndReason

    private var partner: RelayGlue?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private let side: String
    private var onEnd: ((EndReason) -> Void)?
    /// The first reason seen wins: later ones are consequences.
    private var ended = false
    /// The side that finished first (read the end of its input), shared by both handlers: the
    /// end's reason names it, as `CrossLoopRelay` and `YamuxSocketRelay` do, not the side whose
    /// channel happened to close first.
    private var finishedFirst: String?
    /// Marked on every read, either side, for an idle timeout (`IdleSweeper`).
    private let activity: RelayActivity?

    private init(side: String, activity: RelayActivity?) {
        self.side = side
        self.activity = activity
    }

    /// Two handlers, one for each channel. `onEnd` is called once, with the first reason either
    /// side reports; `activity`, if given, is marked on every read either way.
    public static func matchedPair(
        first: String, second: String, activity: RelayActivity? = nil, onEnd: ((EndReason) -> Void)? = nil
    ) -> (RelayGlue, RelayGlue) {
        let a = RelayGlue(side: first, activity: activity)
        let b = RelayGlue(side: second, activity: activity)
        a.partner = b
        b.partner = a
        a.onEnd = onEnd
        b.onEnd = onEnd
        return (a, b)
    }

    private func report(_ reason: EndReason) {
        guard !ended else { return }
        ended = true
        partner?.ended = true
        onEnd?(reason)
        onEnd = nil
        partner?.onEnd = nil
    }

    // MARK: Calls from the partner

    /// Completes once this side's output is closed after every byte written to it.
    private var outputClosed: EventLoopFuture<Void>?

    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func partnerFlush() { context?.flush() }

    private func partnerWriteEOF() {
        guard let context, outputClosed == nil else { return }
        let channel = context.channel
        if channel is YamuxStreamChannel {
            // A stream sends its FIN after every byte already written.
            outputClosed = context.close(mode: .output)
        } else {
            // A socket whose peer already half-closed turns close(mode: .output) into a full
            // close that drops queued writes; so first wait for an empty write, which completes
            // only after every earlier one, then close.
            outputClosed = context.writeAndFlush(NIOAny(ByteBuffer())).flatMap {
                channel.close(mode: .output)
            }
        }
    }

    /// The partner is gone: finish writing what it sent (a full close would drop bytes still
    /// queued on this side), then close.
    private func partnerClosed() {
        guard let context else { return }
        partnerWriteEOF()
        let channel = context.channel
        (outputClosed ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// The partner failed: end this side abruptly (a stream is reset rather than finished, so
    /// the far end does not mistake a failure for a complete message).
    private func partnerFailed() {
        guard let context else { return }
        if context.channel is YamuxStreamChannel {
            context.triggerUserOutboundEvent(YamuxStreamEvent.reset, promise: nil)
        }
        context.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    private var partnerWritable: Bool { partner?.context?.channel.isWritable ?? false }

    // MARK: ChannelHandler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The partner may have held a read back while this side was not installed yet.
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        activity?.sawTraffic = true
        partner?.partnerWrite(data)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        report(.closed(side: finishedFirst ?? side))
        partner?.partnerClosed()
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            if finishedFirst == nil {
                finishedFirst = side
                partner?.finishedFirst = side
            }
            partner?.partnerWriteEOF()
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        report(.error(side: side, error))
        partner?.partnerFailed()
        context.close(promise: nil)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
