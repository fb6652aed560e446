import ArgumentParser
import CommandLineSupport
import RuntimeClient
import TransportProtocol
import YamuxLink

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The raw-socket client: one command per run, one clear line on failure.
struct RuntimeClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runtime-client",
        abstract: "Provisions and fetches files in a runtime manager over mutual TLS (through repeaterd or directly).",
        discussion: exitStatusText,
        version: RepeaterVersion.current,
        subcommands: [Put.self, Append.self, Get.self, Hash.self, PolicyHash.self, Shutdown.self]
    )

    /// Shared by every command; accepted before or after the command name.
    @OptionGroup var options: ConnectionOptions
}

/// Flags every command shares.
struct ConnectionOptions: ParsableArguments {
    @Option(
        help: "Where to connect: the repeater, or runtime-manager --direct (HOST:PORT). (default: 127.0.0.1:3011)",
        transform: LinkAddress.parseTCPArgument)
    var connect: LinkAddress = .tcp(host: RuntimeClient.defaultHost, port: RuntimeClient.defaultPort)

    // Required by every command, but optional to the parser, so that `runtime-client put --help`
    // and `runtime-client help put` work without them (checked in `withClient`).
    @Option(help: ArgumentHelp("This client's certificate (PEM). Required.", valueName: "FILE"))
    var cert: String?

    @Option(help: ArgumentHelp("This client's private key (PEM). Required.", valueName: "FILE"))
    var key: String?

    @Option(help: ArgumentHelp("The CA that issued the runtime manager's certificate (PEM). Required.", valueName: "FILE"))
    var ca: String?

    @Option(
        name: .customLong("server-name"),
        help: ArgumentHelp(
            "Also require the runtime manager's certificate to be for NAME (a host name or IP address; its subject alternative names only).",
            valueName: "NAME"))
    var serverName: String?

    @Flag(
        name: .customLong("legacy-http"),
        help: "Run TLS over the old HTTP relay (repeaterd --legacy-http) at --connect: one base64 POST per TLS record, in lock-step.")
    var legacyHTTP = false

    @Flag(help: "No progress bar.")
    var quiet = false

    @Option(
        name: .customLong("max-message-bytes"), parsing: .unconditional,
        help: "Most bytes of one response held in memory, the file of a get aside (a get writes it out as it arrives, whatever its size).")
    var maxMessageBytes = LengthPrefixFrameDecoder.defaultMaximumMessageBytes

    @Option(
        parsing: .unconditional,
        help: "Chunks of a put (8 MiB each) sent before the oldest is answered (at least 1; 1 is lock-step).")
    var chunksInFlight = RuntimeClientConfiguration.defaultChunksInFlight

    @Option(
        parsing: .unconditional,
        help:
            "Seconds nothing may move while the client waits (to connect, for the TLS handshake, for an answer) before it gives up with exit status 75 (0: never). A transfer that keeps moving never times out."
    )
    var timeout: Double = 30

    func validate() throws {
        try OptionRange.check("--max-message-bytes", self.maxMessageBytes, atLeast: 1)
        try OptionRange.check("--chunks-in-flight", self.chunksInFlight, atLeast: 1)
        try OptionRange.checkSecondsFromZero("--timeout", self.timeout, zeroMeans: "never")
    }

    func hostAndPort() throws -> (host: String, port: Int) {
        guard let (host, port) = self.connect.hostAndPort, port > 0 else {
            throw ValidationError("--connect expects HOST:PORT with a port above 0 (e.g. 127.0.0.1:3011), got \"\(self.connect)\"")
        }
        return (host, port)
    }

    /// Connects, runs `body`, closes; turns any failure into one line and exit code 1.
    func withClient(
        downloadLabel: String? = nil,
        _ body: (RuntimeClient) async throws -> Void
    ) async throws {
        let (host, port) = try self.hostAndPort()
        guard let cert = self.cert, let key = self.key, let ca = self.ca else {
            let missing = [("--cert", self.cert), ("--key", self.key), ("--ca", self.ca)].filter { $0.1 == nil }.map(\.0)
            throw ValidationError(
                "missing \(missing.joined(separator: ", ")): every command needs this client's certificate, key and the CA (tools/gen-certs.sh makes them)"
            )
        }
        var configuration = RuntimeClientConfiguration(
            certificatePath: cert, keyPath: key, caPath: ca, serverName: self.serverName,
            maximumMessageBytes: self.maxMessageBytes
        )
        configuration.transport = self.legacyHTTP ? .legacyHTTP : .tcp
        configuration.chunksInFlight = self.chunksInFlight
        configuration.timeoutSeconds = self.timeout
        let bar = downloadLabel.map { ProgressBar(label: $0, quiet: self.quiet) }
        do {
            let client = try await RuntimeClient.connect(
                host: host, port: port, configuration: configuration,
                downloadProgress: bar.map { bar in { @Sendable received, expected in bar.update(done: received, total: expected) } }
            )
            do {
                try await body(client)
                bar?.finish()
                await client.close()
            } catch {
                bar?.finish()
                await client.close()
                throw error
            }
        } catch {
            throw failed(error)
        }
    }
}

/// Prints the one line a failure gets and returns the exit code of its class (`exitStatusText`).
func failed(_ error: any Error) -> ExitCode {
    var standardError = StandardError.Stream()
    // Escaped: a file name with a newline or a terminal escape in it (the runtime manager's
    // message repeats the name) must not break the line or reach the terminal as a command.
    print("runtime-client: \(TerminalText.escaped("\(error)"))", to: &standardError)
    return ExitCode((error as? RuntimeClientError)?.exitStatus ?? 1)
}

/// The exit statuses, for --help and the manual page (tools/manpage.py reads this list).
let exitStatusText = """
    Exit status:
      0   success
      1   the runtime manager refused the request (no such file, store full, ...)
      64  usage error (bad option or value; a remote name empty or not UTF-8)
      66  a local file cannot be read (missing, unreadable, changed while read)
      69  runtime manager or repeater unreachable, or its link down: retry later
      73  a local file cannot be written
      75  timed out (--timeout): nothing moved while waiting; retry later
      76  protocol error: the peer does not speak the runtime manager's protocol
      77  refused by the runtime manager's policy
      78  TLS or identity failure (--cert, --key, --ca, --server-name)
      130 interrupted by SIGINT, 143 by SIGTERM (an unfinished put stores
          nothing; a get leaves no partial file)
    """

/// Every subcommand's help says where the connection options are, since they belong to the root.
let connectionOptionsNote = """
    Every command also needs --cert FILE --key FILE --ca FILE, and takes --connect HOST:PORT, \
    --server-name NAME, --legacy-http, --quiet, --max-message-bytes N and --chunks-in-flight N, before \
    or after the command name: see runtime-client --help.
    """

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upload LOCAL as REMOTE, replacing it (large files go as a write and appends).",
        discussion: connectionOptionsNote
    )
    @ParentCommand var parent: RuntimeClientCommand
    var options: ConnectionOptions { self.parent.options }
    @Argument(help: "Local file to upload; - for stdin.") var local: String
    @Argument(help: "Name of the file in the runtime manager (UTF-8, not empty).") var remote: String

    func validate() throws { try checkRemoteName(self.remote) }

    func run() async throws {
        let source = try openUploadSource(self.local)
        InterruptHandling.note = "the put was not finished, so \"\(TerminalText.escaped(self.remote))\" is unchanged"
        let bar = ProgressBar(label: "put \(self.remote)", quiet: self.options.quiet)
        try await self.options.withClient { client in
            try await client.put(from: source, remoteName: self.remote) { bar.update(done: $0, total: $1) }
            bar.finish()
        }
    }
}

struct Append: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append LOCAL to the existing REMOTE.", discussion: connectionOptionsNote)
    @ParentCommand var parent: RuntimeClientCommand
    var options: ConnectionOptions { self.parent.options }
    @Argument(help: "Local file to append; - for stdin.") var local: String
    @Argument(help: "Name of the file in the runtime manager (UTF-8, not empty).") var remote: String

    func validate() throws { try checkRemoteName(self.remote) }

    func run() async throws {
        let source = try openUploadSource(self.local)
        let bar = ProgressBar(label: "append \(self.remote)", quiet: self.options.quiet)
        try await self.options.withClient { client in
            try await client.put(from: source, remoteName: self.remote, append: true) {
                bar.update(done: $0, total: $1)
            }
            bar.finish()
        }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download REMOTE to LOCAL, or to stdout with - or nothing.", discussion: connectionOptionsNote)
    @ParentCommand var parent: RuntimeClientCommand
    var options: ConnectionOptions { self.parent.options }
    @Argument(help: "Name of the file in the runtime manager.") var remote: String
    @Argument(help: "Where to write it; - or nothing for stdout.") var local: String?

    func validate() throws { try checkRemoteName(self.remote) }

    func run() async throws {
        try await self.options.withClient(downloadLabel: "get \(self.remote)") { client in
            // The file goes to disk (or stdout) as it arrives: memory does not grow with it.
            if let local = self.local, local != "-" {
                let download = try FileDownload(path: local)
                do {
                    try await client.read(self.remote, into: download)
                    try download.commit()
                } catch {
                    download.discard()
                    throw error
                }
            } else {
                try await client.read(self.remote, into: StandardOutputDownload())
            }
        }
    }
}

struct Hash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the SHA-256 of REMOTE as computed by the runtime manager.", discussion: connectionOptionsNote)
    @ParentCommand var parent: RuntimeClientCommand
    var options: ConnectionOptions { self.parent.options }
    @Argument(help: "Name of the file in the runtime manager.") var remote: String

    func validate() throws { try checkRemoteName(self.remote) }

    func run() async throws {
        try await self.options.withClient { client in
            // As sha256sum prints it, so `runtime-client hash X | sha256sum -c` checks a local X.
            print("\(hex(try await client.hash(self.remote)))  \(TerminalText.escaped(self.remote))")
        }
    }
}

struct PolicyHash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy-hash", abstract: "Print the SHA-256 of the runtime manager's policy file.",
        discussion: connectionOptionsNote
    )
    @ParentCommand var parent: RuntimeClientCommand
    var options: ConnectionOptions { self.parent.options }

    func run() async throws {
        try await self.options.withClient { client in
            print(hex(try await client.policyHash()))
        }
    }
}

struct Shutdown: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask the runtime manager to shut down gracefully.", discussion: connectionOptionsNote)
    @ParentCommand var parent: RuntimeClientCommand
    var options: ConnectionOptions { self.parent.options }

    func run() async throws {
        try await self.options.withClient { client in
            try await client.requestShutdown()
        }
    }
}

/// `0a`: two lower-case hex digits (what `%02x` printed, without Foundation's `String(format:)`).
func hexByte(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
}

func hex(_ data: Data) -> String {
    data.map(hexByte).joined()
}

/// Opens what a put or an append reads, once, before connecting (so no session is opened for
/// nothing); a failure is one line and exit 1.
func openUploadSource(_ path: String) throws -> UploadSource {
    do {
        return try UploadSource(path: path)
    } catch {
        throw failed(error)
    }
}

/// A remote name must be a protobuf string, so UTF-8: argument-parser hands over arguments with
/// invalid bytes replaced by U+FFFD, and two different names would become one (issue 42). It
/// must not be empty either: in a script that is an unset variable. A usage error, exit 64.
func checkRemoteName(_ name: String) throws {
    guard !name.isEmpty else {
        throw ValidationError("the remote file name is empty (an unset variable?)")
    }
    guard name.contains("\u{FFFD}") else { return }
    for index in 1..<Int(CommandLine.argc) {
        guard let raw = CommandLine.unsafeArgv[index] else { continue }
        let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self), count: strlen(raw))
        if String(validating: bytes, as: UTF8.self) == nil && String(decoding: bytes, as: UTF8.self) == name {
            let shown = bytes.map { $0 < 0x80 && $0 >= 0x20 ? String(UnicodeScalar($0)) : "\\x" + hexByte($0) }.joined()
            throw ValidationError("the remote file name \"\(shown)\" is not valid UTF-8; file names in the runtime manager are UTF-8 text")
        }
    }
}
