import Logging
import NIOCore
import NIOPosix
import Synchronization
import SystemErrorText
import Yamux
import YamuxLink

#if canImport(Glibc)
import Glibc
#endif

/// `muxcat connect`: stands in for the repeater. Dials a runtime manager's link, opens streams,
/// feeds them stdin, and (with one stream) copies what comes back to stdout, like `nc -N`.
///
/// Stdin's EOF half-closes every stream (FIN); the peer's FIN on a stream means the other side
/// is done, so muxcat closes that stream too; muxcat returns once every stream is closed.
public final class MuxCatConnector: Sendable {
    public struct Configuration: Sendable {
        public var address: LinkAddress
        /// Streams opened at once, each fed the same stdin (a quick load check).
        public var streams = 1
        public var verbose = false
        public var capturePath: String?
        public var connectTimeout: TimeAmount = .seconds(5)
        public var yamux: YamuxConfiguration

        public init(address: LinkAddress) {
            self.address = address
            var yamux = YamuxConfiguration(role: .client)
            // A runtime manager never opens streams toward the repeater; refuse any it tries.
            yamux.maximumInboundStreams = 0
            self.yamux = yamux
        }
    }

    /// How the run went, for the exit status and the closing lines.
    public struct Outcome: Sendable {
        public var tallies: [StreamTally]
        public var interrupted: Bool
        public var elapsed: TimeAmount

        /// Every stream ended without reset or error (or the user pressed Ctrl-C).
        public var succeeded: Bool {
            interrupted || tallies.allSatisfy(MuxCatConnector.endedCleanly)
        }

        /// The line for `--streams N` (N > 1): totals over all streams.
        public var totalsLine: String {
            let finished = tallies.filter(MuxCatConnector.endedCleanly).count
            let seconds = Double(elapsed.nanoseconds) / 1e9
            let sent = tallies.reduce(0) { $0 + $1.bytesOut }
            let received = tallies.reduce(0) { $0 + $1.bytesIn }
            return "\(tallies.count) streams in \(String(format3(seconds))) s: \(finished) closed cleanly, "
                + "\(tallies.count - finished) failed; \(sent) bytes sent, \(received) bytes received in total"
        }
    }

    /// A stream ended without reset, link loss or error.
    public static func endedCleanly(_ tally: StreamTally) -> Bool {
        tally.ending == nil
    }

    public let configuration: Configuration
    public let eventLoop: EventLoop
    private let logger: Logger
    private let output: OutputSink
    private let diagnostics: OutputSink

    public init(
        configuration: Configuration, eventLoop: EventLoop, logger: Logger, output: OutputSink = .standardOutput,
        diagnostics: OutputSink = .standardError
    ) {
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.logger = logger
        self.output = output
        self.diagnostics = diagnostics
    }

    /// Connects, runs the streams until they are all closed (or `interrupt` is signalled), and
    /// reports how it went. Reads `input` (stdin) through `InputReader`.
    public func run(input: CInt = 0, interrupt: EventLoopFuture<Void>? = nil) async throws -> Outcome {
        let started = NIODeadline.now()
        let address: LinkTarget
        do {
            address = try configuration.address.resolve()
        } catch {
            throw MuxCatError("cannot resolve \(configuration.address): \(SystemErrorText.describe(error))")
        }
        let capture = try configuration.capturePath.map { try CaptureFile(path: $0, role: .client) }
        defer { if let problem = capture?.close() { diagnostics.line("muxcat: \(problem)") } }

        let link = try await connect(to: address, capture: capture)
        if configuration.verbose { diagnostics.line("muxcat: link 1 connected to \(configuration.address)") }

        let record = RunRecord()
        let streams = try await eventLoop.flatSubmit {
            self.openStreams(on: link, record: record)
        }.get()

        let allClosed = EventLoopFuture.andAllComplete(streams.map { $0.closeFuture }, on: eventLoop)
        interrupt?.whenSuccess {
            record.interrupted = true
            // Go Away first, so the peer sees an orderly end rather than a dropped link.
            (try? link.pipeline.syncOperations.handler(type: YamuxMultiplexer.self))?.goAway(.normal)
            link.close(promise: nil)
        }
        link.closeFuture.whenComplete { _ in
            if !record.interrupted && self.configuration.verbose {
                self.diagnostics.line("muxcat: link 1 closed")
            }
        }
        let reader = try await InputReader.start(
            descriptor: input, eventLoop: eventLoop,
            feed: { chunk in self.feed(chunk, to: streams) },
            finished: {
                // EOF: half-close every stream (-N semantics).
                for stream in streams { stream.close(mode: .output, promise: nil) }
            })
        try? await allClosed.get()
        // Every stream is done, whether stdin is or not: stop reading it.
        await reader.stop()
        // Leave politely.
        try? await eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            (try? link.pipeline.syncOperations.handler(type: YamuxMultiplexer.self))?.goAway(.normal)
            return link.close().recover { _ in }
        }.get()
        let result = record.tallies.sorted { $0.stream < $1.stream }
        return Outcome(tallies: result, interrupted: record.interrupted, elapsed: .now() - started)
    }

    /// Dials with the link socket options repeaterd uses (`linkSocketOptions(for:)`: TCP_NODELAY,
    /// TCP_NOTSENT_LOWAT and the link write watermark), since muxcat connect stands in for it.
    func connect(to address: LinkTarget, capture: CaptureFile?) async throws -> Channel {
        // Named as repeaterd names its links, so the peer's log lines say `link=` as for repeaterd's.
        var named = configuration.yamux
        let linkID = YamuxLinkID.random()
        named.announcedLinkID = linkID
        let yamux = named
        var namedLogger = self.logger
        namedLogger[metadataKey: "link"] = "\(linkID)"
        let logger = namedLogger
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .linkSocketOptions(for: configuration.address)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let capture {
                        try channel.pipeline.syncOperations.addHandler(CaptureTap(file: capture, link: 1))
                    }
                    try channel.pipeline.syncOperations.addHandler(YamuxMultiplexer(configuration: yamux, logger: logger))
                }
            }
        do {
            return try await bootstrap.connect(to: address).get()
        } catch {
            throw MuxCatError(
                "cannot connect to \(configuration.address): \(SystemErrorText.describe(error)); "
                    + "is the runtime manager (or muxcat listen) listening there?")
        }
    }

    /// What a run's streams and its interruption leave for the outcome, from the event loop and
    /// the signal handler.
    private final class RunRecord: Sendable {
        private let state = Mutex((tallies: [StreamTally](), interrupted: false))

        func add(_ tally: StreamTally) { state.withLock { $0.tallies.append(tally) } }
        var tallies: [StreamTally] { state.withLock { $0.tallies } }
        var interrupted: Bool {
            get { state.withLock { $0.interrupted } }
            set { state.withLock { $0.interrupted = newValue } }
        }
    }

    private func openStreams(on link: Channel, record: RunRecord) -> EventLoopFuture<[Channel]> {
        guard let mux = try? link.pipeline.syncOperations.handler(type: YamuxMultiplexer.self) else {
            return eventLoop.makeFailedFuture(MuxCatError("the link closed before a stream could be opened"))
        }
        let copyToOutput = configuration.streams == 1
        let opened = (0..<configuration.streams).map { _ in
            mux.createStream { stream in
                let id = (stream as? YamuxStreamChannel)?.streamID ?? .session
                return stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                    let pipeline = stream.pipeline.syncOperations
                    if self.configuration.verbose {
                        try pipeline.addHandler(
                            StreamReporter(tally: StreamTally(link: 1, stream: id), sink: self.diagnostics))
                    }
                    try pipeline.addHandler(
                        ConnectStreamHandler(
                            tally: StreamTally(link: 1, stream: id), output: copyToOutput ? self.output : nil,
                            onClose: { tally in record.add(tally) }))
                }
            }
        }
        return EventLoopFuture.whenAllSucceed(opened, on: eventLoop).flatMapErrorThrowing { error in
            throw MuxCatError("cannot open a stream on the link: \(error)")
        }
    }

    /// Writes one chunk of stdin to every stream; succeeds once it is on the link for every
    /// stream still open, fails when none is.
    private func feed(_ chunk: ByteBuffer, to streams: [Channel]) -> EventLoopFuture<Void> {
        let written = streams.map { $0.writeAndFlush(chunk) }
        return EventLoopFuture.whenAllComplete(written, on: eventLoop).flatMapThrowing { results in
            guard results.contains(where: { if case .success = $0 { return true } else { return false } }) else {
                throw MuxCatError("no stream is left to take stdin")
            }
        }
    }
}

/// The application end of one `muxcat connect` stream: copies what arrives to stdout (with one
/// stream), closes the stream once the peer has finished, and reports the stream's tally.
final class ConnectStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer

    private var tally: StreamTally
    private let output: OutputSink?
    private let onClose: (StreamTally) -> Void

    init(tally: StreamTally, output: OutputSink?, onClose: @escaping (StreamTally) -> Void) {
        self.tally = tally
        self.output = output
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        tally.bytesIn += bytes.readableBytes
        output?.write(bytes)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            // The other side is done: finish ours (FIN after anything still queued) and close.
            tally.peerFinished = true
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        tally.failed(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose(tally)
        context.fireChannelInactive()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        tally.bytesOut += unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input { tally.finishedLocally = true }
        context.close(mode: mode, promise: promise)
    }
}

/// Seconds with three decimals, without Foundation's String(format:).
func format3(_ seconds: Double) -> String {
    let millis = Int((seconds * 1000).rounded())
    let fraction = String(millis % 1000)
    return "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
}
