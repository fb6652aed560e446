import ArgumentParser
import Logging
import NIOCore
import YamuxLink

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Small pieces every executable of the project shares, and nothing else links.
public enum CommandLineSupport {
    /// Raises the open-file limit to its hard maximum: every client session costs descriptors.
    /// Returns the limit now in force (-1 if it cannot be read).
    @discardableResult
    public static func raiseFileDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return -1 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return Int(raised.rlim_cur) }
        }
        return Int(limit.rlim_cur)
    }

    /// Seconds from a command line (fractions allowed) as a `TimeAmount`: the one way every
    /// executable turns `--…-timeout`/`--…-interval` values into NIO time.
    public static func seconds(_ value: Double) -> TimeAmount {
        .nanoseconds(Int64((value * 1_000_000_000).rounded()))
    }

    /// An interval option where 0 means "off".
    public static func secondsOrOff(_ value: Double) -> TimeAmount? {
        value > 0 ? seconds(value) : nil
    }
}

/// A failure already worded for the user: the executable prints `NAME: <message>` and exits 1,
/// without a stack of wrappers.
public struct CommandLineFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `--admin HOST:PORT`, as repeaterd and runtime-manager both take it.
public struct AdminOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Serve /healthz, /readyz and /metrics over HTTP at HOST:PORT (or unix:PATH). Off by default; use loopback or a private interface.",
            valueName: "HOST:PORT"),
        transform: LinkAddress.parseArgument)
    public var admin: LinkAddress?

    public init() {}
}

/// `--log-level trace|debug|info|notice|warning|error|critical`: parsed, checked and listed in
/// `--help` by swift-argument-parser. Retroactive (neither type is ours), which is safe while swift-log
/// does not conform it itself; only executables' modules see it.
// swift-format-ignore: AvoidRetroactiveConformances
extension Logger.Level: @retroactive ExpressibleByArgument {}

extension LinkAddress: ExpressibleByArgument {
    /// `HOST:PORT`, `[IPv6]:PORT` or `unix:PATH`; a bad value is refused with `LinkAddressError`'s
    /// reason by the options that use `LinkAddress.parseArgument`.
    public init?(argument: String) {
        guard let address = try? LinkAddress(parsing: argument) else { return nil }
        self = address
    }

    /// For `@Option(transform:)`: parses, and says why a value is refused.
    @Sendable public static func parseArgument(_ text: String) throws -> LinkAddress {
        do {
            return try LinkAddress(parsing: text)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// For options that take TCP only (`runtime-client --connect`, `runtime-manager --direct`).
    @Sendable public static func parseTCPArgument(_ text: String) throws -> LinkAddress {
        let address = try parseArgument(text)
        guard case .tcp = address else {
            throw ValidationError("invalid address '\(text)': expected HOST:PORT (TCP), e.g. 127.0.0.1:3011")
        }
        return address
    }

    /// Host and port of a TCP address (a Unix-socket address has none).
    public var hostAndPort: (host: String, port: Int)? {
        guard case .tcp(let host, let port) = self else { return nil }
        return (host, port)
    }
}

/// Range checks for numeric options, each refusing a value with one line that names the option,
/// its valid range and what was given. Called from each command's `validate()`; the command line
/// prints the line and exits 64 (`EX_USAGE`), as for any other usage error.
///
/// Numeric options are declared with `parsing: .unconditional`, so `--max-sessions -1` reaches
/// these checks instead of argument-parser's "Missing value" (it reads `-1` as an option name).
public enum OptionRange {
    /// `value ≥ minimum`.
    public static func check<Value: Comparable & CustomStringConvertible>(
        _ option: String, _ value: Value, atLeast minimum: Value, _ why: String = ""
    ) throws {
        guard value >= minimum else {
            throw ValidationError("\(option) must be at least \(minimum)\(why), got \(value)")
        }
    }

    /// Seconds above 0, finite.
    public static func checkSecondsAboveZero(_ option: String, _ value: Double) throws {
        guard value.isFinite, value > 0 else {
            throw ValidationError("\(option) must be a number of seconds above 0, got \(value.cleanDescription)")
        }
    }

    /// Seconds from 0 on, finite; `zeroMeans` says what 0 does, where it does something.
    public static func checkSecondsFromZero(_ option: String, _ value: Double, zeroMeans: String? = nil) throws {
        guard value.isFinite, value >= 0 else {
            let zero = zeroMeans.map { " (0 \($0))" } ?? ""
            throw ValidationError("\(option) must be a number of seconds from 0 on\(zero), got \(value.cleanDescription)")
        }
    }
}

extension Double {
    /// `30` rather than `30.0`, as the user typed it.
    fileprivate var cleanDescription: String {
        self.isFinite && self == self.rounded() && abs(self) < 1e15 ? String(Int64(self)) : "\(self)"
    }
}
