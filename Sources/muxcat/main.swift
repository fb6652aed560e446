import ArgumentParser
import Dispatch
import Logging
import MuxCat
import NIOCore
import NIOPosix
import Repeater

/// muxcat: netcat for the repeater's multiplexed (yamux) link. Everything it does lives in the
/// MuxCat library; this file only turns command lines into calls.
struct MuxCatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "muxcat",
        abstract: "netcat for the repeater's yamux link: stand in for either end, and decode captures.",
        discussion: """
            Exit status: 0 when everything went as asked (including Ctrl-C), 1 on any error.
            """,
        subcommands: [Listen.self])
}

/// Options every networked subcommand shares.
struct CommonOptions: ParsableArguments {
    @Flag(name: [.short, .customLong("verbose")], help: "Print link and per-stream open/close lines on stderr.")
    var verbose = false

    @Option(help: "Log level of the yamux internals: trace, debug, info, notice, warning, error or critical.")
    var logLevel = "warning"
}

struct Listen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stand in for the runtime manager: accept repeater links and serve every stream they open.",
        discussion: """
            Accepts any number of links, at once or one after another, until Ctrl-C.
            """)

    @Argument(help: "Where to listen: HOST:PORT or unix:PATH.")
    var address: String

    @Flag(help: "Echo every byte back; FIN after the echo once the peer has sent FIN.")
    var echo = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard echo else { throw ValidationError("choose what to do with each stream: --echo") }
    }

    func run() throws {
        let address = try parseLinkAddress(address)
        _ = try CommandLineSupport.bootstrapLogging(level: common.logLevel)
        var configuration = MuxCatListener.Configuration(address: address, mode: .echo)
        configuration.verbose = common.verbose

        let stop = DispatchSemaphore(value: 0)
        TerminationSignal.install { _ in stop.signal() }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        defer { try? group.syncShutdownGracefully() }
        let listener = MuxCatListener(configuration: configuration, group: group, logger: Logger(label: "muxcat"))
        do {
            try listener.start().wait()
        } catch {
            throw Failure("cannot listen on \(address): \(error); is another process using it?")
        }
        stop.wait()
        try? listener.stop().wait()
    }
}

/// An error already worded for the user: printed as `muxcat: <message>`, exit status 1.
struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func parseLinkAddress(_ address: String) throws -> LinkAddress {
    do {
        return try LinkAddress(parsing: address)
    } catch {
        throw Failure("\(error)")
    }
}

do {
    var command = try MuxCatCommand.parseAsRoot()
    try command.run()
} catch let failure as Failure {
    OutputSink.standardError.line("muxcat: \(failure)")
    exit(1)
} catch {
    // Usage errors and --help: ArgumentParser's words, netcat's exit codes (0 or 1).
    let code = MuxCatCommand.exitCode(for: error)
    let message = MuxCatCommand.fullMessage(for: error)
    if code == .success {
        if !message.isEmpty { OutputSink.standardOutput.line(message) }
        exit(0)
    }
    OutputSink.standardError.line(message)
    exit(1)
}
