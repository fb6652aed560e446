import NIOCore

/// Closes a channel that carried no bytes either way for `timeout`.
///
/// Why not NIO's `IdleStateHandler` (`allTimeout`), which fires the same kind of event: it
/// measures idleness with `NIODeadline.now()`, the wall clock (checked in swift-nio 2.101.3), so
/// an `EmbeddedEventLoop`'s virtual time can fire its timer but never makes the channel look
/// idle, and the idle-session tests would need real sleeps. This one uses `eventLoop.now` and
/// one timer per idle stretch (re-armed for the remainder, not per read or write).
/// On expiry it fires ``IdleSessionTimer/Expired`` inbound, so the session
/// handler can log why before it closes.
final class IdleSessionTimer: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny

    /// The user event fired when the channel was idle for the whole timeout.
    struct Expired: Sendable {
        var timeout: TimeAmount
    }

    private let timeout: TimeAmount
    private var lastActivity: NIODeadline = .distantPast
    private var check: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.lastActivity = context.eventLoop.now
        self.schedule(context: context, in: self.timeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.check?.cancel()
        self.check = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.check?.cancel()
        self.check = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.lastActivity = context.eventLoop.now
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        self.lastActivity = context.eventLoop.now
        context.write(data, promise: promise)
    }

    private func schedule(context: ChannelHandlerContext, in delay: TimeAmount) {
        // The timer runs on this handler's own event loop: it may use the handler and its context.
        self.check = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            let idle = context.eventLoop.now - self.lastActivity
            if idle < self.timeout {
                self.schedule(context: context, in: self.timeout - idle)
            } else {
                self.check = nil
                context.fireUserInboundEventTriggered(Expired(timeout: self.timeout))
            }
        }
    }
}
