import ArgumentParser
import Logging
import Synchronization

/// `--log-format human|json`: how a daemon writes its log lines on stderr.
public enum LogFormat: String, CaseIterable, Sendable, ExpressibleByArgument {
    /// swift-log's `StreamLogHandler` line: `2026-12-03T12:20:36+0000 info repeaterd: backend=127.0.0.1:6000 link=5f3a09c2 link_slot=0 [YamuxLink] link up`.
    case human
    /// One JSON object per line (`JSONLogHandler`), for a log pipeline (journald, Vector, Loki, jq).
    case json

    /// `--log-format`'s help, the same for every daemon.
    public static let help: ArgumentHelp =
        "How log lines look on stderr: human, or json (one object per line: ts, level, logger, msg and the line's metadata)."
}

extension CommandLineSupport {
    /// Sets up swift-log to write to stderr at `level`, in `format`.
    public static func bootstrapLogging(level: Logger.Level, format: LogFormat = .human) {
        LogFormat.jsonBootstrapped.store(format == .json, ordering: .relaxed)
        LoggingSystem.bootstrap { label in
            switch format {
            case .human:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                var handler = JSONLogHandler(label: label, output: .standardError)
                handler.logLevel = level
                return handler
            }
        }
    }
}

extension LogFormat {
    /// Whether logging was set up as JSON: `CommandLineEntry` then writes a run-time failure as a
    /// JSON line too, so that every line of a daemon's stderr parses.
    static let jsonBootstrapped = Atomic<Bool>(false)
}
