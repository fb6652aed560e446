import ArgumentParser
import CommandLineSupport
import Logging
import MuxCat
import NIOCore
import NIOPosix
import ServiceLifecycle
import SystemErrorText
import SystemPackage
import UnixSignals
import YamuxLink

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// muxcat: netcat for the repeater's multiplexed (yamux) link. Everything it does lives in the
/// MuxCat library; this file only turns command lines into calls.
struct MuxCatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muxcat",
        abstract: "netcat for the repeater's yamux link: stand in for either end, and decode captures.",
        discussion: """
            Exit status: 0 when everything went as asked (including Ctrl-C), 1 on any error, 64 on a usage error.
            """,
        version: RepeaterVersion.current,
        subcommands: [Listen.self, Connect.self, Decode.self])
}

/// Options every networked subcommand shares.
struct CommonOptions: ParsableArguments {
    @Flag(name: [.short, .customLong("verbose")], help: "Print link and per-stream open/close lines on stderr.")
    var verbose = false

    @Option(help: "Log level of the yamux internals.")
    var logLevel: Logger.Level = .warning

    @Option(
        help:
            "How stderr lines look: human, or json (one object per line: ts, level, logger, msg and the line's metadata; muxcat's own lines too)."
    )
    var logFormat: LogFormat = .human

    /// Sets up logging, and returns where muxcat's own stderr lines (listening, link and stream
    /// open/close, totals) go: stderr as they are, or as JSON log lines.
    func bootstrap() -> OutputSink {
        CommandLineSupport.bootstrapLogging(level: logLevel, format: logFormat)
        guard logFormat == .json else { return .standardError }
        var logger = Logger(label: "muxcat")
        // These lines are muxcat's output (shown whatever --log-level says), not its internals.
        logger.logLevel = .trace
        return OutputSink(lines: { [logger] line in
            let text = line.hasPrefix("muxcat: ") ? String(line.dropFirst("muxcat: ".count)) : line
            logger.notice("\(text)")
        })
    }
}

struct Listen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stand in for the runtime manager: accept repeater links and serve every stream they open.",
        discussion: """
            Accepts any number of links, at once or one after another, until Ctrl-C. Without a mode \
            option, prints what arrives on every stream, each line marked [link L stream S]: text as \
            text, anything else as a hex dump. The peer's FIN is answered with FIN.
            """)

    @Argument(help: "Where to listen: HOST:PORT, unix:PATH or vsock:CID:PORT.", transform: LinkAddress.parseArgument)
    var address: LinkAddress

    @Flag(help: "Print every chunk as a hex dump, even text.")
    var hex = false

    @Flag(help: "Echo every byte back; FIN after the echo once the peer has sent FIN.")
    var echo = false

    @Option(
        name: .customLong("forward"),
        help: ArgumentHelp(
            "Relay every stream to a new connection to this address (TCP with TCP_NODELAY, or a Unix socket), with half-close and backpressure.",
            valueName: "HOST:PORT|unix:PATH"), transform: LinkAddress.parseArgument)
    var forwardTarget: LinkAddress?

    @Option(
        name: .customLong("exec"),
        help: ArgumentHelp(
            "Run '/bin/sh -c COMMAND' per stream, the stream as its stdin/stdout (MUXCAT_LINK and MUXCAT_STREAM set); the stream ends when its stdout closes.",
            valueName: "COMMAND"))
    var command: String?

    @Option(help: ArgumentHelp("Write every frame crossing the links, both ways, to this capture file.", valueName: "FILE"))
    var capture: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        let modes = [echo, forwardTarget != nil, command != nil].filter { $0 }.count
        if modes > 1 { throw ValidationError("--echo, --forward and --exec exclude each other; choose one") }
        if hex && modes > 0 { throw ValidationError("--hex only applies to printing (no --echo, --forward or --exec)") }
    }

    func run() async throws {
        let diagnostics = common.bootstrap()
        let mode: MuxCatListener.Mode
        if echo {
            mode = .echo
        } else if let forwardTarget {
            mode = .forward(forwardTarget)
        } else if let command {
            mode = .exec(command: command)
        } else {
            mode = .print(hex: hex)
        }
        var configuration = MuxCatListener.Configuration(address: address, mode: mode)
        configuration.verbose = common.verbose
        configuration.capturePath = capture

        let logger = Logger(label: "muxcat")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let listener: MuxCatListener
        do {
            listener = try MuxCatListener(configuration: configuration, group: group, logger: logger, diagnostics: diagnostics)
        } catch {
            try? await group.shutdownGracefully()
            throw CommandLineFailure.describing(error)
        }
        try await MuxCatCommand.runUntilShutdown(ListenService(listener: listener, address: address), group: group, logger: logger)
    }
}

/// Serves links until Ctrl-C or SIGTERM, then says Go Away on them, closes them and flushes the
/// capture file.
struct ListenService: Service {
    let listener: MuxCatListener
    let address: LinkAddress

    func run() async throws {
        do {
            try await listener.start().get()
        } catch {
            throw CommandLineFailure.describing(error)
        }
        try? await gracefulShutdown()
        try await listener.stop().get()
    }
}

struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stand in for the repeater: dial a runtime manager's link and bridge one stream to stdin/stdout.",
        discussion: """
            Like nc -N: stdin's EOF half-closes the stream (FIN); muxcat exits once the other side has \
            finished too. With --streams N, N streams are opened at once and each gets the same stdin; \
            what comes back is counted, not printed, and a totals line goes to stderr.
            """)

    @Argument(help: "The link to dial: HOST:PORT, unix:PATH or vsock:CID:PORT.", transform: LinkAddress.parseArgument)
    var address: LinkAddress

    @Option(parsing: .unconditional, help: "Open this many streams in parallel (at least 1), each fed the same stdin.")
    var streams = 1

    @Option(help: ArgumentHelp("Write every frame crossing the link, both ways, to this capture file.", valueName: "FILE"))
    var capture: String?

    @OptionGroup var common: CommonOptions

    func validate() throws {
        try OptionRange.check("--streams", streams, atLeast: 1)
    }

    func run() async throws {
        let diagnostics = common.bootstrap()
        var configuration = MuxCatConnector.Configuration(address: address)
        configuration.streams = streams
        configuration.verbose = common.verbose
        configuration.capturePath = capture

        let logger = Logger(label: "muxcat")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let connector = MuxCatConnector(
            configuration: configuration, eventLoop: group.next(), logger: logger, diagnostics: diagnostics)
        try await MuxCatCommand.runUntilShutdown(
            ConnectService(connector: connector, diagnostics: diagnostics), group: group, logger: logger)
    }
}

/// Runs `muxcat connect` until every stream is closed; Ctrl-C or SIGTERM ends it early (Go Away,
/// capture flushed, exit 0). Prints the closing lines; a stream that did not end cleanly makes
/// the exit status 1.
struct ConnectService: Service {
    let connector: MuxCatConnector
    let diagnostics: OutputSink

    func run() async throws {
        let interrupt = connector.eventLoop.makePromise(of: Void.self)
        let outcome: MuxCatConnector.Outcome
        do {
            outcome = try await withGracefulShutdownHandler {
                try await connector.run(interrupt: interrupt.futureResult)
            } onGracefulShutdown: {
                interrupt.succeed()
            }
        } catch {
            interrupt.fail(CancellationError())
            throw CommandLineFailure.describing(error)
        }
        interrupt.fail(CancellationError())
        if connector.configuration.streams > 1 { diagnostics.line("muxcat: \(outcome.totalsLine)") }
        if !outcome.succeeded {
            // With -v each stream's close was said as it happened: not twice.
            if !connector.configuration.verbose {
                for tally in outcome.tallies where !MuxCatConnector.endedCleanly(tally) {
                    diagnostics.line("muxcat: \(tally.closedLine)")
                }
            }
            throw ExitCode.failure
        }
    }
}

extension MuxCatCommand {
    /// Runs `service` in a service group that turns SIGTERM and SIGINT (Ctrl-C) into a graceful
    /// shutdown, then shuts the event loops down.
    static func runUntilShutdown(_ service: some Service, group: MultiThreadedEventLoopGroup, logger: Logger) async throws {
        let serviceGroup = ServiceGroup(
            configuration: .init(
                services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
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

extension CommandLineFailure {
    /// MuxCat's errors are already worded for the user; anything else gets `otherwise`.
    static func describing(_ error: Error, otherwise: String? = nil) -> Error {
        switch error {
        case let error as MuxCatError: return CommandLineFailure(error.description)
        case let error as CaptureFileError: return CommandLineFailure(error.description)
        case let error as CommandLineFailure: return error
        case let error as LinkListenError: return CommandLineFailure(error.description)
        default: return otherwise.map(CommandLineFailure.init) ?? error
        }
    }
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a capture file, or a raw byte stream of yamux frames in one direction, one line per frame.",
        discussion: """
            Prints one line per frame (time, link and direction when the input is a capture; byte offset; \
            type; flags; stream id; length, delta, opaque value or Go Away code; first payload bytes), \
            then a summary. Malformed input is reported with its byte offset; the exit status is then 1.
            """)

    @Argument(help: "A capture file (from --capture) or raw frames; '-' or nothing reads stdin.")
    var file: String = "-"

    func run() throws {
        let descriptor: CInt
        if file == "-" {
            descriptor = 0
        } else {
            descriptor = open(file, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else {
                throw CommandLineFailure("cannot open \(file): \(SystemErrorText.errnoText(errno))")
            }
        }
        defer { if descriptor != 0 { close(descriptor) } }
        var run = FrameDecodeRun()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let out = OutputSink.standardOutput
        var total = 0
        while true {
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { try FileDescriptor(rawValue: descriptor).read(into: $0) }
            } catch {
                throw CommandLineFailure("cannot read \(file): \(SystemErrorText.describe(error))")
            }
            if count == 0 { break }
            total += count
            let lines = run.feed(ByteBuffer(bytes: chunk[0..<count]))
            if !lines.isEmpty { out.write(lines.joined(separator: "\n") + "\n") }
        }
        // Nothing to decode is not a decoded link with no traffic: say so, and fail.
        guard total > 0 else {
            throw CommandLineFailure("decode: \(file == "-" ? "stdin" : file) is empty: there is no frame to decode")
        }
        let last = run.finish() + run.summary.lines
        out.write(last.joined(separator: "\n") + "\n")
        if let first = run.problems.first {
            // The problems are ERROR lines among the frames on stdout; stderr says where to look
            // rather than saying them a second time.
            let count = run.problems.count == 1 ? "1 problem" : "\(run.problems.count) problems"
            throw CommandLineFailure("decode: \(count) in the input, the first at byte offset \(first.offset) (the ERROR lines on stdout)")
        }
    }
}
