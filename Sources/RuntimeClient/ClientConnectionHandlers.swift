import LegacyRelay
import NIOCore
import NIOExtras
import NIOSSL
import NIOTLS
import Synchronization
import SystemErrorText
import TransportProtocol

#if canImport(Glibc)
import Glibc
#endif

/// What a client connection tells its owner beyond the responses themselves: when the TLS
/// handshake is done, and why the connection failed.
///
/// Sits just before NIOExtras' `RequestResponseHandler`, which matches responses to requests in
/// order and, on an error, fails every waiting request with that error and closes. This handler
/// turns each error into a ``RuntimeClientError`` first (so those requests fail with a line the
/// CLI can print), remembers the first one (it outlives the pipeline), and fails `connect`'s
/// handshake promise with the TLS reason instead of leaving it to the first request.
final class ClientConnectionMonitor: ChannelInboundHandler {
    typealias InboundIn = RuntimeManagerResponse
    typealias InboundOut = RuntimeManagerResponse

    private let handshake: EventLoopPromise<Void>
    private let address: String
    private let firstFailure: FirstFailure
    private let waits: ClientWaits
    private var handshakeDone = false

    init(
        handshake: EventLoopPromise<Void>, address: String, firstFailure: FirstFailure, waits: ClientWaits
    ) {
        self.handshake = handshake
        self.address = address
        self.firstFailure = firstFailure
        self.waits = waits
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event, !self.handshakeDone {
            self.handshakeDone = true
            self.waits.handshakeDone.store(true, ordering: .releasing)
            self.handshake.succeed(())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure = self.record(
            self.handshakeDone ? Self.explain(error) : Self.explainDuringHandshake(error, address: self.address))
        context.fireErrorCaught(failure)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.record(
            self.handshakeDone
                ? .connectionClosed(address: self.address)
                : .closedDuringHandshake(address: self.address, detail: "end of stream"))
        context.fireChannelInactive()
    }

    /// Before the handshake finishes, a peer that only hangs up (a clean EOF, or a reset) is
    /// told apart from a TLS disagreement: through a repeater it is nearly always a link that is
    /// down, which a TLS error would hide.
    static func explainDuringHandshake(_ error: any Error, address: String) -> RuntimeClientError {
        switch error {
        case NIOSSLError.uncleanShutdown:
            return .closedDuringHandshake(address: address, detail: "end of stream")
        case let error as IOError where error.errnoCode == ECONNRESET:
            return .closedDuringHandshake(address: address, detail: "connection reset")
        case NIOSSLError.handshakeFailed(let inner) where "\(inner)".contains("EOF during handshake"):
            return .closedDuringHandshake(address: address, detail: "end of stream")
        default:
            return Self.explain(error)
        }
    }

    /// Remembers the first failure, fails the handshake with it if still pending; returns it.
    @discardableResult
    private func record(_ error: RuntimeClientError) -> RuntimeClientError {
        let first = self.firstFailure.record(error)
        if !self.handshakeDone {
            self.handshakeDone = true
            self.handshake.fail(first)
        }
        return first
    }

    /// A pipeline error as the user should read it.
    static func explain(_ error: any Error) -> RuntimeClientError {
        switch error {
        case let error as RuntimeClientError: return error
        case let error as TransportProtocolError: return .unexpectedResponse("\(error)")
        case let error as LegacyHTTPRelayError: return .relayFailed("\(error)")
        case let error as IOError:
            // The socket failed (a reset, a broken pipe): a lost connection, not a TLS
            // disagreement, and worth a retry (exit 69), whatever TLS was doing at the time.
            return .connectionLost(
                reason: "the connection was lost: \(SystemErrorText.describe(error)); the runtime manager, its link or the repeater "
                    + "went away (see their logs)")
        default: return .tls(error)
        }
    }
}

/// The last handler of a client connection: a response that arrives while no request waits
/// fails the connection, as it did before NIOExtras' `RequestResponseHandler` took over the queue.
///
/// Why: `RequestResponseHandler` reports such a response as `ResponsePromiseBufferEmpty` to the
/// handler after it and otherwise carries on; a runtime manager that answers what was not asked
/// is broken or hostile, and its next answer could be taken for another request's.
final class UnrequestedResponseHandler: ChannelInboundHandler {
    typealias InboundIn = Never

    private let firstFailure: FirstFailure

    init(firstFailure: FirstFailure) {
        self.firstFailure = firstFailure
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is NIOExtrasErrors.ResponsePromiseBufferEmpty else {
            context.fireErrorCaught(error)
            return
        }
        let failure = RuntimeClientError.unexpectedResponse("a response arrived while no request was waiting for one")
        self.firstFailure.record(failure)
        context.close(promise: nil)
    }
}

/// What the client awaits, shared by the connection's handlers and ``RuntimeClient``: whether
/// the TLS handshake is done, and how many requests wait for their answers.
final class ClientWaits: Sendable {
    /// Set once on the connection's loop, read by the timeout's timer (an atomic, not a lock).
    let handshakeDone = Atomic<Bool>(false)
    /// Requests sent and not answered yet (added to by ``RuntimeClient`` from any thread).
    let awaitedResponses = Atomic<Int>(0)

    /// Something is awaited from the peer: the handshake, or an answer.
    var awaitingPeer: Bool {
        !handshakeDone.load(ordering: .acquiring) || awaitedResponses.load(ordering: .relaxed) > 0
    }
}

/// The first failure of a connection, shared by its handlers and ``RuntimeClient``, which reads it
/// after the pipeline is gone to say why a request failed.
final class FirstFailure: Sendable {
    private let failure = Mutex<RuntimeClientError?>(nil)

    /// Keeps `error` unless another came first; returns the one kept.
    @discardableResult
    func record(_ error: RuntimeClientError) -> RuntimeClientError {
        failure.withLock { first in
            if first == nil { first = error }
            return first!
        }
    }

    var current: RuntimeClientError? { failure.withLock { $0 } }
}

/// `--timeout`: the first handler of a client connection (next to the socket, so that every TLS
/// record counts), it notes when bytes last moved either way, and fails the connection with
/// ``RuntimeClientError/timedOut(address:phase:seconds:)`` once nothing has moved for the
/// timeout while the handshake or an answer is awaited. Bytes count, not messages: a large get
/// or put that keeps moving never times out, however long it takes.
final class ProgressTimeout: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let waits: ClientWaits
    private let address: String
    private var lastProgress = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(timeout: TimeAmount, waits: ClientWaits, address: String) {
        self.timeout = timeout
        self.waits = waits
        self.address = address
    }

    func channelActive(context: ChannelHandlerContext) {
        lastProgress = .now()
        schedule(context: context, at: lastProgress + timeout)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { schedule(context: context, at: .now() + timeout) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastProgress = .now()
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.assumeIsolated().whenSuccess { self.lastProgress = .now() }
        context.write(data, promise: written)
    }

    private func schedule(context: ChannelHandlerContext, at deadline: NIODeadline) {
        check?.cancel()
        check = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.expired(context: context)
        }
    }

    private func expired(context: ChannelHandlerContext) {
        let due = lastProgress + timeout
        guard NIODeadline.now() >= due, waits.awaitingPeer else {
            schedule(context: context, at: max(due, .now() + .milliseconds(100)))
            return
        }
        let phase = waits.handshakeDone.load(ordering: .acquiring) ? "wait for an answer" : "TLS handshake"
        let seconds = Int(timeout.nanoseconds / 1_000_000_000)
        context.fireErrorCaught(RuntimeClientError.timedOut(address: address, phase: phase, seconds: seconds))
        context.close(promise: nil)
    }
}
