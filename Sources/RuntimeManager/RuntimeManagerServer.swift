import EventSummaries
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import SystemErrorText
import TransportProtocol
import Yamux
import YamuxLink

#if canImport(Glibc)
import Glibc
#endif

/// What a runtime manager is started with; mirrors the command-line flags.
public struct RuntimeManagerConfiguration: Sendable {
    public var certificatePath: String
    public var keyPath: String
    public var clientCAPath: String
    public var policyPath: String
    /// Limit on the total size of stored files (`--max-store-bytes`).
    public var maximumStoreBytes: Int
    /// Limit on one message (`--max-message-bytes`).
    public var maximumMessageBytes: Int
    public var handshakeTimeout: TimeAmount
    /// `--message-timeout`: longest wait for the next byte of a started message.
    public var messageTimeout: TimeAmount
    /// `--idle-timeout`: a session silent both ways this long is closed; nil never closes one for silence.
    public var idleTimeout: TimeAmount?
    /// `--accept-proxy`: every session (stream or direct connection) begins with a PROXY header.
    public var acceptsProxyHeader = false
    /// `--access-log`: one info line per session when it ends.
    public var accessLog = false

    public static let defaultMaximumStoreBytes = 1024 * 1024 * 1024

    public init(
        certificatePath: String, keyPath: String, clientCAPath: String, policyPath: String,
        maximumStoreBytes: Int = Self.defaultMaximumStoreBytes,
        maximumMessageBytes: Int = LengthPrefixFrameDecoder.defaultMaximumMessageBytes,
        handshakeTimeout: TimeAmount = .seconds(30),
        messageTimeout: TimeAmount = .seconds(30),
        idleTimeout: TimeAmount? = .seconds(300)
    ) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.clientCAPath = clientCAPath
        self.policyPath = policyPath
        self.maximumStoreBytes = maximumStoreBytes
        self.maximumMessageBytes = maximumMessageBytes
        self.handshakeTimeout = handshakeTimeout
        self.messageTimeout = messageTimeout
        self.idleTimeout = idleTimeout
    }
}

/// A runtime manager: one file store and policy, served to any number of
/// sessions over any number of listeners.
///
/// The server owns what is shared (TLS context, store, policy, open sessions,
/// shutdown signal). Transports are added on top: ``bindDirect(host:port:)``
/// accepts TLS directly over TCP; a yamux link listener configures each
/// accepted stream with ``RuntimeManagerSession/configure(channel:context:)``
/// using ``sessionContext`` and hands its listening channel to
/// ``addListener(_:)`` so that shutdown closes it too.
public final class RuntimeManagerServer: Sendable {
    public let configuration: RuntimeManagerConfiguration
    public let group: any EventLoopGroup
    /// Pass this to ``RuntimeManagerSession/configure(channel:context:)`` for every stream.
    public let sessionContext: RuntimeManagerSessionContext
    public let store: FileStore
    public let policy: Policy
    private let logger: Logger
    private let shutdownSignal = ShutdownSignal()

    /// What shutdown must close: bound from any task, taken once by ``shutdown()``.
    private struct Listening {
        var listeners: [any Channel] = []
        var linkListeners: [YamuxLinkListener] = []
    }

    private let listening = Mutex(Listening())

    /// Loads the certificates, key and policy; fails with a message naming the bad file.
    public init(configuration: RuntimeManagerConfiguration, group: any EventLoopGroup, logger: Logger) throws {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.policy = try Policy(contentsOf: configuration.policyPath)
        self.store = FileStore(maximumTotalBytes: configuration.maximumStoreBytes)
        let sslContext = try ServerTLS.makeContext(
            certificatePath: configuration.certificatePath,
            keyPath: configuration.keyPath,
            clientCAPath: configuration.clientCAPath
        )
        let signal = self.shutdownSignal
        var sessionContext = RuntimeManagerSessionContext(
            sslContext: sslContext,
            requestHandler: RequestHandler(
                store: self.store, policy: self.policy, maximumMessageBytes: configuration.maximumMessageBytes
            ),
            maximumMessageBytes: configuration.maximumMessageBytes,
            handshakeTimeout: configuration.handshakeTimeout,
            messageTimeout: configuration.messageTimeout,
            idleTimeout: configuration.idleTimeout,
            logger: logger,
            onShutdownRequest: { identity in
                logger.notice("shutting down at the request of \(identity)")
                signal.trigger()
            }
        )
        sessionContext.acceptsProxyHeader = configuration.acceptsProxyHeader
        sessionContext.accessLog = configuration.accessLog
        if !configuration.accessLog {
            sessionContext.sessionEvents = SessionEvents(logger: logger, lead: "sessions", eventLoop: group.next())
        }
        self.sessionContext = sessionContext
    }

    /// Accepts clients speaking TLS directly over TCP (`--direct`), the no-repeater baseline.
    /// Returns the bound address (useful with port 0).
    @discardableResult
    public func bindDirect(host: String, port: Int) async throws -> SocketAddress {
        let context = self.sessionContext
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: self.group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    RuntimeManagerSession.configure(channel: channel, context: context)
                }
                .bind(host: host, port: port)
                .get()
        } catch let error as IOError where error.errnoCode == EACCES {
            throw RuntimeManagerSetupError("cannot listen on \(host):\(port): permission denied (ports below 1024 need privileges)")
        } catch {
            throw RuntimeManagerSetupError(
                "cannot listen on \(LinkAddress.tcp(host: host, port: port)): \(SystemErrorText.describeBind(error, unixPath: nil))")
        }
        self.addListener(channel)
        guard let address = channel.localAddress else {
            throw RuntimeManagerSetupError("cannot listen on \(host):\(port): the listening socket has no local address")
        }
        self.logger.notice("accepting direct TLS clients on \(address)")
        return address
    }

    /// Accepts repeaters' yamux links (`--listen`): any number of links, each independent; every
    /// stream a repeater opens is one client session with its own TLS. Returns the bound address.
    @discardableResult
    public func bindLinks(
        address: LinkAddress, yamux: YamuxConfiguration = YamuxConfiguration(role: .server)
    ) async throws -> SocketAddress? {
        let context = self.sessionContext
        let streams = self.streamsOpenCount
        var yamux = yamux
        yamux.events.countLinkFailures(as: "runtime_manager_link_failures_total")
        let listener = YamuxLinkListener(
            address: address, group: self.group, configuration: yamux, logger: self.logger,
            streamInitializer: { stream in
                // Once per stream, not per message: what `runtime_manager_streams_open` reads.
                streams.value.add(1, ordering: .relaxed)
                stream.closeFuture.whenComplete { _ in streams.value.subtract(1, ordering: .relaxed) }
                return RuntimeManagerSession.configure(channel: stream, context: context)
            })
        do {
            try await listener.start().get()
        } catch let error as LinkListenError {
            throw RuntimeManagerSetupError(error.description)
        }
        self.listening.withLock { $0.linkListeners.append(listener) }
        self.logger.notice("accepting repeater links on \(listener.localAddress.map(\.commandLineForm) ?? "\(address)")")
        return listener.localAddress
    }

    /// Streams open right now on every link (any thread; for `/metrics`).
    public var streamsOpen: Int { self.streamsOpenCount.value.load(ordering: .relaxed) }
    private let streamsOpenCount = SharedCount()

    /// Links from repeaters connected right now (any thread; for `/metrics`).
    public var linksOpen: Int {
        self.listening.withLock { $0.linkListeners }.reduce(0) { $0 + $1.linkCount }
    }

    /// Why the runtime manager should get no sessions now, or nil when it should: it is not
    /// listening yet, or it is shutting down. For the admin endpoint's `/readyz`.
    public var notReadyReason: String? {
        if self.shutdownSignal.isTriggered { return "draining" }
        let listening = self.listening.withLock { !$0.listeners.isEmpty || !$0.linkListeners.isEmpty }
        return listening ? nil : "not listening"
    }

    /// Links from repeaters connected right now, and the streams open on them.
    public func linkStatistics() async -> (links: Int, streams: Int) {
        let listeners = self.listening.withLock { $0.linkListeners }
        var links = 0
        var streams = 0
        for listener in listeners {
            links += listener.linkCount
            streams += (try? await listener.openStreamCount().get()) ?? 0
        }
        return (links, streams)
    }

    /// Registers a listening channel (for example the yamux link listener) to be closed on shutdown.
    public func addListener(_ channel: any Channel) {
        self.listening.withLock { $0.listeners.append(channel) }
    }

    /// Asks the server to stop; ``waitForShutdownRequest()`` returns. Safe from any thread, idempotent.
    public func requestShutdown() {
        self.shutdownSignal.trigger()
    }

    /// Returns once an authorized client asked for shutdown or ``requestShutdown()`` was called.
    public func waitForShutdownRequest() async {
        await self.shutdownSignal.wait()
    }

    /// Graceful stop: accept nothing new, then close every session with a TLS close_notify.
    public func shutdown() async {
        self.shutdownSignal.trigger()
        let taken = self.listening.withLock { listening in
            defer { listening = Listening() }
            return listening
        }
        for listener in taken.listeners {
            try? await listener.close()
        }
        let linkListeners = taken.linkListeners
        // Go Away first: repeaters open no new streams while the open sessions are closed.
        for linkListener in linkListeners { linkListener.goAway() }
        let open = self.sessionContext.sessions.count
        if open > 0 {
            self.logger.notice("closing \(open) open session(s)")
        }
        await self.sessionContext.sessions.closeAll()
        for linkListener in linkListeners { try? await linkListener.stop().get() }
        self.sessionContext.sessionEvents?.writeSummary(atExit: true)
        self.logger.notice("runtime manager stopped")
    }
}

/// A one-shot signal any number of tasks can wait for; triggering twice is harmless.
final class ShutdownSignal: Sendable {
    private struct State {
        var triggered = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    var isTriggered: Bool { self.state.withLock { $0.triggered } }

    func trigger() {
        let waiters = self.state.withLock { state in
            state.triggered = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let already = self.state.withLock { state in
                if state.triggered { return true }
                state.waiters.append(continuation)
                return false
            }
            if already { continuation.resume() }
        }
    }
}

/// A count that closures on any event loop update (an `Atomic` itself cannot be captured).
final class SharedCount: Sendable {
    let value = Atomic<Int>(0)
}
