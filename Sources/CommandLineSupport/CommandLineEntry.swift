import ArgumentParser
import Logging
import Synchronization
import YamuxLink

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What every executable's `main` does, so the four agree on what a user sees:
///
/// - `--help`, `help SUBCOMMAND` (`help` alone too, in a command without subcommands), `--version`:
///   argument-parser's text on stdout, exit 0;
/// - a usage error (unknown option, missing or out-of-range value): **one line** on stderr,
///   `NAME: what is wrong (see NAME --help)`, exit 64 (`EX_USAGE`, argument-parser's and
///   sysexits' convention). argument-parser's own form adds the whole usage line, which for
///   these commands runs to several hundred characters;
/// - a `CommandLineFailure` (a run-time error already worded for the user) or a listener that
///   cannot be opened (`LinkListenError`): `NAME: message`, exit 1;
/// - `ExitCode(n)` thrown by the command (it printed its own line): exit n.
public enum CommandLineEntry {
    /// `arguments` are the command's own (without the program name): the multi-call binary
    /// passes what follows `repeater NAME`.
    public static func main<Command: ParsableCommand>(
        _ command: Command.Type, arguments: [String] = Array(CommandLine.arguments.dropFirst())
    ) async -> Never {
        let name = Command.configuration.commandName ?? "\(Command.self)"
        // argument-parser's completion scripts offer a `help` subcommand to every command, but
        // parse it only for commands that have subcommands: make `repeaterd help` what it offers.
        if Command.configuration.subcommands.isEmpty, arguments == ["help"] {
            print(Command.helpMessage())
            exit(0)
        }
        do {
            var parsed = try Command.parseAsRoot(arguments)
            if var asyncCommand = parsed as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try parsed.run()
            }
            exit(0)
        } catch let failure as CommandLineFailure {
            Self.failure("\(failure)", name: name)
            exit(1)
        } catch let failure as LinkListenError {
            Self.failure("\(failure)", name: name)
            exit(1)
        } catch {
            let code = Command.exitCode(for: error)
            if code == .validationFailure {
                let message = Command.message(for: error)
                Self.standardError("\(name): \(message.isEmpty ? "invalid command line" : message) (see \(name) --help)")
                exit(code.rawValue)
            }
            Command.exit(withError: error)
        }
    }

    /// A run-time failure: `NAME: message`, or a `critical` JSON log line under `--log-format json`.
    private static func failure(_ message: String, name: String) {
        if LogFormat.jsonBootstrapped.load(ordering: .relaxed) {
            Logger(label: name).critical("\(message)")
        } else {
            Self.standardError("\(name): \(message)")
        }
    }

    private static func standardError(_ line: String) {
        StandardError.write(line + "\n")
    }
}
