import ByteRelay
import CoreMetrics
import EventSummaries
import JSONText
import Logging
import NIOCore
import NIOPosix
import ProxyProtocol
import Synchronization
import Yamux
import YamuxLink

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The repeater: accepts plain TCP clients and relays each one, byte for byte, as one yamux
/// stream on a link to the runtime manager.
///
/// There is one link per event loop, and every client is served on the loop its socket was
/// accepted on, through that loop's link: a session's two channels never hop between threads.
/// On TCP each loop also has its own listening socket (`SO_REUSEPORT`, the kernel spreads the
/// connections), so a new client is not handed from an accepting loop to another one either: that
/// hand-over cost a cross-thread wake-up per connection.
///
/// The session table is per loop too (`LoopState`): an accept or a close touches only its own
/// loop's table, with no lock; the one thing the loops share on that path is the open-session
/// total that `--max-sessions` checks, a relaxed atomic.
public final class RepeaterServer: Sendable {
    public struct Configuration: Sendable {
        public var listen: LinkAddress = .tcp(host: "127.0.0.1", port: 3011)
        public var backend: LinkAddress = .tcp(host: "127.0.0.1", port: 6000)
        /// Client connections served at once; more are closed at once.
        public var maximumSessions = 16_384
        /// A client connection with no traffic either way for this long is closed (slowloris);
        /// nil never closes one for silence.
        public var idleTimeout: TimeAmount? = .seconds(300)
        /// On shutdown, how long open sessions may take to finish.
        public var drainTimeout: TimeAmount = .seconds(30)
        /// On shutdown, how long the listeners stay open after `/readyz` turned 503, so that a
        /// balancer checking it stops sending before connections would be refused (`--drain-grace`).
        public var drainGrace: TimeAmount = .zero
        public var keepAliveInterval: TimeAmount? = .seconds(30)
        public var keepAliveTimeout: TimeAmount = .seconds(10)
        public var maximumStreamWindow = 16 * 1024 * 1024
        /// The least `maximumStreamWindow` may be: the window every stream starts with (the spec's).
        public static let minimumStreamWindow = YamuxWindow.initial
        public var listenBacklog: Int32 = 4096
        /// A listening socket passed by the service manager (socket activation): accepted on in
        /// place of binding `listen`, and only once the links are up (clients wait in its queue,
        /// which the service manager keeps across a restart).
        public var inheritedListener: NIOBSDSocket.Handle?
        /// Total the bytes relayed (`bytesRelayed`): one relaxed atomic add per socket read or
        /// delivered frame, on a per-loop counter; repeaterd turns it on with `--admin`.
        public var countsBytes = false
        /// `--accept-proxy`: every client begins with a PROXY header (v1 or v2) from a trusted
        /// balancer, and its address is the client's; a client without one is refused.
        public var acceptsProxyHeader = false
        /// How long a client may take to send that header.
        public var proxyHeaderTimeout = ProxyHeaderReceiver.defaultTimeout
        /// `--send-proxy`: each stream begins with a PROXY v2 header carrying the client's address.
        public var sendsProxyHeader = false
        /// `--access-log`: one info line per session when it ends (or is refused), with who, how
        /// much, how long and why (`SessionLog.ended`); off, nothing is logged per session at info.
        public var accessLog = false

        public init() {}

        var yamux: YamuxConfiguration {
            var yamux = YamuxConfiguration(role: .client)
            yamux.keepAliveInterval = keepAliveInterval
            yamux.keepAliveTimeout = keepAliveTimeout
            yamux.maximumStreamWindow = maximumStreamWindow
            // The runtime manager does not open streams toward the repeater.
            yamux.maximumInboundStreams = 0
            return yamux
        }
    }

    public let configuration: Configuration
    private let group: EventLoopGroup
    private let logger: Logger
    public let links: [Link]
    /// Everything one event loop's clients need, found with one lookup per accept.
    private let stateByLoop: [ObjectIdentifier: LoopState]
    /// `repeater_sessions_total{result}` (swift-metrics; a no-op until the daemon bootstraps a backend).
    private let metrics = SessionMetrics()
    /// Refused and idle-closed clients between two summary lines, without `--access-log` (nil with
    /// it: each is the session's access line).
    private let clientEvents: ClientEvents?
    /// Sessions open over all loops (relaxed: it orders nothing).
    private let openSessions = Atomic<Int>(0)
    /// What `--max-sessions` limits: these sessions and any other front end's that shares it
    /// (repeaterd's old HTTP relay).
    public let sessionLimit: SessionLimit
    /// Set as the shutdown begins (before the listeners are closed): what `/readyz` says.
    private let isDraining = Atomic<Bool>(false)
    /// The listening sockets: one per event loop on TCP, one in all on a Unix socket. Set once
    /// when listening starts, read at shutdown: never on a connection's path.
    private let listeners = Mutex<[Channel]>([])

    /// One event loop's link, counters, idle sweeper and sessions.
    private final class LoopState: Sendable {
        let link: Link
        let byteCounts: RelayByteCounts?
        /// The loop's idle timeout for its clients: one timer per loop, not one per connection.
        let sweeper: NIOLoopBoundBox<IdleSweeper>?
        let sessions: NIOLoopBoundBox<LoopSessionTable>

        init(link: Link, byteCounts: RelayByteCounts?, sweeper: NIOLoopBoundBox<IdleSweeper>?, sessions: NIOLoopBoundBox<LoopSessionTable>)
        {
            self.link = link
            self.byteCounts = byteCounts
            self.sweeper = sweeper
            self.sessions = sessions
        }

        var eventLoop: EventLoop { sessions.eventLoop }
    }

    /// `sessionLimit`: shared with another front end; by default the repeater's own, of
    /// `configuration.maximumSessions`.
    public init(
        configuration: Configuration, group: EventLoopGroup, logger: Logger = Logger(label: "repeaterd"), sessionLimit: SessionLimit? = nil
    ) {
        self.configuration = configuration
        self.sessionLimit = sessionLimit ?? SessionLimit(maximum: configuration.maximumSessions)
        self.group = group
        self.logger = logger
        var links: [Link] = []
        var stateByLoop: [ObjectIdentifier: LoopState] = [:]
        let loops = Array(group.makeIterator())
        let clientEvents = configuration.accessLog ? nil : ClientEvents(logger: logger, lead: "clients", eventLoop: loops[0])
        self.clientEvents = clientEvents
        for (index, loop) in loops.enumerated() {
            let link = Link(
                index: index, eventLoop: loop,
                configuration: Link.Configuration(backend: configuration.backend, yamux: configuration.yamux),
                logger: logger)
            links.append(link)
            var sweeper: NIOLoopBoundBox<IdleSweeper>?
            if let idleTimeout = configuration.idleTimeout {
                // A client chooses to be silent: with --access-log its session's line says "idle";
                // without, a debug line and a count in the next summary line.
                let idleSweeper = IdleSweeper(eventLoop: loop, timeout: idleTimeout) {
                    [logger] id, channel in
                    logger.debug(
                        "closing idle client connection (no traffic within the idle timeout)",
                        metadata: ["session": .stringConvertible(id), "client": "\(PeerDescription(address: channel.remoteAddress))"])
                    clientEvents?.record(.closedIdle)
                }
                sweeper = NIOLoopBoundBox.makeBoxSendingValue(idleSweeper, eventLoop: loop)
            }
            stateByLoop[ObjectIdentifier(loop)] = LoopState(
                link: link, byteCounts: configuration.countsBytes ? RelayByteCounts() : nil, sweeper: sweeper,
                sessions: NIOLoopBoundBox.makeBoxSendingValue(
                    LoopSessionTable(eventLoop: loop, loopIndex: index, loopCount: loops.count), eventLoop: loop))
        }
        self.links = links
        self.stateByLoop = stateByLoop
    }

    /// The link that serves clients accepted on `loop` (one per event loop); the old HTTP relay
    /// opens its sessions' streams on it too.
    public func link(for loop: EventLoop) -> Link? { stateByLoop[ObjectIdentifier(loop)]?.link }

    /// Number of client sessions open right now (any thread).
    public var sessionCount: Int { openSessions.load(ordering: .relaxed) }

    /// Bytes relayed so far, summed over the event loops (zero unless `countsBytes`); any thread.
    public var bytesRelayed: (clientToLink: Int, linkToClient: Int) {
        stateByLoop.values.reduce((0, 0)) { sum, state in
            guard let totals = state.byteCounts?.totals else { return sum }
            return (sum.0 + totals.fromSocket, sum.1 + totals.toSocket)
        }
    }

    /// Links up right now (any thread: read from each link's health, not its loop).
    public var linksUpCount: Int { links.reduce(0) { $0 + ($1.health.isUp ? 1 : 0) } }

    /// Why the repeater should get no clients now, or nil when it should: it is draining, or no
    /// link is up (a client would be closed at once). For the admin endpoint's `/readyz`.
    public var notReadyReason: String? {
        if isDraining.load(ordering: .relaxed) { return "draining" }
        if links.contains(where: { $0.health.isUp }) { return nil }
        let why = links.lazy.compactMap { $0.health.lastFailure }.first ?? "not connected yet"
        return "no link to \(configuration.backend): \(why)"
    }

    /// What `/status.json` shows of the repeater: its links, its busiest `limit` sessions (by bytes
    /// per second since the page last looked), its limits, its drain state and its links' recent
    /// events. Gathered with one `submit` per event loop when asked: nothing is counted for it per
    /// message, and what it returns is bounded (`limit` sessions, 32 events per link).
    public func status(version: String, busiest limit: Int = 50) -> EventLoopFuture<JSONValue> {
        let perLoop = stateByLoop.values.map { state in
            state.link.status().flatMap { link in
                state.eventLoop.submit {
                    let table = state.sessions.value
                    let now = NIODeadline.now()
                    var sessions = table.status(now: now, limit: limit)
                    for index in sessions.indices where sessions[index].stream != nil { sessions[index].link = link.index }
                    let totals = state.byteCounts?.totals
                    let rates = totals.flatMap { table.trafficRates(now: now, fromClients: $0.fromSocket, toClients: $0.toSocket) }
                    return LoopStatus(
                        link: link, now: now, sessionCount: table.count, sessions: sessions,
                        bytesFromClients: totals?.fromSocket, bytesToClients: totals?.toSocket,
                        rateFromClients: rates?.fromClients, rateToClients: rates?.toClients)
                }
            }
        }
        let draining = isDraining.load(ordering: .relaxed)
        let limits = (open: sessionLimit.count, maximum: sessionLimit.maximum)
        return EventLoopFuture.whenAllSucceed(perLoop, on: group.any()).map { loops in
            LoopStatus.document(
                daemon: "repeaterd", version: version, draining: draining, sessions: limits.open,
                maximumSessions: limits.maximum, loops: loops.sorted { $0.link.index < $1.link.index }, busiest: limit)
        }
    }

    /// The client channels open right now, gathered from their loops (for tests and diagnostics).
    func openSessionChannels() -> EventLoopFuture<[Channel]> {
        let perLoop = stateByLoop.values.map { state in
            state.eventLoop.submit { state.sessions.value.channels }
        }
        return EventLoopFuture.whenAllSucceed(perLoop, on: group.any()).map { $0.flatMap { $0 } }
    }

    /// The listening sockets (one per loop on TCP).
    var serverChannels: [Channel] { listeners.withLock { $0 } }

    /// The address clients connect to (with the real port when 0 was asked for).
    public var localAddress: SocketAddress? { serverChannels.first?.localAddress }

    /// Whether another repeaterd (a socket that shares the port with `SO_REUSEPORT`) listens on
    /// this one's TCP port now: a restart beside it. Checked at start.
    public var startsBesideAnother: Bool {
        configuration.inheritedListener == nil && configuration.listen.isTCP && ExistingListenerProbe.tcpPortIsHeld(configuration.listen)
            && ExistingListenerProbe.tcpPortCanBeShared(configuration.listen)
    }

    /// Gives up a start that waits for its links before it listens (beside another repeaterd): a
    /// shutdown asked for then stops the links, and `start()` fails with `LinkDownError`, so a
    /// signal ends the process even while no link ever comes up.
    public func abandonStart() {
        for link in links { _ = link.stop() }
    }

    /// Dials the links and starts accepting clients. Completes once listening; links come up on their own.
    public func start() -> EventLoopFuture<Void> {
        if let inherited = configuration.inheritedListener {
            // Socket activation: the service manager holds the socket; clients queue in it until
            // the links are up, then this process accepts. One listener (one descriptor: a
            // duplicate per loop would wake every loop for each client, which NIO does not
            // allow); accepted clients are spread over the loops, each served on its own loop's
            // link. TCP_NODELAY as `bind(to:)` sets it for TCP, since this socket is not bound through it.
            let noDelay = Self.isInternetSocket(inherited)
            let linksUp = EventLoopFuture.andAllSucceed(links.map { $0.start() }, on: links[0].eventLoop)
            return linksUp.flatMap {
                var bootstrap = self.listenerBootstrap(on: self.group)
                if noDelay { bootstrap = bootstrap.childChannelOption(.tcpOption(.tcp_nodelay), value: 1) }
                return bootstrap.withBoundSocket(inherited)
            }.map { channel in
                self.listeners.withLock { $0 = [channel] }
                self.logger.info(
                    "repeater listening",
                    metadata: [
                        "listen": "\(channel.localAddress.map(\.commandLineForm) ?? "?") (passed by the service manager)",
                        "backend": "\(self.configuration.backend)", "links": .stringConvertible(self.links.count),
                        "listeners": .stringConvertible(1),
                    ])
            }
        }
        // On TCP always SO_REUSEPORT, even with one event loop: a new repeaterd can then start on
        // the same port while this one drains (a restart that drops nobody).
        let sharesPort = configuration.listen.isTCP
        if let warning = ExistingListenerProbe.warning(for: configuration.listen, reusePort: sharesPort) {
            logger.warning("\(warning)")
        }
        if let warning = ExistingListenerProbe.migrationWarning(for: configuration.listen) {
            logger.warning("\(warning)")
        }
        let linksUp = EventLoopFuture.andAllSucceed(links.map { $0.start() }, on: links[0].eventLoop)
        // A restart: another repeaterd serves this port. Listening before the links are up would
        // take clients from it only to close them ("link down"): listen once they are up.
        let restarting = sharesPort && startsBesideAnother
        if restarting { logger.info("another repeaterd listens on \(configuration.listen): listening beside it once the links are up") }
        let ready = restarting ? linksUp : links[0].eventLoop.makeSucceededVoidFuture()
        let bound: EventLoopFuture<[Channel]>
        if case .tcp(let host, let port) = configuration.listen {
            // The first bind settles the port (0 asks for any); the other loops join it.
            bound = ready.flatMap { self.bind(on: self.links[0].eventLoop, to: self.configuration.listen, reusePort: true) }.flatMap {
                first in
                let actualPort = first.localAddress?.port ?? port
                let others = self.links.dropFirst().map { link in
                    self.bind(on: link.eventLoop, to: .tcp(host: host, port: actualPort), reusePort: true)
                }
                return EventLoopFuture.whenAllSucceed(others, on: first.eventLoop).map { [first] + $0 }
            }
        } else {
            bound = bind(on: group, to: configuration.listen, reusePort: false).map { [$0] }
        }
        return bound.map { channels in
            self.listeners.withLock { $0 = channels }
            self.logger.info(
                "repeater listening",
                metadata: [
                    "listen": "\(channels[0].localAddress.map(\.commandLineForm) ?? "?")",
                    "backend": "\(self.configuration.backend)", "links": .stringConvertible(self.links.count),
                    "listeners": .stringConvertible(channels.count),
                ])
        }
    }

    private func bind(on group: EventLoopGroup, to address: LinkAddress, reusePort: Bool) -> EventLoopFuture<Channel> {
        var bootstrap = listenerBootstrap(on: group)
        if reusePort {
            bootstrap = bootstrap.serverChannelOption(
                ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: CInt(SO_REUSEPORT))),
                value: 1)
        }
        return bootstrap.bind(to: address)
    }

    private static func isInternetSocket(_ descriptor: NIOBSDSocket.Handle) -> Bool {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return named == 0 && (address.ss_family == sa_family_t(AF_INET) || address.ss_family == sa_family_t(AF_INET6))
    }

    private func listenerBootstrap(on group: EventLoopGroup) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.listenBacklog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            // At most two reads (of up to 64 KiB) per client per event-loop tick: a bulk client
            // then cannot hold the loop for long while a small session's bytes wait for their turn
            // (head-of-line: ping-pong p50 beside bulk 1.7 → 1.0 ms; NIO's default is 4; 1 cost throughput).
            .childChannelOption(.maxMessagesPerRead, value: 2)
            .childChannelInitializer { channel in
                self.accept(channel)
            }
    }

    /// Closes the listeners, the first step of a drain. An inherited listener (socket activation)
    /// hands the clients it accepts to other loops, and NIO closes a client still on its way
    /// there when its listener closes (a reset: 3 in 3 restarts): so it stops accepting first,
    /// lets every loop finish taking the clients already accepted (two rounds through the loops:
    /// there and back), and closes then. The clients behind them wait in the socket's queue for
    /// the next process.
    private func closeListeners(on loop: EventLoop) -> EventLoopFuture<Void> {
        let channels = serverChannels
        guard configuration.inheritedListener != nil else {
            return EventLoopFuture.andAllComplete(channels.map { $0.close() }, on: loop)
        }
        let loops = stateByLoop.values.map(\.eventLoop)
        @Sendable func roundThroughLoops() -> EventLoopFuture<Void> {
            EventLoopFuture.andAllComplete(loops.map { $0.submit {} }, on: loop)
        }
        let stopped = EventLoopFuture.andAllComplete(channels.map { $0.setOption(.autoRead, value: false) }, on: loop)
        return stopped.flatMap { roundThroughLoops() }.flatMap { roundThroughLoops() }.flatMap {
            EventLoopFuture.andAllComplete(channels.map { $0.close() }, on: loop)
        }
    }

    /// Waits until every link is up (for tests and for a daemon that wants to log it).
    public func linksUp() -> EventLoopFuture<Void> {
        EventLoopFuture.andAllSucceed(links.map { $0.start() }, on: group.next())
    }

    /// Completes when the first link is up: from then on a client is served (on its own loop's
    /// link, or another's while its own is still dialing). What repeaterd tells systemd as `READY=1`.
    public func anyLinkUp() -> EventLoopFuture<Void> {
        let promise = group.next().makePromise(of: Void.self)
        // The later links' successes find the promise completed and are ignored.
        for link in links { link.start().whenSuccess { promise.succeed(()) } }
        return promise.futureResult
    }

    /// Called on the client's loop (the child channel initializer).
    private func accept(_ client: Channel) -> EventLoopFuture<Void> {
        let loop = client.eventLoop
        let state = stateByLoop[ObjectIdentifier(loop)]!
        // Even during the drain: a client the listener accepted before it closed is served like
        // any other (and drained), not turned away: during a restart it would be reset.
        // What only the access line needs is read only for it (the listener's address is a locked
        // read on the channel, the clock a system call's worth): nothing more per accept without it.
        let acceptedAt: NIODeadline? = configuration.accessLog ? .now() : nil
        let listener = configuration.accessLog ? client.localAddress : nil
        guard sessionLimit.reserve() else {
            metrics.refusedLimit.increment()
            SessionLog(
                logger: logger, session: nil, client: client.remoteAddress, listener: listener, acceptedAt: acceptedAt,
                clientEvents: clientEvents
            ).refused(.refusedLimit, "session limit of \(sessionLimit.maximum) reached")
            return loop.makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        openSessions.wrappingAdd(1, ordering: .relaxed)
        let sessionID = state.sessions.value.add(client)
        let log = SessionLog(
            logger: logger, session: sessionID, client: client.remoteAddress, listener: listener, acceptedAt: acceptedAt,
            clientEvents: clientEvents)
        let activity = RelayActivity(byteCounts: state.byteCounts)
        state.sessions.value.describe(sessionID, activity: activity, log: log)
        state.sweeper?.value.add(sessionID, channel: client, activity: activity) { cause in log.closedOnPurpose = cause }
        client.closeFuture.whenComplete { _ in
            state.sweeper?.value.remove(sessionID)
            self.sessionEnded(sessionID, on: state)
        }
        guard configuration.acceptsProxyHeader else {
            return loop.makeCompletedFuture {
                try self.openRelay(for: client, state: state, log: log, activity: activity, announcedDestination: nil)
            }
        }
        // The stream opens once the balancer has said who the client is; until then the
        // session holds its place (and its slot under --max-sessions) for at most the timeout.
        let receiver = ProxyHeaderReceiver(timeout: configuration.proxyHeaderTimeout) { outcome, channel in
            switch outcome {
            case .refused(let why):
                self.metrics.refusedProxyHeader.increment()
                log.refused(.refusedProxyHeader, "\(why) (--accept-proxy)")
            case .header(let header) where header.command == .local:
                log.debug("PROXY LOCAL header (the balancer's own health check): closing")
                channel.close(promise: nil)
            case .header(let header):
                log.via = channel.remoteAddress
                log.client = header.source
                do {
                    try self.openRelay(for: channel, state: state, log: log, activity: activity, announcedDestination: header.destination)
                } catch {
                    channel.close(promise: nil)
                }
            }
        }
        return loop.makeCompletedFuture { try client.pipeline.syncOperations.addHandler(receiver) }
    }

    /// Opens the client's stream on its loop's link, after its PROXY header when one is expected.
    /// `log.client` is the client's address by then: the socket's peer, or the one announced.
    private func openRelay(
        for client: Channel, state: LoopState, log: SessionLog, activity: RelayActivity, announcedDestination: SocketAddress?
    ) throws {
        let link = state.link
        var preamble: ByteBuffer?
        if configuration.sendsProxyHeader {
            let destination = configuration.acceptsProxyHeader ? announcedDestination : client.localAddress
            preamble = ByteBuffer(bytes: ProxyHeaderEncoder.v2(source: log.client, destination: destination))
        }
        do {
            // The lean stream: the client socket's own handler is the stream's end (no child
            // channel, no second pipeline per session).
            let relay = try link.openRelayStream(to: client, activity: activity, preamble: preamble) { reason in
                log.debug("session ended: \(reason)")
                let drained = state.sessions.value.drainTimedOut
                let outcome = SessionOutcome(of: reason, closedOnPurpose: log.closedOnPurpose, drained: drained)
                self.metrics.ended(outcome.cause)
                log.ended(outcome, activity: activity)
            }
            log.stream = relay.streamID
            if let id = log.session { state.sessions.value.attach(id, relay: relay) }
            log.link = link.connectedLinkID
            log.debug("session open")
            metrics.accepted.increment()
        } catch is LinkDownError where links.contains(where: { $0 !== link && $0.health.isUp }) {
            // This loop's link is down but another is up: serve the client there rather than
            // refuse it, at the price of a thread hop per read each way.
            let other = links.first { $0 !== link && $0.health.isUp }!
            openRelay(for: client, onAnotherLoop: other, log: log, activity: activity, preamble: preamble)
        } catch {
            if error is LinkDownError { metrics.refusedLinkDown.increment() }
            log.refused(error is LinkDownError ? .refusedLinkDown : .refusedOther, "\(error)")
            throw error
        }
    }

    /// On the session's loop, once its client channel has closed.
    /// The client on its loop, its stream on `link`'s loop, joined by a `ChannelRelay` pair across
    /// the two loops.
    private func openRelay(for client: Channel, onAnotherLoop link: Link, log: SessionLog, activity: RelayActivity, preamble: ByteBuffer?) {
        let clientSide = ChannelRelay.firstSide("client", end: .socket, activity: activity) { reason in
            log.debug("session ended: \(reason)")
            let outcome = SessionOutcome(of: reason, closedOnPurpose: log.closedOnPurpose, drained: false)
            self.metrics.ended(outcome.cause)
            log.ended(outcome, activity: activity)
        }
        do {
            try client.pipeline.syncOperations.addHandler(clientSide)
        } catch {
            client.close(promise: nil)
            return
        }
        metrics.accepted.increment()
        metrics.servedOnAnotherLoop.increment()
        log.debug("session open on link \(link.index): this loop's link is down")
        let first = NIOLoopBound(clientSide, eventLoop: client.eventLoop)
        let sessionLog = NIOLoopBound(log, eventLoop: client.eventLoop)
        link.eventLoop.execute {
            let linkID = link.connectedLinkID
            link.openStream { stream in
                if let id = (stream as? YamuxStreamChannel)?.streamID {
                    client.eventLoop.execute {
                        sessionLog.value.stream = id
                        sessionLog.value.link = linkID
                    }
                }
                return stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                    // The PROXY header is the stream's first bytes, before anything relayed.
                    if let preamble { stream.write(preamble, promise: nil) }
                    try stream.pipeline.syncOperations.addHandler(
                        ChannelRelay.secondSide("runtime manager", end: .yamuxStream, on: stream.eventLoop, joining: first))
                }
            }.whenFailure { error in
                self.metrics.refusedLinkDown.increment()
                let why = "\(error)"
                client.eventLoop.execute { sessionLog.value.refused(.refusedLinkDown, why) }
                client.close(promise: nil)
            }
        }
    }

    private func sessionEnded(_ id: UInt64, on state: LoopState) {
        guard state.sessions.value.remove(id) else { return }
        openSessions.wrappingSubtract(1, ordering: .relaxed)
        sessionLimit.release()
    }

    /// Graceful shutdown: say "draining" (`/readyz`), keep accepting for the drain grace, close the
    /// listeners, then say Go Away on every link, let open sessions finish for up to the drain
    /// timeout, then close what is left and the links.
    ///
    /// The grace is for a balancer: until its health check has seen the 503 it still sends new
    /// clients here, and a closed listener would refuse them.
    ///
    /// The order matters for restarts: until its listeners are closed the kernel may still hand
    /// this process a client (one of the port's SO_REUSEPORT listeners is still here), and that
    /// client must get a stream: so the links say Go Away only after the close, and a client
    /// accepted before it is served like any other.
    ///
    /// `alongside`: another front end's drain on the same links (repeaterd's old HTTP relay),
    /// begun when the listeners close; the links stop only once it is over too.
    public func shutdown(alongside otherDrain: (@Sendable () -> EventLoopFuture<Void>)? = nil) -> EventLoopFuture<Void> {
        let loop = group.next()
        isDraining.store(true, ordering: .relaxed)
        let grace = configuration.drainGrace
        var graceOver = loop.makeSucceededVoidFuture()
        // Not listening yet (asked to stop during the start): no client to keep serving.
        if grace > .zero, !serverChannels.isEmpty {
            logger.info(
                "draining: /readyz answers 503 now; still accepting for \(grace) (--drain-grace) so that a balancer stops sending first")
            graceOver = loop.scheduleTask(in: grace) {}.futureResult
        }
        let closeListeners = graceOver.flatMap { self.closeListeners(on: loop) }
        return closeListeners.flatMap { () -> EventLoopFuture<Void> in
            let otherDrained = otherDrain?() ?? loop.makeSucceededVoidFuture()
            let openNow = self.sessionCount
            self.logger.info("shutting down: listeners closed; draining \(openNow) session(s) for up to \(self.configuration.drainTimeout)")
            for link in self.links { link.goAway() }
            // Each loop drains its own sessions on its own timer (LoopSessionTable).
            let loopsDrained = self.stateByLoop.values.map { state in
                state.eventLoop.flatSubmit {
                    state.sessions.value.drain(timeout: self.configuration.drainTimeout) { left in
                        self.logger.warning("drain timeout: closing \(left) session(s) still open")
                    }
                }
            }
            return EventLoopFuture.andAllSucceed(loopsDrained, on: loop).and(otherDrained).map { _ in }
        }.flatMap { _ in
            for state in self.stateByLoop.values {
                guard let sweeper = state.sweeper else { continue }
                sweeper.eventLoop.execute { sweeper.value.stop() }
            }
            return EventLoopFuture.andAllComplete(self.links.map { $0.stop() }, on: loop)
        }.always { _ in
            // What was counted since the last summary line is not lost at the exit.
            self.clientEvents?.writeSummary(atExit: true)
        }
    }
}

/// A peer's address for log metadata, formatted only when a line is written.
struct PeerDescription: CustomStringConvertible, Sendable {
    var address: SocketAddress?
    var description: String { address.map(\.commandLineForm) ?? "?" }
}

/// The repeater's session counters. Bumped once per accepted or refused client (relaxed atomics
/// in the Prometheus backend), never per message.
struct SessionMetrics: Sendable {
    let accepted = Counter(label: "repeater_sessions_total", dimensions: [("result", "accepted")])
    let refusedLinkDown = Counter(label: "repeater_sessions_total", dimensions: [("result", "refused_link_down")])
    /// Over `--max-sessions`.
    let refusedLimit = Counter(label: "repeater_sessions_total", dimensions: [("result", "refused_limit")])
    /// Served on another event loop's link, since the client's own loop had none up (a thread hop
    /// per read each way for the whole session).
    let servedOnAnotherLoop = Counter(label: "repeater_sessions_other_loop_total")
    /// `--accept-proxy`: no valid PROXY header in time (malformed, cut short, too long, missing).
    let refusedProxyHeader = Counter(label: "repeater_sessions_total", dimensions: [("result", "refused_proxy_header")])

    /// `repeater_sessions_closed_total{cause}`'s values.
    static let causes = ["client", "runtime_manager", "idle", "drain", "link_down", "reset"]
    let closed = Self.causes.map { Counter(label: "repeater_sessions_closed_total", dimensions: [("cause", $0)]) }

    func ended(_ cause: String) {
        closed[Self.causes.firstIndex(of: cause) ?? Self.causes.count - 1].increment()
    }
}
