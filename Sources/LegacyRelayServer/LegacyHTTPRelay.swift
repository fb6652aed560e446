import LegacyRelay
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Repeater
import Synchronization
import YamuxLink

/// The old HTTP relay (`POST /runtime_manager`), kept so old clients work while a deployment
/// moves to plain TCP, and as the "before" of every benchmark.
///
/// Each old-style session is one yamux stream on the link of the event loop whose HTTP connection
/// opened it; later requests for it may arrive on any connection and hop to that loop. What waits
/// how long is decided by `LegacySessionInbox`; the body formats are `LegacyRelayRequest` and
/// `LegacyRelayResponse`; the HTTP side is `LegacyHTTPHandler`.
///
/// Each loop keeps the table of the sessions it opened (`LegacySessionTable`, partitioned so an
/// id names its loop): a request looks its session up on that loop, where it runs anyway, and no
/// lock is taken per request; the loops share only the session total, a relaxed atomic.
public final class LegacyHTTPRelay: Sendable {
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
    /// Each loop's sessions, in the order of `group`'s loops (a session id's partition).
    private let tables: [NIOLoopBoundBox<LegacySessionTable<LegacyRelaySession>>]
    private let tableIndexByLoop: [ObjectIdentifier: Int]
    /// Sessions over all loops (relaxed: it orders nothing).
    private let openSessions = Atomic<Int>(0)
    /// What `maximumSessions` (repeaterd's `--max-sessions`) limits: these sessions and the
    /// repeater's, when it shares its limit.
    public let sessionLimit: SessionLimit
    /// Set by a draining shutdown: no new sessions (read at every open: an atomic, not a lock).
    private let isDraining = Atomic<Bool>(false)
    /// The draining shutdown's promise, completed when the last session ends.
    private let drained = Mutex<EventLoopPromise<Void>?>(nil)
    /// The HTTP listener and each loop's expiry clock: set at start, read at shutdown only.
    private let running = Mutex<(listener: Channel?, expiryTasks: [RepeatedTask])>((nil, []))

    public init(
        configuration: Configuration, group: EventLoopGroup, logger: Logger,
        linkForLoop: @escaping @Sendable (EventLoop) -> Link?, sessionLimit: SessionLimit? = nil
    ) {
        self.configuration = configuration
        self.sessionLimit = sessionLimit ?? SessionLimit(maximum: configuration.maximumSessions)
        self.group = group
        self.logger = logger
        self.linkForLoop = linkForLoop
        let loops = Array(group.makeIterator())
        self.tables = loops.enumerated().map { index, loop in
            NIOLoopBoundBox.makeBoxSendingValue(
                LegacySessionTable(
                    idleTimeout: configuration.idleTimeout, capacity: configuration.maximumSessions, partition: index, of: loops.count),
                eventLoop: loop)
        }
        self.tableIndexByLoop = Dictionary(uniqueKeysWithValues: loops.enumerated().map { (ObjectIdentifier($1), $0) })
    }

    /// Sessions held right now (any thread).
    public var sessionCount: Int { openSessions.load(ordering: .relaxed) }

    /// The address the HTTP listener is bound to.
    public var localAddress: SocketAddress? { running.withLock { $0.listener?.localAddress } }

    /// The table that holds (or would hold) session `id`.
    private func table(of id: UInt32) -> NIOLoopBoundBox<LegacySessionTable<LegacyRelaySession>> {
        tables[LegacySessionTable<LegacyRelaySession>.partition(of: id, count: tables.count)]
    }

    /// Forgets `id`, on its table's loop.
    private func forget(_ id: UInt32) {
        if table(of: id).value.remove(id) != nil { sessionsEnded(1) }
    }

    /// `count` sessions left their tables: their places are free, and a drain may be over.
    private func sessionsEnded(_ count: Int) {
        guard count > 0 else { return }
        sessionLimit.release(count)
        let left = openSessions.wrappingSubtract(count, ordering: .relaxed).newValue
        guard left == 0, isDraining.load(ordering: .relaxed) else { return }
        drained.withLock { promise -> EventLoopPromise<Void>? in
            defer { promise = nil }
            return promise
        }?.succeed(())
    }

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
            let period = max(TimeAmount.milliseconds(100), min(.nanoseconds(self.configuration.idleTimeout.nanoseconds / 4), .seconds(5)))
            // Each loop expires its own table.
            let tasks = self.tables.indices.map { index in
                self.tables[index].eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
                    self.expireIdleSessions(inTable: index, now: .now())
                }
            }
            self.running.withLock { $0 = (channel, tasks) }
            self.logger.info(
                "legacy HTTP relay listening (POST /runtime_manager)",
                metadata: ["listen": "\(channel.localAddress.map(\.commandLineForm) ?? "?")"])
        }
    }

    /// Drains, then stops: no new sessions from now on (503), while the open ones go on, since the
    /// old protocol's clients must keep posting to finish; once the last one has ended (its stream
    /// closed, or it idled out), or after `drainTimeout`, what is left is closed and the listener
    /// with it. A drain timeout of zero closes everything at once.
    public func shutdown(drainTimeout: TimeAmount = .zero) -> EventLoopFuture<Void> {
        let loop = group.next()
        let drained = loop.makePromise(of: Void.self)
        self.drained.withLock { $0 = drained }
        isDraining.store(true, ordering: .relaxed)
        let openNow = sessionCount
        if openNow == 0 {
            // Unless the last session's end took it first.
            let untaken = self.drained.withLock { promise -> EventLoopPromise<Void>? in
                defer { promise = nil }
                return promise
            }
            untaken?.succeed(())
        } else if drainTimeout > .zero {
            logger.info("legacy HTTP relay: no new sessions; draining \(openNow) for up to \(drainTimeout)")
        }
        let timeout = loop.scheduleTask(in: drainTimeout) {
            let left = self.sessionCount
            if left > 0, drainTimeout > .zero { self.logger.warning("drain timeout: closing \(left) legacy session(s) still open") }
            self.closeAllSessions(reason: "the repeater is shutting down")
        }
        return drained.futureResult.flatMap {
            timeout.cancel()
            let (listener, expiryTasks) = self.running.withLock { $0 }
            for task in expiryTasks { task.cancel() }
            return listener?.close().recover { _ in } ?? loop.makeSucceededVoidFuture()
        }
    }

    private func closeAllSessions(reason: String) {
        for table in tables {
            table.eventLoop.execute {
                let sessions = table.value.removeAll()
                for (_, session) in sessions { session.close(reason: reason) }
                self.sessionsEnded(sessions.count)
            }
        }
    }

    /// Closes sessions idle for the idle timeout at `now`, on every loop (each loop's clock does
    /// it for its own table every quarter of the idle timeout; public so tests can move the
    /// clock forward).
    public func expireIdleSessions(now: NIODeadline) -> EventLoopFuture<Void> {
        let expired = tables.indices.map { index in
            tables[index].eventLoop.submit { self.expireIdleSessions(inTable: index, now: now) }
        }
        return EventLoopFuture.andAllSucceed(expired, on: group.any())
    }

    private func expireIdleSessions(inTable index: Int, now: NIODeadline) {
        let expired = tables[index].value.expire(now: now)
        for (id, session) in expired {
            logger.debug("legacy session expired", metadata: ["session": .stringConvertible(id)])
            session.close(reason: "the session was idle for \(configuration.idleTimeout) and expired")
        }
        sessionsEnded(expired.count)
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
        let table = table(of: id)
        // To the session's loop (its table, its stream), and the answer back to the caller's.
        return table.eventLoop.flatSubmit { () -> EventLoopFuture<LegacySessionInbox.Decision> in
            guard let session = table.value.use(id, now: .now()) else {
                return table.eventLoop.makeFailedFuture(
                    LegacyRelayFailure(
                        .unknownSession,
                        "unknown session \(id): it never existed, expired after \(self.configuration.idleTimeout) without a request, "
                            + "or has ended; start a new session with id 0"))
            }
            return session.exchange(request.payload)
        }.flatMapThrowing { try self.response(id: id, decision: $0) }
    }

    private func open(sending payload: ByteBuffer, on loop: EventLoop) -> EventLoopFuture<LegacyRelayResponse> {
        guard let link = linkForLoop(loop) else {
            return loop.makeFailedFuture(LegacyRelayFailure(.unavailable, "no link serves this event loop"))
        }
        guard let tableIndex = tableIndexByLoop[ObjectIdentifier(loop)] else {
            return loop.makeFailedFuture(LegacyRelayFailure(.unavailable, "the request arrived on an event loop the relay does not know"))
        }
        if isDraining.load(ordering: .relaxed) {
            return loop.makeFailedFuture(
                LegacyRelayFailure(.unavailable, "the repeater is shutting down and opens no new sessions; retry with another repeater"))
        }
        let table = tables[tableIndex]
        let session = LegacyRelaySession(
            eventLoop: loop, pollWait: configuration.pollWait, bufferLimit: configuration.maximumHeldBytes)
        guard sessionLimit.reserve() else {
            return loop.makeFailedFuture(
                LegacyRelayFailure(
                    .unavailable,
                    "the repeater serves \(sessionLimit.maximum) sessions already (--max-sessions); retry later or raise the limit"))
        }
        openSessions.wrappingAdd(1, ordering: .relaxed)
        let id: UInt32
        do {
            id = try table.value.insert(session, now: .now())
        } catch {
            sessionsEnded(1)
            return loop.makeFailedFuture(
                LegacyRelayFailure(
                    .unavailable,
                    "the relay holds \(configuration.maximumSessions) sessions already; retry later or raise the limit"))
        }
        session.id = id
        // On `loop` (the HTTP connection's, the link's and the stream's): bound to it.
        let boundSession = NIOLoopBound(session, eventLoop: loop)
        return link.openStream { stream in
            stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(boundSession.value) }
        }.flatMapError { error in
            self.forget(id)
            return loop.makeFailedFuture(
                LegacyRelayFailure(.unavailable, "cannot open a session to the runtime manager: \(error); retry shortly"))
        }.flatMap { stream in
            stream.closeFuture.whenComplete { _ in
                self.logger.debug("legacy session's stream closed", metadata: ["session": .stringConvertible(id)])
            }
            return boundSession.value.exchange(payload)
        }.flatMapThrowing { try self.response(id: id, decision: $0) }
    }

    /// Turns a session's decision into a body, forgetting a session that is gone (on its loop).
    private func response(id: UInt32, decision: LegacySessionInbox.Decision) throws -> LegacyRelayResponse {
        switch decision {
        case .answer(let chunks):
            return LegacyRelayResponse(sessionID: id, chunks: chunks)
        case .wait:
            preconditionFailure("a held request is answered through its future")
        case .gone(let reason):
            forget(id)
            throw LegacyRelayFailure(.sessionGone, "session \(id) has ended: \(reason); start a new session with id 0")
        }
    }
}
