import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small pieces every executable of the project shares.
public enum CommandLineSupport {
    /// Sets up swift-log to write to stderr at `level` (trace, debug, info, notice, warning, error, critical).
    public static func bootstrapLogging(level: String) throws -> Logger.Level {
        guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
            throw LinkAddressError(
                text: level, reason: "unknown log level; use trace, debug, info, notice, warning, error or critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
        return parsed
    }

    /// Raises the open-file limit to its hard maximum: every client session costs two descriptors
    /// on the repeater. Returns the limit now in force.
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

    /// Seconds (fractions allowed) as a `TimeAmount`.
    public static func seconds(_ value: Double) -> TimeAmount {
        .nanoseconds(Int64(value * 1_000_000_000))
    }
}
