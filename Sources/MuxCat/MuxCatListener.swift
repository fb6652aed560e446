import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Repeater
import Yamux

/// `muxcat listen`: stands in for the runtime manager. Accepts any number of repeater links
/// (through `YamuxLinkListener`) and does one thing with every stream the repeater opens.
public final class MuxCatListener: @unchecked Sendable {
    /// What happens to each stream.
    public enum Mode: Sendable, Equatable {
        /// Echo every byte; FIN after the echo once the peer sent FIN.
        case echo
    }

    public struct Configuration: Sendable {
        public var address: LinkAddress
        public var mode: Mode
        /// Per-stream open/close lines (and link lines) on stderr.
        public var verbose = false
        public var yamux = YamuxConfiguration(role: .server)

        public init(address: LinkAddress, mode: Mode) {
            self.address = address
            self.mode = mode
        }
    }

    public let configuration: Configuration
    private let group: EventLoopGroup
    private let logger: Logger
    private let diagnostics: OutputSink
    private var listener: YamuxLinkListener!
    /// Link numbers by link channel, so every stream line can say which link it came on.
    private let linkNumbers = NIOLockedValueBox(LinkTable())

    private struct LinkTable {
        var next = 1
        var numbers: [ObjectIdentifier: Int] = [:]
    }

    public init(
        configuration: Configuration, group: EventLoopGroup, logger: Logger,
        diagnostics: OutputSink = .standardError
    ) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.diagnostics = diagnostics
    }

    /// The bound address (with the real port when 0 was asked for).
    public var localAddress: SocketAddress? { listener?.localAddress }

    /// Binds and starts accepting links.
    public func start() -> EventLoopFuture<Void> {
        let listener = YamuxLinkListener(
            address: configuration.address, group: group, configuration: configuration.yamux, logger: logger,
            streamInitializer: { [self] stream in self.initializeStream(stream) })
        listener.linkInitializer = { [self] channel in try self.initializeLink(channel) }
        self.listener = listener
        return listener.start().map {
            if self.configuration.verbose {
                let bound = listener.localAddress.map(MuxCatListener.describe) ?? "\(self.configuration.address)"
                self.diagnostics.line("muxcat: listening on \(bound) (\(self.configuration.mode))")
            }
        }
    }

    /// Ctrl-C: says Go Away on every link, then closes them.
    public func stop() -> EventLoopFuture<Void> {
        guard let listener else { return group.next().makeSucceededVoidFuture() }
        listener.goAway()
        return listener.stop()
    }

    private func initializeLink(_ channel: Channel) throws {
        let key = ObjectIdentifier(channel)
        let number = linkNumbers.withLockedValue { table -> Int in
            defer { table.next += 1 }
            table.numbers[key] = table.next
            return table.next
        }
        let peer = channel.remoteAddress.map(MuxCatListener.describe) ?? "a Unix socket peer"
        if configuration.verbose { diagnostics.line("muxcat: link \(number) accepted from \(peer)") }
        channel.closeFuture.whenComplete { [self] _ in
            linkNumbers.withLockedValue { _ = $0.numbers.removeValue(forKey: key) }
            if configuration.verbose { diagnostics.line("muxcat: link \(number) closed") }
        }
    }

    private func linkNumber(of stream: Channel) -> Int {
        guard let parent = stream.parent else { return 0 }
        return linkNumbers.withLockedValue { $0.numbers[ObjectIdentifier(parent)] ?? 0 }
    }

    private func initializeStream(_ stream: Channel) -> EventLoopFuture<Void> {
        let link = linkNumber(of: stream)
        let id = (stream as? YamuxStreamChannel)?.streamID ?? .session
        return stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing { [self] in
            let pipeline = stream.pipeline.syncOperations
            if configuration.verbose {
                try pipeline.addHandler(StreamReporter(tally: StreamTally(link: link, stream: id), sink: diagnostics))
            }
            switch configuration.mode {
            case .echo:
                try pipeline.addHandler(StreamEchoHandler())
            }
        }
    }

    /// `127.0.0.1:6000` rather than NIO's `[IPv4]127.0.0.1/127.0.0.1:6000`.
    static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v4: return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        case .v6: return "[\(address.ipAddress ?? "?")]:\(address.port ?? 0)"
        case .unixDomainSocket: return "unix:\(address.pathname ?? "?")"
        }
    }
}

extension MuxCatListener.Mode: CustomStringConvertible {
    public var description: String {
        switch self {
        case .echo: return "echo"
        }
    }
}
