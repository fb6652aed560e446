import NIOCore

/// Joins two channels into a byte pipe, in the style of swift-nio's proxy example: a read on one
/// side is a write on the other, read-complete is a flush, the far side's half-close becomes
/// `close(mode: .output)` here after every byte queued before it, and a side only reads while its
/// partner is writable (backpressure). Errors close both sides.
///
/// It exists as the floor of `tools/bench` (paths NIO_1TO1, NIO_1TO1x2): what a plain SwiftNIO
/// hop costs, so that everything the repeater spends above it is visibly ours. Both channels
/// must be on the same event loop; nothing here logs or allocates per message.
///
/// A copy, on purpose, of what ByteRelay's `ChannelRelay` does on one loop, without its state,
/// activity counting and end reports: the floor must measure SwiftNIO alone, so that a change to
/// our relay shows up against it instead of moving it.
final class RelayGlue: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: RelayGlue?
    private var context: ChannelHandlerContext?
    /// A `read()` held back while the partner could not take more bytes.
    private var pendingRead = false
    /// Completes when this side's output is closed, after every byte written to it.
    private var outputClosed: EventLoopFuture<Void>?

    private init() {}

    /// Two handlers, one for each channel of a relayed connection.
    static func matchedPair() -> (RelayGlue, RelayGlue) {
        let first = RelayGlue()
        let second = RelayGlue()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    // MARK: Calls from the partner

    private func partnerWrite(_ data: NIOAny) {
        context?.write(data, promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    /// The partner's peer sent FIN: send ours once everything before it is written. A socket whose
    /// own input is already closed turns `close(mode: .output)` into a full close that drops queued
    /// writes, so wait for an empty write first: it completes only after every earlier one.
    private func partnerWriteEOF() {
        guard let context, outputClosed == nil else { return }
        let channel = context.channel
        outputClosed = context.writeAndFlush(NIOAny(ByteBuffer())).flatMap {
            channel.close(mode: .output)
        }
    }

    /// The partner is gone: finish writing what it sent, then close.
    private func partnerClosed() {
        guard let context else { return }
        partnerWriteEOF()
        let channel = context.channel
        (outputClosed ?? context.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// The partner failed: close at once.
    private func partnerFailed() {
        context?.close(promise: nil)
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }

    private var partnerWritable: Bool {
        partner?.context?.channel.isWritable ?? false
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The partner may have held a read back while this side was not installed yet.
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.partnerWrite(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerClosed()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            partner?.partnerWriteEOF()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        partner?.partnerFailed()
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}

/// Handlers live on one event loop; they are never handed to another thread.
@available(*, unavailable)
extension RelayGlue: Sendable {}
