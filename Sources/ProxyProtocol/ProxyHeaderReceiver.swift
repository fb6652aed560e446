import NIOCore

/// Sent down the pipeline once a connection's PROXY header is read, before the bytes that
/// followed it: a later handler (the runtime manager's session) learns the client's address.
public struct ProxyHeaderReceived: Sendable {
    public var header: ProxyHeader
}

/// Reads the PROXY header at the start of a connection or stream, then leaves the pipeline.
///
/// The first handler of a pipeline whose peer must announce the client (`--accept-proxy`). It
/// holds what arrives until the header is complete (at most ``ProxyHeaderParser/maximumHeaderBytes``
/// plus one read), reports the outcome once, and then either passes on what followed the header
/// and removes itself, or closes the channel. A connection that sends no complete header within
/// the timeout, or ends before it, is refused: without the flag nothing is parsed, and with it
/// nothing gets through unannounced.
public final class ProxyHeaderReceiver: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    public enum Outcome {
        /// A header was read. A v2 `LOCAL` (the balancer's health check) carries no client.
        case header(ProxyHeader)
        /// Why the connection is closed, in words for one log line.
        case refused(String)
    }

    /// How long a connection may take to send its header (haproxy's spec leaves it to the receiver).
    public static let defaultTimeout: TimeAmount = .seconds(5)

    private let timeout: TimeAmount
    /// Called once, on the channel's event loop. For `.header` it runs before the bytes after the
    /// header are passed on, so it may add the handlers that take them (behind this one), or
    /// close the channel; for `.refused` the channel is closed after it returns.
    private var onOutcome: ((Outcome, Channel) -> Void)?
    private var received: ByteBuffer?
    private var timer: Scheduled<Void>?
    /// Written to the peer before the close when a connection that is still open is refused, so
    /// that it can tell "refused" from "nobody there" (runtime-manager: a TLS alert).
    private let refusalReply: ByteBuffer?

    public init(
        timeout: TimeAmount = ProxyHeaderReceiver.defaultTimeout, refusalReply: ByteBuffer? = nil,
        onOutcome: @escaping (Outcome, Channel) -> Void
    ) {
        self.timeout = timeout
        self.refusalReply = refusalReply
        self.onOutcome = onOutcome
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        let timeout = self.timeout
        self.timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            let seconds = Double(timeout.nanoseconds) / 1e9
            self.refuse(context: context, "no complete PROXY header within \(seconds.formatted) s\(self.bytesSoFar)")
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.timer?.cancel()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        guard self.onOutcome != nil else { return }  // refused: the rest is dropped
        if self.received != nil {
            self.received!.writeBuffer(&bytes)
        } else {
            self.received = bytes
        }
        let buffer = self.received!
        // The parser never needs more than this; what lies beyond is the connection's own.
        switch ProxyHeaderParser.parse(buffer.readableBytesView.prefix(ProxyHeaderParser.maximumHeaderBytes)) {
        case .needMoreBytes:
            return
        case .invalid(let error):
            self.refuse(context: context, error.description)
        case .header(let header, let consumed):
            self.timer?.cancel()
            let onOutcome = self.onOutcome!
            self.onOutcome = nil
            onOutcome(.header(header), context.channel)
            guard context.channel.isActive else { return }
            context.fireUserInboundEventTriggered(ProxyHeaderReceived(header: header))
            var rest = buffer
            rest.moveReaderIndex(forwardBy: consumed)
            self.received = nil
            if rest.readableBytes > 0 { context.fireChannelRead(self.wrapInboundOut(rest)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event, self.onOutcome != nil {
            self.refuse(context: context, "the connection ended before a complete PROXY header\(self.bytesSoFar)")
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if self.onOutcome != nil {
            self.report(.refused("the connection closed before a complete PROXY header\(self.bytesSoFar)"), context: context)
        }
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard self.onOutcome != nil else { return context.fireErrorCaught(error) }
        self.refuse(context: context, "the connection failed before a complete PROXY header: \(error)")
    }

    private var bytesSoFar: String {
        let count = self.received?.readableBytes ?? 0
        return count == 0 ? " (no byte of it arrived)" : " (\(count) bytes of it arrived)"
    }

    private func report(_ outcome: Outcome, context: ChannelHandlerContext) {
        self.timer?.cancel()
        guard let onOutcome = self.onOutcome else { return }
        self.onOutcome = nil
        self.received = nil
        onOutcome(outcome, context.channel)
    }

    private func refuse(context: ChannelHandlerContext, _ why: String) {
        self.report(.refused(why), context: context)
        guard let refusalReply, context.channel.isActive else {
            context.close(promise: nil)
            return
        }
        // Closed once written (a close at once may drop what is still queued).
        context.writeAndFlush(NIOAny(refusalReply)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

extension Double {
    /// "5" for 5.0, "0.5" for 0.5: seconds as a person writes them.
    fileprivate var formatted: String {
        self == self.rounded() ? String(Int(self)) : String(self)
    }
}
