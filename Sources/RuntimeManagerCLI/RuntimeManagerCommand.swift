import AdminEndpoint
import ArgumentParser
import CommandLineSupport
import Logging
import NIOCore
import NIOPosix
import RuntimeManager
import ServiceLifecycle
import TransportProtocol
import UnixSignals
import Yamux
import YamuxLink

/// The runtime manager's command line: parses flags, starts the server, and
/// stops it gracefully on SIGTERM/SIGINT or an authorized request_shutdown.
struct RuntimeManagerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime-manager",
        abstract: "Stores files for clients that connect with mutual TLS, through the repeater or directly.",
        discussion: """
            Every session is TLS 1.3 with a client certificate issued by --client-ca; --policy says which \
            client may write, append, read which files and who may shut the runtime manager down \
            (format: docs/POLICY.md). Files live in memory.
            """,
        version: RepeaterVersion.current
    )

    @Option(
        help: "Accept direct TLS clients (no repeater) on HOST:PORT, e.g. 127.0.0.1:3012.",
        transform: LinkAddress.parseTCPArgument)
    var direct: LinkAddress?

    @Option(
        help:
            "Accept repeaters' yamux links on HOST:PORT, unix:PATH or vsock:CID:PORT (vsock:any:PORT in an enclave; 'none' to accept direct clients only). (default: 127.0.0.1:6000)",
        transform: { $0 == "none" ? nil : try LinkAddress.parseArgument($0) })
    var listen: LinkAddress? = .tcp(host: "127.0.0.1", port: 6000)

    @Option(parsing: .unconditional, help: "Streams one link may have open at once (at least 1); more are refused with RST.")
    var maxStreams = 16_384

    @Option(parsing: .unconditional, help: "Seconds between keep-alive pings on a link (0 turns them off).")
    var keepaliveInterval = 30.0

    @Option(parsing: .unconditional, help: "Seconds a ping may go unanswered before the link is declared dead (above 0).")
    var keepaliveTimeout = 10.0

    @Option(help: "The runtime manager's certificate (PEM).")
    var cert: String

    @Option(help: "The runtime manager's private key (PEM).")
    var key: String

    @Option(name: .customLong("client-ca"), help: "CA certificate(s) that client certificates must chain to (PEM).")
    var clientCA: String

    @Option(help: "The JSON policy file (docs/POLICY.md).")
    var policy: String

    @Option(
        name: .customLong("max-store-bytes"), parsing: .unconditional,
        help: "Limit on the total size of stored files, in bytes (0 or more).")
    var maxStoreBytes: Int = RuntimeManagerConfiguration.defaultMaximumStoreBytes

    @Option(
        name: .customLong("max-message-bytes"), parsing: .unconditional,
        help: "Limit on one message, in bytes (at least 1); larger ones are refused.")
    var maxMessageBytes: Int = LengthPrefixFrameDecoder.defaultMaximumMessageBytes

    @Option(
        parsing: .unconditional,
        help: "Seconds a started message may go without a new byte before the session is answered with an error and closed (above 0).")
    var messageTimeout = 30.0

    @Option(parsing: .unconditional, help: "Seconds a session may be silent both ways before it is closed (0: never).")
    var idleTimeout = 300.0

    @Flag(
        help: """
            Every session (each stream, and each --direct connection) must begin with a PROXY protocol \
            header (v1 or v2, as repeaterd --send-proxy writes) within 5 s, before TLS; its address names \
            the client in the session's log lines. Only behind a repeater or balancer you trust.
            """)
    var acceptProxy = false

    @Flag(
        help: """
            Log one line per session when it ends, at info, in the --log-format in force, in place of the \
            "session started" and "session ended" pair: client or link_peer, link, stream, identity, requests \
            by type, refused (by the policy), bytes each way, duration_ms, cause and tls_version.
            """)
    var accessLog = false

    @OptionGroup var adminOptions: AdminOptions
    var admin: LinkAddress? { adminOptions.admin }

    @Option(help: "How much to log.")
    var logLevel: Logger.Level = .info

    @Option(help: LogFormat.help)
    var logFormat: LogFormat = .human

    func validate() throws {
        try OptionRange.check("--max-streams", self.maxStreams, atLeast: 1)
        try OptionRange.checkSecondsFromZero("--keepalive-interval", self.keepaliveInterval, zeroMeans: "turns pings off")
        try OptionRange.checkSecondsAboveZero("--keepalive-timeout", self.keepaliveTimeout)
        try OptionRange.check("--max-store-bytes", self.maxStoreBytes, atLeast: 0)
        try OptionRange.check("--max-message-bytes", self.maxMessageBytes, atLeast: 1)
        try OptionRange.checkSecondsAboveZero("--message-timeout", self.messageTimeout)
        try OptionRange.checkSecondsFromZero("--idle-timeout", self.idleTimeout, zeroMeans: "turns it off")
        if self.listen == nil && self.direct == nil {
            throw ValidationError("nothing to listen on: --listen none needs --direct HOST:PORT")
        }
    }

    func run() async throws {
        CommandLineSupport.bootstrapLogging(level: self.logLevel, format: self.logFormat)
        let logger = Logger(label: "runtime-manager")
        let notifier = ServiceManagerNotifier(logger: logger)
        var configuration = RuntimeManagerConfiguration(
            certificatePath: self.cert, keyPath: self.key, clientCAPath: self.clientCA, policyPath: self.policy,
            maximumStoreBytes: self.maxStoreBytes, maximumMessageBytes: self.maxMessageBytes,
            messageTimeout: CommandLineSupport.seconds(self.messageTimeout),
            idleTimeout: CommandLineSupport.secondsOrOff(self.idleTimeout)
        )
        configuration.acceptsProxyHeader = self.acceptProxy
        configuration.accessLog = self.accessLog
        let metrics = self.admin.map { _ in AdminMetrics.bootstrapPrometheus() }
        let server: RuntimeManagerServer
        do {
            server = try RuntimeManagerServer(
                configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logger
            )
        } catch {
            throw CommandLineFailure("\(error)")
        }
        let directAddress = self.direct?.hostAndPort
        var yamux = YamuxConfiguration(role: .server)
        yamux.maximumInboundStreams = self.maxStreams
        yamux.keepAliveInterval = CommandLineSupport.secondsOrOff(self.keepaliveInterval)
        yamux.keepAliveTimeout = CommandLineSupport.seconds(self.keepaliveTimeout)
        let service = RuntimeManagerService(
            server: server, direct: directAddress, link: self.listen, yamux: yamux, notifier: notifier)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let admin = self.admin, let metrics {
            metrics.buildInfo("runtime_manager_build_info", version: RepeaterVersion.current)
            metrics.gauge("runtime_manager_links_open", help: "Links from repeaters connected now.") { server.linksOpen }
            metrics.gauge("runtime_manager_streams_open", help: "Streams open now on the links (one session each).") {
                server.streamsOpen
            }
            metrics.gauge("runtime_manager_sessions_open", help: "TLS sessions open now (one per stream, and direct ones).") {
                server.sessionContext.sessions.count
            }
            metrics.gauge("runtime_manager_store_bytes", help: "Bytes of stored files.") { server.store.totalBytes }
            let routes = AdminRoutes(
                readiness: { server.notReadyReason.map { .notReady(reason: $0) } ?? .ready },
                metrics: { metrics.exposition() })
            // Bound before anything is served: a taken port is one line and exit 1.
            let adminServer = AdminServer(address: admin, group: MultiThreadedEventLoopGroup.singleton, routes: routes, logger: logger)
            do {
                try await adminServer.start()
            } catch {
                throw CommandLineFailure("--admin: \(error)")
            }
            // First in the group, so it stops last.
            services.append(.init(service: AdminService(started: adminServer)))
        }
        services.append(.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}

/// Runs the server until a shutdown is requested (signal or authorized client), then stops it
/// gracefully. Under systemd (`Type=notify`) it says `READY=1` once every listener is bound, and
/// `STOPPING=1` when the stop begins.
struct RuntimeManagerService: Service {
    let server: RuntimeManagerServer
    let direct: (host: String, port: Int)?
    let link: LinkAddress?
    let yamux: YamuxConfiguration
    let notifier: ServiceManagerNotifier

    func run() async throws {
        var listening: [String] = []
        if let link {
            do {
                let bound = try await self.server.bindLinks(address: link, yamux: self.yamux)
                listening.append("links on \(bound.map(\.commandLineForm) ?? "\(link)")")
            } catch {
                throw CommandLineFailure("--listen: \(error)")
            }
        }
        if let direct {
            do {
                let bound = try await self.server.bindDirect(host: direct.host, port: direct.port)
                listening.append("direct clients on \(bound.commandLineForm)")
            } catch {
                throw CommandLineFailure("--direct: \(error)")
            }
        }
        self.notifier.ready(status: "accepting \(listening.joined(separator: " and "))")
        // A signal, an authorized client, or the group cancelled (another service failed): each
        // ends the wait, so the process never runs on without a way to stop it.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await self.server.waitForShutdownRequest()
            } onGracefulShutdown: { [server] in
                server.requestShutdown()
            }
        } onCancel: { [server] in
            server.requestShutdown()
        }
        // A signal, or an authorized client's shutdown request.
        self.notifier.stopping(status: "stopping: closing open sessions")
        await self.server.shutdown()
    }
}
