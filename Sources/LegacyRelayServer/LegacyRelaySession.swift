import LegacyRelay
import NIOCore

/// One old-style session: the handler on its yamux stream, holding what the runtime manager sent
/// until the client's next request collects it.
///
/// Confined to the stream's event loop. The decisions (when to answer, when to stop reading) are
/// made by `LegacySessionInbox`; this class only moves bytes and completes promises. Not
/// Sendable: the relay keeps it in its loop's table and hands it to other threads only inside
/// an `NIOLoopBound`.
final class LegacyRelaySession: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let eventLoop: EventLoop
    /// Set once the table gave the session its id (before the stream opens).
    var id: UInt32 = 0
    private var inbox: LegacySessionInbox
    private let pollWait: TimeAmount
    private var context: ChannelHandlerContext?
    private var heldPoll: (promise: EventLoopPromise<LegacySessionInbox.Decision>, timeout: Scheduled<Void>)?
    private var readHeldBack = false
    private var lastError: Error?

    init(eventLoop: EventLoop, pollWait: TimeAmount, bufferLimit: Int) {
        self.eventLoop = eventLoop
        self.pollWait = pollWait
        self.inbox = LegacySessionInbox(limit: bufferLimit)
    }

    /// One HTTP request's worth of work: forward `payload` (or poll, when it is empty) and say
    /// what to answer. Call on `eventLoop`.
    func exchange(_ payload: ByteBuffer) -> EventLoopFuture<LegacySessionInbox.Decision> {
        eventLoop.preconditionInEventLoop()
        if payload.readableBytes == 0 { return poll() }
        if let reason = inbox.canForward() {
            // The client's bytes cannot reach anyone; what the runtime manager sent last is moot.
            return eventLoop.makeSucceededFuture(.gone(reason: reason))
        }
        guard let context else {
            return eventLoop.makeSucceededFuture(.gone(reason: "the session's stream is not open"))
        }
        // Answered once the bytes are handed to the link: a runtime manager that stops reading
        // holds the client back here instead of growing a buffer in the repeater.
        return context.writeAndFlush(wrapOutboundOut(payload)).assumeIsolated().map {
            self.afterDelivery(self.inbox.forwarded())
        }.recover { error in
            .gone(reason: self.inbox.endReason ?? "the runtime manager's stream failed: \(error)")
        }.nonisolated()
    }

    /// Ends the session from the relay's side (idle expiry, shutdown).
    func close(reason: String) {
        eventLoop.preconditionInEventLoop()
        if let decision = inbox.streamEnded(reason: reason) { answerHeldPoll(decision) }
        context?.close(promise: nil)
    }

    private func poll() -> EventLoopFuture<LegacySessionInbox.Decision> {
        let (superseded, decision) = inbox.poll()
        if superseded, let held = heldPoll {
            heldPoll = nil
            held.timeout.cancel()
            held.promise.succeed(.answer([]))
        }
        guard decision == .wait else { return eventLoop.makeSucceededFuture(afterDelivery(decision)) }
        let promise = eventLoop.makePromise(of: LegacySessionInbox.Decision.self)
        let timeout = eventLoop.assumeIsolated().scheduleTask(in: pollWait) {
            if let decision = self.inbox.pollTimedOut() { self.answerHeldPoll(decision) }
        }
        heldPoll = (promise, timeout)
        return promise.futureResult
    }

    private func answerHeldPoll(_ decision: LegacySessionInbox.Decision) {
        guard let held = heldPoll else { return }
        heldPoll = nil
        held.timeout.cancel()
        held.promise.succeed(afterDelivery(decision))
    }

    /// Bytes were taken out of the inbox: resume reading the stream if it was held back.
    private func afterDelivery(_ decision: LegacySessionInbox.Decision) -> LegacySessionInbox.Decision {
        if readHeldBack, inbox.wantsMoreFromStream, let context {
            readHeldBack = false
            context.read()
        }
        return decision
    }

    // MARK: ChannelHandler

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.received(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let decision = inbox.readCompleted() { answerHeldPoll(decision) }
    }

    func read(context: ChannelHandlerContext) {
        if inbox.wantsMoreFromStream {
            context.read()
        } else {
            readHeldBack = true
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        lastError = error
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let reason =
            lastError.map { "the runtime manager's stream failed (\($0)); the link may have dropped" }
            ?? "the runtime manager closed the session"
        if let decision = inbox.streamEnded(reason: reason) { answerHeldPoll(decision) }
        context.fireChannelInactive()
    }
}
