import LegacyRelay
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import YamuxLink

/// The old HTTP relay (`POST /runtime_manager`), kept so old clients work while a deployment
/// moves to plain TCP, and as the "before" of every benchmark.
///
/// Each old-style session is one yamux stream on the link of the event loop whose HTTP connection
/// opened it; later requests for it may arrive on any connection and hop to that loop. What waits
/// how long is decided by `LegacySessionInbox`; the body formats are `LegacyRelayRequest` and
/// `LegacyRelayResponse`; the HTTP side is `LegacyHTTPHandler`.
public final class LegacyHTTPRelay: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// How long a poll (a request without TLS bytes) is held waiting for the runtime manager.
        public var pollWait: TimeAmount = .milliseconds(200)
        /// A session without a request for this long is closed (the old protocol has no close).
        public var idleTimeout: TimeAmount = .seconds(60)
        /// Sessions at once; more are refused with 503.
        public var maximumSessions = 16_384
        /// Largest request body; a TLS record (16 KiB) in base64 is about 22 KiB.
        public var maximumBodyBytes = 256 * 1024
        /// Bytes from the runtime manager held per session before the stream is no longer read.
        public var maximumHeldBytes = 1024 * 1024

        public init() {}
    }

    public let configuration: Configuration
    private let group: EventLoopGroup
    private let linkForLoop: @Sendable (EventLoop) -> Link?
    private let logger: Logger
    private let table: NIOLockedValueBox<LegacySessionTable<LegacyRelaySession>>
    private var listener: Channel?
    private var expiryTask: RepeatedTask?

    public init(
        configuration: Configuration, group: EventLoopGroup, logger: Logger,
        linkForLoop: @escaping @Sendable (EventLoop) -> Link?
    ) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.linkForLoop = linkForLoop
        self.table = NIOLockedValueBox(
            LegacySessionTable(idleTimeout: configuration.idleTimeout, capacity: configuration.maximumSessions))
    }

    /// Sessions held right now.
    public var sessionCount: Int { table.withLockedValue { $0.count } }

    /// The address the HTTP listener is bound to.
    public var localAddress: SocketAddress? { listener?.localAddress }

    /// Binds the HTTP listener and starts the idle-expiry clock.
    public func start(listen address: LinkAddress) -> EventLoopFuture<Void> {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMapThrowing {
                    let sync = channel.pipeline.syncOperations
                    // An HTTP connection left open with no request is closed like a session would be.
                    try sync.addHandler(IdleStateHandler(allTimeout: self.configuration.idleTimeout))
                    try sync.addHandler(LegacyHTTPHandler(relay: self, maximumBodyBytes: self.configuration.maximumBodyBytes))
                }
            }
        let bound = bootstrap.bind(to: address)
        return bound.map { channel in
            self.listener = channel
            let period = max(TimeAmount.milliseconds(100), min(.nanoseconds(self.configuration.idleTimeout.nanoseconds / 4), .seconds(5)))
            self.expiryTask = channel.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
                self.expireIdleSessions(now: .now())
            }
            self.logger.info(
                "legacy HTTP relay listening (POST /runtime_manager)",
                metadata: ["listen": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        }
    }

    /// Stops listening and closes every session.
    public func shutdown() -> EventLoopFuture<Void> {
        expiryTask?.cancel()
        let loop = group.next()
        let closed = listener?.close().recover { _ in } ?? loop.makeSucceededVoidFuture()
        let sessions = table.withLockedValue { $0.removeAll() }
        for (_, session) in sessions {
            session.eventLoop.execute { session.close(reason: "the repeater is shutting down") }
        }
        return closed
    }

    /// Closes sessions idle for the idle timeout at `now` (called by the relay's clock every
    /// quarter of the idle timeout; public so tests can move the clock forward).
    public func expireIdleSessions(now: NIODeadline) {
        let expired = table.withLockedValue { $0.expire(now: now) }
        for (id, session) in expired {
            logger.debug("legacy session expired", metadata: ["session": "\(id)"])
            session.eventLoop.execute {
                session.close(reason: "the session was idle for \(self.configuration.idleTimeout) and expired")
            }
        }
    }

    /// Handles one request body, on the HTTP connection's event loop. The future fails with a
    /// `LegacyRelayFailure` the HTTP handler turns into a status and a message.
    func handle(body: ByteBuffer, on loop: EventLoop) -> EventLoopFuture<LegacyRelayResponse> {
        let request: LegacyRelayRequest
        do {
            request = try LegacyRelayRequest(parsing: body)
        } catch {
            return loop.makeFailedFuture(LegacyRelayFailure(.malformedBody, "\(error)"))
        }
        if request.opensSession { return open(sending: request.payload, on: loop) }
        let id = request.sessionID
        guard let session = table.withLockedValue({ $0.use(id, now: .now()) }) else {
            return loop.makeFailedFuture(
                LegacyRelayFailure(
                    .unknownSession,
                    "unknown session \(id): it never existed, expired after \(configuration.idleTimeout) without a request, "
                        + "or has ended; start a new session with id 0"))
        }
        return session.eventLoop.flatSubmit { session.exchange(request.payload) }
            .flatMapThrowing { try self.response(id: id, decision: $0) }
    }

    private func open(sending payload: ByteBuffer, on loop: EventLoop) -> EventLoopFuture<LegacyRelayResponse> {
        guard let link = linkForLoop(loop) else {
            return loop.makeFailedFuture(LegacyRelayFailure(.unavailable, "no link serves this event loop"))
        }
        let session = LegacyRelaySession(
            eventLoop: loop, pollWait: configuration.pollWait, bufferLimit: configuration.maximumHeldBytes)
        let id: UInt32
        do {
            id = try table.withLockedValue { try $0.insert(session, now: .now()) }
        } catch {
            return loop.makeFailedFuture(
                LegacyRelayFailure(
                    .unavailable,
                    "the relay holds \(configuration.maximumSessions) sessions already; retry later or raise the limit"))
        }
        session.id = id
        return loop.flatSubmit {
            link.openStream { stream in
                stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(session) }
            }
        }.flatMapError { error in
            self.table.withLockedValue { _ = $0.remove(id) }
            return loop.makeFailedFuture(
                LegacyRelayFailure(.unavailable, "cannot open a session to the runtime manager: \(error); retry shortly"))
        }.flatMap { stream in
            stream.closeFuture.whenComplete { _ in
                self.logger.debug("legacy session's stream closed", metadata: ["session": "\(id)"])
            }
            return session.exchange(payload)
        }.flatMapThrowing { try self.response(id: id, decision: $0) }
    }

    /// Turns a session's decision into a body, forgetting a session that is gone.
    private func response(id: UInt32, decision: LegacySessionInbox.Decision) throws -> LegacyRelayResponse {
        switch decision {
        case .answer(let chunks):
            return LegacyRelayResponse(sessionID: id, chunks: chunks)
        case .wait:
            preconditionFailure("a held request is answered through its future")
        case .gone(let reason):
            table.withLockedValue { _ = $0.remove(id) }
            throw LegacyRelayFailure(.sessionGone, "session \(id) has ended: \(reason); start a new session with id 0")
        }
    }
}
