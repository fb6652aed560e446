import ByteRelay
import Logging
import NIOCore
import NIOPosix
import Synchronization
import SystemErrorText
import Yamux
import YamuxLink

/// `muxcat listen`: stands in for the runtime manager. Accepts any number of repeater links
/// (through `YamuxLinkListener`) and does one thing with every stream the repeater opens.
public final class MuxCatListener: Sendable {
    /// What happens to each stream.
    public enum Mode: Sendable, Equatable {
        /// Print what arrives, marked with link and stream (text as text, else a hex dump).
        case print(hex: Bool)
        /// Echo every byte; FIN after the echo once the peer sent FIN.
        case echo
        /// Relay each stream to a new TCP connection (or Unix socket) to this target.
        case forward(LinkAddress)
        /// Run `/bin/sh -c COMMAND` per stream with the stream as its stdin and stdout.
        case exec(command: String)
    }

    public struct Configuration: Sendable {
        public var address: LinkAddress
        public var mode: Mode
        /// Per-stream open/close lines (and link lines) on stderr.
        public var verbose = false
        /// Write every frame crossing any link to this file (docs/CAPTURE-FORMAT.md).
        public var capturePath: String?
        /// How long `--forward` waits for the target to accept a connection.
        public var connectTimeout: TimeAmount = .seconds(5)
        public var yamux = YamuxConfiguration(role: .server)

        public init(address: LinkAddress, mode: Mode) {
            self.address = address
            self.mode = mode
        }
    }

    public let configuration: Configuration
    private let listener: YamuxLinkListener
    private let streams: StreamServer

    /// Resolves `--forward`'s target and creates the capture file (so a bad value fails before
    /// anything listens); `start()` binds.
    public init(
        configuration: Configuration, group: EventLoopGroup, logger: Logger,
        output: OutputSink = .standardOutput, diagnostics: OutputSink = .standardError
    ) throws {
        var forwardTarget: LinkTarget?
        if case .forward(let target) = configuration.mode {
            do {
                forwardTarget = try target.resolve()
            } catch {
                throw MuxCatError("cannot resolve the --forward target \(target): \(SystemErrorText.describe(error))")
            }
        }
        let capture = try configuration.capturePath.map { try CaptureFile(path: $0, role: .server) }
        let streams = StreamServer(
            configuration: configuration, forwardTarget: forwardTarget, capture: capture, logger: logger,
            output: output, diagnostics: diagnostics)
        // --forward relays each stream straight to its target socket (the lean stream: no child
        // channel); with --verbose it keeps a child channel, whose pipeline reports each stream.
        var relayConnector: (@Sendable (YamuxSocketRelay) -> EventLoopFuture<Void>)?
        if case .forward = configuration.mode, !configuration.verbose {
            relayConnector = { relay in streams.connectRelay(relay) }
        }
        let listener = YamuxLinkListener(
            address: configuration.address, group: group, configuration: configuration.yamux, logger: logger,
            streamInitializer: { stream in streams.initializeStream(stream) }, relayConnector: relayConnector,
            linkInitializer: { channel in try streams.initializeLink(channel) })
        self.configuration = configuration
        self.listener = listener
        self.streams = streams
    }

    /// The bound address (with the real port when 0 was asked for).
    public var localAddress: SocketAddress? { listener.localAddress }

    /// Binds and starts accepting links.
    public func start() -> EventLoopFuture<Void> {
        listener.start().map { [listener, configuration, streams] in
            if configuration.verbose {
                let bound = listener.localAddress.map(MuxCatListener.describe) ?? "\(configuration.address)"
                streams.diagnostics.line("muxcat: listening on \(bound) (\(configuration.mode))")
            }
        }
    }

    /// Ctrl-C: says Go Away on every link, then closes them, then flushes and closes the capture
    /// file (reporting a write error on stderr).
    public func stop() -> EventLoopFuture<Void> {
        listener.goAway()
        return listener.stop().map { [streams] in streams.closeCapture() }
    }

    /// `127.0.0.1:6000` rather than NIO's `[IPv4]127.0.0.1/127.0.0.1:6000`.
    static func describe(_ address: SocketAddress) -> String {
        // The connecting end of a Unix socket usually has no name.
        if case .unixDomainSocket = address, address.pathname?.isEmpty ?? true { return "a Unix socket peer" }
        return address.commandLineForm
    }
}

/// What `muxcat listen` does with every link and stream: the state the link and stream
/// initializers share across event loops (all of it immutable, but the link numbers, which sit
/// behind a lock).
private final class StreamServer: Sendable {
    let configuration: MuxCatListener.Configuration
    /// `--forward`'s target, resolved once: resolving on every stream costs connection rate.
    let forwardTarget: LinkTarget?
    let capture: CaptureFile?
    let logger: Logger
    let output: OutputSink
    let diagnostics: OutputSink
    /// Link numbers by link channel, so every stream line can say which link it came on.
    private let linkNumbers = Mutex(LinkTable())

    private struct LinkTable {
        var next = 1
        var numbers: [ObjectIdentifier: Int] = [:]
    }

    init(
        configuration: MuxCatListener.Configuration, forwardTarget: LinkTarget?, capture: CaptureFile?, logger: Logger,
        output: OutputSink, diagnostics: OutputSink
    ) {
        self.configuration = configuration
        self.forwardTarget = forwardTarget
        self.capture = capture
        self.logger = logger
        self.output = output
        self.diagnostics = diagnostics
    }

    func closeCapture() {
        if let problem = capture?.close() { diagnostics.line("muxcat: \(problem)") }
    }

    func initializeLink(_ channel: Channel) throws {
        let key = ObjectIdentifier(channel)
        let number = linkNumbers.withLock { table -> Int in
            defer { table.next += 1 }
            table.numbers[key] = table.next
            return table.next
        }
        let peer = channel.remoteAddress.map(MuxCatListener.describe) ?? "a Unix socket peer"
        if configuration.verbose { diagnostics.line("muxcat: link \(number) accepted from \(peer)") }
        if let capture {
            // Before the multiplexer: it sees the link's bytes exactly as they cross the socket.
            try channel.pipeline.syncOperations.addHandler(CaptureTap(file: capture, link: number))
        }
        channel.closeFuture.whenComplete { [self] _ in
            linkNumbers.withLock { _ = $0.numbers.removeValue(forKey: key) }
            if configuration.verbose { diagnostics.line("muxcat: link \(number) closed") }
        }
    }

    private func linkNumber(of stream: Channel) -> Int {
        guard let parent = stream.parent else { return 0 }
        return linkNumber(ofLink: parent)
    }

    private func linkNumber(ofLink link: Channel) -> Int {
        linkNumbers.withLock { $0.numbers[ObjectIdentifier(link)] ?? 0 }
    }

    func initializeStream(_ stream: Channel) -> EventLoopFuture<Void> {
        let link = linkNumber(of: stream)
        let id = (stream as? YamuxStreamChannel)?.streamID ?? .session
        // Synchronously where the channel allows it (a yamux stream does): a future per stream
        // costs connection rate.
        let halfClosureSet: EventLoopFuture<Void>
        if let options = stream.syncOptions {
            halfClosureSet = stream.eventLoop.makeCompletedFuture {
                try options.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            }
        } else {
            halfClosureSet = stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        }
        return halfClosureSet.flatMapThrowing { [self] in
            let pipeline = stream.pipeline.syncOperations
            if configuration.verbose {
                try pipeline.addHandler(StreamReporter(tally: StreamTally(link: link, stream: id), sink: diagnostics))
            }
            switch configuration.mode {
            case .print(let hex):
                let formatter = ChunkFormatter(link: link, stream: id.rawValue, forceHex: hex)
                try pipeline.addHandler(StreamPrintHandler(formatter: formatter, sink: output))
            case .echo:
                try pipeline.addHandler(StreamEchoHandler())
            case .forward, .exec:
                break
            }
        }.flatMap { [self] in
            switch configuration.mode {
            case .forward(let target):
                return forward(stream, label: StreamLabel(link: link, stream: id), to: target)
            case .exec(let command):
                return exec(command, stream: stream, link: link, id: id)
            case .print, .echo:
                return stream.eventLoop.makeSucceededVoidFuture()
            }
        }
    }

    /// `--forward` with the lean stream: connects the target on the link's event loop with the
    /// relay as its handler. The stream is accepted once the target accepted; if the target
    /// refuses, the stream is refused (RST), as with a child channel.
    func connectRelay(_ relay: YamuxSocketRelay) -> EventLoopFuture<Void> {
        guard case .forward(let target) = configuration.mode, let forwardTarget else {
            preconditionFailure("connectRelay is only used with --forward")
        }
        // The multiplexer asks while it is on its link; were it gone, any loop can say so.
        guard let link = relay.link else {
            return MultiThreadedEventLoopGroup.singleton.next().makeFailedFuture(ChannelError.ioOnClosedChannel)
        }
        let logger = self.logger
        let label = StreamLabel(link: linkNumber(ofLink: link), stream: relay.streamID)
        relay.onEnd = { reason in logger.debug("\(label): relay ended: \(reason)") }
        // On the link's event loop: the target's channel is made there too (no hop per message).
        return connectTarget(
            target, at: forwardTarget, label: label, handler: NIOLoopBound(relay, eventLoop: link.eventLoop)
        ).map { _ in }
    }

    /// Connects the `--forward` target on `handler`'s event loop with `handler` as its pipeline:
    /// TCP_NODELAY, half-close, short read turns. A refusal is reported on stderr and fails the
    /// future, which refuses the stream (RST).
    private func connectTarget(
        _ target: LinkAddress, at address: LinkTarget, label: StreamLabel, handler: NIOLoopBound<some ChannelHandler>
    ) -> EventLoopFuture<Channel> {
        var bootstrap = ClientBootstrap(group: handler.eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            // Short turns on the shared event loop, as for repeaterd's clients (head-of-line).
            .channelOption(.maxMessagesPerRead, value: 2)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler.value) }
            }
        if target.isTCP { bootstrap = bootstrap.channelOption(.tcpOption(.tcp_nodelay), value: 1) }
        return bootstrap.connect(to: address).flatMapErrorThrowing { [diagnostics] error in
            diagnostics.line(
                "muxcat: \(label): cannot connect to \(target): \(SystemErrorText.describe(error)); refusing the stream (RST)")
            throw error
        }
    }

    /// Connects to the target on the stream's own event loop (no thread hop per message) and
    /// joins the two with a `ChannelRelay` pair. The stream is accepted only once the target accepted:
    /// if the target refuses, the repeater's stream is refused (RST) and its client closed,
    /// which is what would have happened with the target as the runtime manager.
    private func forward(_ stream: Channel, label: StreamLabel, to target: LinkAddress) -> EventLoopFuture<Void> {
        let logger = self.logger
        let (streamGlue, targetGlue) = loopBound(
            ChannelRelay.matchedPair(first: ("stream", .yamuxStream), second: ("target", .socket)) { reason in
                logger.debug("\(label): relay ended: \(reason)")
            }, to: stream.eventLoop)
        return connectTarget(target, at: forwardTarget!, label: label, handler: targetGlue).flatMapThrowing { _ in
            try stream.pipeline.syncOperations.addHandler(streamGlue.value)
        }
    }

    /// Runs the command with the stream as its stdin/stdout. Its stdout's EOF (normally: it
    /// exited) ends the stream: FIN after its last output, then the stream is closed.
    private func exec(_ command: String, stream: Channel, link: Int, id: YamuxStreamID) -> EventLoopFuture<Void> {
        let logger = self.logger
        let label = "link \(link) stream \(id)"
        let (streamGlue, processGlue) = loopBound(
            ChannelRelay.matchedPair(first: ("stream", .yamuxStream), second: ("command", .socket)) { reason in
                logger.debug("\(label): relay ended: \(reason)")
            }, to: stream.eventLoop)
        let environment = ["MUXCAT_LINK": "\(link)", "MUXCAT_STREAM": "\(id)"]
        return ProcessBridge.spawn(
            command: command, environment: environment, eventLoop: stream.eventLoop, logger: logger
        ) { pipe in
            pipe.eventLoop.makeCompletedFuture {
                try pipe.pipeline.syncOperations.addHandlers(processGlue.value, CloseOnInputClosed())
            }
        }.flatMapThrowing { _ in
            // In the same event-loop turn as the pipe channel's registration, before it first reads
            // (and before the stream is active, which it becomes when this future completes).
            try stream.pipeline.syncOperations.addHandler(streamGlue.value)
        }.flatMapErrorThrowing { [diagnostics] error in
            diagnostics.line("muxcat: \(label): \(error); refusing the stream (RST)")
            throw error
        }
    }
}

extension MuxCatListener.Mode: CustomStringConvertible {
    public var description: String {
        switch self {
        case .print(let hex): return hex ? "print as hex" : "print"
        case .echo: return "echo"
        case .forward(let target): return "forward to \(target)"
        case .exec(let command): return "exec \(command)"
        }
    }
}

/// "link 1 stream 3", formatted only when a line is written (not once per stream opened).
struct StreamLabel: Sendable, CustomStringConvertible {
    var link: Int
    var stream: YamuxStreamID
    var description: String { "link \(link) stream \(stream)" }
}

/// Closes a channel once its input ended: for `--exec`, the command's stdout closing means the
/// command is done (the `ChannelRelay` before this handler has already passed the FIN on).
final class CloseOnInputClosed: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if case ChannelEvent.inputClosed = event { context.close(promise: nil) }
    }
}

/// The two handlers of a relay, made on the stream's event loop, where both channels' initializers
/// (the only places that touch them) run: the other channel is made on the stream's loop too.
private func loopBound(
    _ pair: (ChannelRelay, ChannelRelay), to eventLoop: EventLoop
) -> (NIOLoopBound<ChannelRelay>, NIOLoopBound<ChannelRelay>) {
    (NIOLoopBound(pair.0, eventLoop: eventLoop), NIOLoopBound(pair.1, eventLoop: eventLoop))
}

/// A failure already worded for the person at the terminal.
public struct MuxCatError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
