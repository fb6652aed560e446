import AdminEndpoint
import ArgumentParser
import CommandLineSupport
import LegacyRelayServer
import Logging
import NIOCore
import NIOPosix
import Repeater
import ServiceLifecycle
import Synchronization
import UnixSignals
import YamuxLink

/// repeaterd: relays every client TCP connection as one yamux stream on a long-lived link to the
/// runtime manager. Byte-transparent: it never parses what a stream carries.
struct RepeaterDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repeaterd",
        abstract: "Byte-transparent TCP repeater: every client connection becomes one yamux stream on a link to the runtime manager.",
        discussion: """
            Clients connect with plain TCP to --listen. repeaterd dials --backend (the runtime manager's \
            yamux link; TCP, unix:PATH or vsock:CID:PORT), one link per event loop, and redials with backoff when a link drops. \
            TCP_NODELAY is on for every client socket and every link. SIGTERM/SIGINT: /readyz answers 503, \
            keep accepting for --drain-grace, stop accepting, send Go Away, let open sessions finish for up \
            to --drain-timeout, exit 0.
            """,
        version: RepeaterVersion.current)

    @Option(help: "Where clients connect: HOST:PORT or unix:PATH. (default: 127.0.0.1:3011)", transform: LinkAddress.parseArgument)
    var listen: LinkAddress = .tcp(host: "127.0.0.1", port: 3011)

    @Option(
        help: "The runtime manager's link: HOST:PORT, unix:PATH or vsock:CID:PORT (an enclave: vsock:16:5000). (default: 127.0.0.1:6000)",
        transform: LinkAddress.parseArgument)
    var backend: LinkAddress = .tcp(host: "127.0.0.1", port: 6000)

    @Option(
        name: .customLong("legacy-http"),
        help: "Also serve the old HTTP relay (POST /runtime_manager) at HOST:PORT or unix:PATH, for old clients. Off by default.",
        transform: LinkAddress.parseArgument)
    var legacyHTTP: LinkAddress?

    @Option(parsing: .unconditional, help: "Client sessions served at once (at least 1); more are closed at once.")
    var maxSessions = 16_384

    @Option(parsing: .unconditional, help: "Seconds a client connection may be silent both ways before it is closed (0: never).")
    var idleTimeout = 300.0

    @Option(parsing: .unconditional, help: "Seconds open sessions may take to finish on shutdown (0: close them at once).")
    var drainTimeout = 30.0

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Seconds to keep accepting after SIGTERM while /readyz answers 503, so a balancer checking it stops sending first. Default: 4 with --admin (twice HAProxy's default check interval), else 0.",
            valueName: "seconds"))
    var drainGrace: Double?

    @Option(parsing: .unconditional, help: "Seconds between keep-alive pings on a link (0 turns them off).")
    var keepaliveInterval = 30.0

    @Option(parsing: .unconditional, help: "Seconds a ping may go unanswered before the link is declared dead (above 0).")
    var keepaliveTimeout = 10.0

    @Option(
        parsing: .unconditional,
        help: "Largest receive window per stream in bytes, at least 262144 (yamux's initial 256 KiB, from which it auto-tunes up).")
    var maxStreamWindow = 16 * 1024 * 1024

    @Option(parsing: .unconditional, help: "Event loops, and so links (one per loop; at least 1). Default: one per CPU.")
    var threads = System.coreCount

    @Flag(
        help: """
            Every client connection must begin with a PROXY protocol header (v1 or v2) within 5 s; its \
            address is the client's in logs and in --send-proxy. Clients without one are refused. Only \
            behind a balancer you trust: anyone who can connect can claim any address.
            """)
    var acceptProxy = false

    @Flag(
        help:
            "Begin each stream with a PROXY protocol v2 header carrying the client's address, for a runtime manager (or a --forward target) that reads it."
    )
    var sendProxy = false

    @OptionGroup var adminOptions: AdminOptions
    var admin: LinkAddress? { adminOptions.admin }

    @Flag(
        help: """
            Log one line per client session when it ends, at info, in the --log-format in force: client, \
            via, listener, link, stream, bytes each way, duration_ms, connect_ms, cause and ended_by. A client \
            refused at once is such a line too. Without it, refused and idle-closed clients are counted in \
            one warning per 10 s.
            """)
    var accessLog = false

    @Option(help: "How much to log.")
    var logLevel: Logger.Level = .info

    @Option(help: LogFormat.help)
    var logFormat: LogFormat = .human

    func validate() throws {
        try OptionRange.check("--max-sessions", maxSessions, atLeast: 1)
        try OptionRange.check("--threads", threads, atLeast: 1)
        try OptionRange.checkSecondsFromZero("--idle-timeout", idleTimeout, zeroMeans: "turns it off")
        try OptionRange.checkSecondsFromZero("--drain-timeout", drainTimeout)
        if let drainGrace { try OptionRange.checkSecondsFromZero("--drain-grace", drainGrace) }
        try OptionRange.checkSecondsFromZero("--keepalive-interval", keepaliveInterval, zeroMeans: "turns pings off")
        try OptionRange.checkSecondsAboveZero("--keepalive-timeout", keepaliveTimeout)
        try OptionRange.check(
            "--max-stream-window", maxStreamWindow, atLeast: RepeaterServer.Configuration.minimumStreamWindow,
            " (yamux's initial window, 256 KiB)")
    }

    func run() async throws {
        CommandLineSupport.bootstrapLogging(level: logLevel, format: logFormat)
        let logger = Logger(label: "repeaterd")
        let notifier = ServiceManagerNotifier(logger: logger)
        let descriptors = CommandLineSupport.raiseFileDescriptorLimit()
        // One descriptor per client session (streams share the links), plus links and listeners.
        if descriptors > 0 && descriptors < maxSessions + threads + 64 {
            logger.warning(
                "open-file limit \(descriptors) is below what \(maxSessions) sessions need (one each); raise it with ulimit -n or lower --max-sessions"
            )
        }
        var configuration = RepeaterServer.Configuration()
        configuration.listen = listen
        configuration.backend = backend
        configuration.maximumSessions = maxSessions
        configuration.idleTimeout = CommandLineSupport.secondsOrOff(idleTimeout)
        configuration.drainTimeout = CommandLineSupport.seconds(drainTimeout)
        // Without --admin no balancer can see /readyz, so waiting would only delay the stop.
        configuration.drainGrace = CommandLineSupport.seconds(drainGrace ?? (admin != nil ? 4 : 0))
        configuration.keepAliveInterval = CommandLineSupport.secondsOrOff(keepaliveInterval)
        configuration.keepAliveTimeout = CommandLineSupport.seconds(keepaliveTimeout)
        configuration.maximumStreamWindow = maxStreamWindow
        configuration.countsBytes = admin != nil
        configuration.acceptsProxyHeader = acceptProxy
        configuration.sendsProxyHeader = sendProxy
        configuration.accessLog = accessLog
        // systemd's socket activation (repeaterd.socket): accept on the socket it passed, which it
        // keeps across restarts, instead of binding --listen.
        if let activation = SocketActivation.takeFromEnvironment() {
            let listener = activation.listeners.first { $0.name == "client" } ?? activation.listeners[0]
            guard SocketActivation.isListeningStreamSocket(listener.descriptor) else {
                throw CommandLineFailure(
                    "the socket passed by the service manager (LISTEN_FDS, descriptor \(listener.descriptor), '\(listener.name)') is not a listening stream socket; check ListenStream= in repeaterd.socket"
                )
            }
            configuration.inheritedListener = listener.descriptor
            logger.notice(
                "accepting on the socket the service manager passed (descriptor \(listener.descriptor), '\(listener.name)'), once a link is up; --listen \(listen) is not bound"
            )
        }

        // Before the server: its counters bind to the backend when they are created.
        let metrics = admin.map { _ in AdminMetrics.bootstrapPrometheus() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let server = RepeaterServer(configuration: configuration, group: group, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let admin, let metrics {
            // First in the group, so it stops last: /readyz says "draining" for the whole drain.
            metrics.buildInfo("repeater_build_info", version: RepeaterVersion.current)
            metrics.gauge("repeater_sessions_open", help: "Client sessions open now.") { server.sessionCount }
            metrics.gauge("repeater_links_up", help: "Links to the runtime manager up now.") { server.linksUpCount }
            let bytesHelp = "Bytes relayed between clients and the link."
            metrics.counter("repeater_bytes_total", labels: [("direction", "client_to_link")], help: bytesHelp) {
                server.bytesRelayed.clientToLink
            }
            metrics.counter("repeater_bytes_total", labels: [("direction", "link_to_client")], help: bytesHelp) {
                server.bytesRelayed.linkToClient
            }
            let routes = AdminRoutes(
                readiness: { server.notReadyReason.map { .notReady(reason: $0) } ?? .ready },
                metrics: { metrics.exposition() },
                status: { server.status(version: RepeaterVersion.current) })
            // Bound before anything is served or READY is said: a taken port is one line and exit
            // 1 — unless this repeaterd starts beside the one it replaces, which holds the admin
            // port until its drain ends: then this one serves its clients and takes the port once
            // the old one lets go (one process answers /metrics and /readyz at a time).
            let adminServer = AdminServer(address: admin, group: group, routes: routes, logger: logger)
            do {
                try await adminServer.start()
                services.append(.init(service: AdminService(started: adminServer)))
            } catch let error as LinkListenError where error.isAddressInUse && server.startsBesideAnother {
                logger.notice(
                    "--admin \(admin) is held by the repeaterd this one replaces: taking it once that one exits (retrying every second)")
                services.append(.init(service: AdminService(bindingOnceFree: adminServer, logger: logger)))
            } catch {
                try? await group.shutdownGracefully()
                throw CommandLineFailure("--admin: \(error)")
            }
        }
        var legacyRelay: (relay: LegacyHTTPRelay, address: LinkAddress)?
        if let legacyHTTP {
            // The old relay's sessions use the repeater's links (one per event loop, as its
            // clients'), count against --max-sessions with the repeater's, and drain with them.
            var relayConfiguration = LegacyHTTPRelay.Configuration()
            relayConfiguration.maximumSessions = maxSessions
            let relay = LegacyHTTPRelay(
                configuration: relayConfiguration, group: group, logger: logger,
                linkForLoop: { [server] in server.link(for: $0) }, sessionLimit: server.sessionLimit)
            legacyRelay = (relay, legacyHTTP)
            metrics?.gauge("repeater_legacy_sessions_open", help: "Sessions of the old HTTP relay open now.") { relay.sessionCount }
        }
        services.append(.init(service: RepeaterService(server: server, legacyRelay: legacyRelay, notifier: notifier)))
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await serviceGroup.run()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }
}

/// Runs the repeater (and the old HTTP relay, with --legacy-http) until a graceful shutdown is
/// requested, then drains both: the relay's sessions alongside the repeater's, on the same links.
/// Under systemd (`Type=notify`) it says `READY=1` once it listens and a link is up, and
/// `STOPPING=1` when the drain begins.
struct RepeaterService: Service {
    let server: RepeaterServer
    let legacyRelay: (relay: LegacyHTTPRelay, address: LinkAddress)?
    let notifier: ServiceManagerNotifier

    func run() async throws {
        // A signal while the start waits (for the links, beside another repeaterd) gives it up.
        let stopAsked = Mutex(false)
        do {
            try await withGracefulShutdownHandler {
                try await server.start().get()
            } onGracefulShutdown: { [server] in
                stopAsked.withLock { $0 = true }
                server.abandonStart()
            }
        } catch let error as LinkListenError {
            throw CommandLineFailure("--listen: \(error)")
        } catch  where stopAsked.withLock({ $0 }) {
            notifier.stopping(status: "stopping before listening: asked to stop while the links were down")
            _ = try? await server.shutdown().get()
            return
        }
        if let legacyRelay {
            do {
                try await legacyRelay.relay.start(listen: legacyRelay.address).get()
            } catch let error as LinkListenError {
                _ = try? await server.shutdown().get()
                throw CommandLineFailure("--legacy-http: \(error)")
            }
        }
        if notifier.isActive {
            let listening = server.localAddress.map(\.commandLineForm) ?? "\(server.configuration.listen)"
            let backend = server.configuration.backend
            notifier.status("listening on \(listening); dialing the runtime manager at \(backend)")
            // Ready only when a client can be served: before a link is up it would be refused.
            server.anyLinkUp().whenSuccess { [notifier] in
                notifier.ready(status: "listening on \(listening); link to \(backend) up")
            }
        }
        try? await gracefulShutdown()
        let configuration = server.configuration
        let expected = configuration.drainGrace + configuration.drainTimeout + .seconds(10)
        notifier.stopping(
            status:
                "draining: up to \(configuration.drainGrace) more accepting, then up to \(configuration.drainTimeout) for open sessions",
            expectedDuration: expected.nanoseconds / 1000)
        var relayDrain: (@Sendable () -> EventLoopFuture<Void>)?
        if let relay = legacyRelay?.relay {
            let drainTimeout = server.configuration.drainTimeout
            relayDrain = { relay.shutdown(drainTimeout: drainTimeout) }
        }
        try await server.shutdown(alongside: relayDrain).get()
    }
}
