import Logging
import NIOCore
import NIOPosix
import Synchronization
import Yamux

/// The accepting side of yamux links: listens on TCP or a Unix socket, runs a yamux server
/// session on every connection (any number of links, at once or one after another, each
/// independent), and hands every stream the peer opens to `streamInitializer` — or, with a
/// `relayConnector`, relays every stream to a socket that the connector connects (no child
/// channel per stream: `YamuxSocketRelay`).
///
/// The runtime manager and `muxcat listen` are both this, with different stream initializers.
public final class YamuxLinkListener: Sendable {
    public let address: LinkAddress
    private let group: EventLoopGroup
    private let configuration: YamuxConfiguration
    private let logger: Logger
    private let streamInitializer: @Sendable (Channel) -> EventLoopFuture<Void>
    private let relayConnector: (@Sendable (YamuxSocketRelay) -> EventLoopFuture<Void>)?
    /// Called for every new link with its channel (e.g. to capture its bytes).
    private let linkInitializer: (@Sendable (Channel) throws -> Void)?
    /// Set once bound, read at stop.
    private let serverChannel = Mutex<Channel?>(nil)
    /// The links connected now, and how many were ever accepted (their numbers in the logs).
    /// A mutex, not per-loop tables: it is taken once per link, and links are few and long-lived.
    private let links = Mutex<(open: [ObjectIdentifier: Channel], accepted: Int)>(([:], 0))

    public init(
        address: LinkAddress, group: EventLoopGroup, configuration: YamuxConfiguration = YamuxConfiguration(role: .server),
        logger: Logger = Logger(label: "yamux-listener"),
        streamInitializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void>,
        relayConnector: (@Sendable (YamuxSocketRelay) -> EventLoopFuture<Void>)? = nil,
        linkInitializer: (@Sendable (Channel) throws -> Void)? = nil
    ) {
        precondition(configuration.role == .server, "a link listener is the yamux server side")
        self.address = address
        self.group = group
        self.configuration = configuration
        self.logger = logger
        self.streamInitializer = streamInitializer
        self.relayConnector = relayConnector
        self.linkInitializer = linkInitializer
    }

    /// The bound address (with the real port when 0 was asked for).
    public var localAddress: SocketAddress? { serverChannel.withLock { $0?.localAddress } }

    /// Number of links connected right now.
    public var linkCount: Int { links.withLock { $0.open.count } }

    private var openLinks: [Channel] { links.withLock { Array($0.open.values) } }

    public func start() -> EventLoopFuture<Void> {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .linkSocketOptions(for: address)
            .childChannelInitializer { channel in
                self.acceptLink(channel)
            }
        let bound = bootstrap.bind(to: address)
        return bound.map { channel in
            self.serverChannel.withLock { $0 = channel }
        }
    }

    private func acceptLink(_ channel: Channel) -> EventLoopFuture<Void> {
        let key = ObjectIdentifier(channel)
        links.withLock { links in
            links.accepted += 1
            links.open[key] = channel
        }
        // `peer` is where the link came from; `link` is the name the dialer gave it in its first
        // ping (`YamuxLinkID`), the one repeaterd logs too: "link accepted" waits for that frame.
        var peerLogger = self.logger
        peerLogger[metadataKey: "peer"] = "\(channel.remoteAddress.map(\.commandLineForm) ?? "unix")"
        let logger = peerLogger
        let initializer = streamInitializer
        let connector = relayConnector
        return channel.eventLoop.makeCompletedFuture {
            try self.linkInitializer?(channel)
            let multiplexer = YamuxMultiplexer(
                configuration: configuration, logger: logger, inboundStreamInitializer: initializer,
                inboundRelayConnector: connector)
            let named = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            multiplexer.onFirstFrame = { linkID in
                named.value = true
                var linkLogger = logger
                if let linkID { linkLogger[metadataKey: "link"] = "\(linkID)" }
                let accepted = linkLogger
                accepted.info("link accepted")
                channel.closeFuture.whenComplete { _ in accepted.info("link closed") }
            }
            channel.closeFuture.whenComplete { _ in
                _ = self.links.withLock { $0.open.removeValue(forKey: key) }
                if !named.value { logger.info("link closed before its first frame") }
            }
            try channel.pipeline.syncOperations.addHandler(multiplexer)
        }
    }

    /// Streams open right now over all links (for tests and diagnostics: a link that dies
    /// must leave none behind).
    public func openStreamCount() -> EventLoopFuture<Int> {
        let loop = group.next()
        let counts = openLinks.map { channel in
            channel.eventLoop.submit {
                (try? channel.pipeline.syncOperations.handler(type: YamuxMultiplexer.self))?.openStreamCount ?? 0
            }
        }
        return EventLoopFuture.whenAllSucceed(counts, on: loop).map { $0.reduce(0, +) }
    }

    /// Says Go Away on every link: no new streams; open ones may finish.
    public func goAway() {
        for channel in openLinks {
            channel.eventLoop.execute {
                (try? channel.pipeline.syncOperations.handler(type: YamuxMultiplexer.self))?.goAway(.normal)
            }
        }
    }

    /// Completes once every link carries no stream.
    public func drained() -> EventLoopFuture<Void> {
        let loop = group.next()
        let futures = openLinks.map { channel in
            channel.eventLoop.flatSubmit {
                guard let mux = try? channel.pipeline.syncOperations.handler(type: YamuxMultiplexer.self) else {
                    return channel.eventLoop.makeSucceededVoidFuture()
                }
                return mux.allStreamsClosed()
            }
        }
        return EventLoopFuture.andAllComplete(futures, on: loop)
    }

    /// Stops listening and closes every link.
    public func stop() -> EventLoopFuture<Void> {
        let loop = group.next()
        let closeServer = serverChannel.withLock { $0 }?.close().recover { _ in } ?? loop.makeSucceededVoidFuture()
        return closeServer.flatMap {
            let open = self.openLinks
            return EventLoopFuture.andAllComplete(open.map { $0.close() }, on: loop)
        }
    }
}
