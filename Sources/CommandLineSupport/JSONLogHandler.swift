import FoundationEssentials
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A swift-log handler that writes each log line as one JSON object (`--log-format json`):
///
/// ```text
/// {"backend":"127.0.0.1:6000","level":"info","link":"5f3a09c2","link_slot":0,"logger":"repeaterd","msg":"link up","ts":"2026-12-03T12:20:36.123456Z"}
/// ```
///
/// - `ts`: RFC 3339, UTC, microseconds; `level`: swift-log's level name; `logger`: the label
///   (the program); `msg`: the message; `error`: the error the line was logged with, if any;
/// - then every metadata key of the line (`session`, `link`, `stream`, `client`, …) at the top
///   level, so that `jq 'select(.session == 7)'` finds a session. Integers logged as
///   `.stringConvertible(n)` (ids, counts) are JSON numbers, other values strings; nested
///   metadata becomes objects and arrays. A metadata key that would shadow one of the five fields
///   above is written with a `metadata.` prefix instead of being lost.
///
/// The object is built by Foundation's `JSONEncoder` (keys sorted, so lines compare by eye and by
/// `diff`), which escapes quotes, backslashes, newlines and other control characters and writes
/// UTF-8: a message can hold anything a client sent without breaking the line apart.
public struct JSONLogHandler: LogHandler {
    /// Where the lines go.
    public enum Output: Sendable {
        /// The process's stderr, one `write(2)` per line under a lock, so lines from several
        /// event loops never interleave.
        case standardError
        /// Each line (without its newline) to a closure: for tests.
        case lines(@Sendable (String) -> Void)
    }

    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let output: Output

    public init(label: String, output: Output, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.output = output
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The field names the handler writes itself.
    static let ownFields: Set<String> = ["ts", "level", "logger", "msg", "error"]

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        let record = JSONLogRecord(
            timestamp: Self.timestamp(), level: event.level, logger: label, message: event.message.description,
            error: event.error.map { "\($0)" }, metadata: merged)
        let line = Self.encode(record)
        switch output {
        case .standardError:
            StandardError.write(line + "\n")
        case .lines(let sink):
            sink(line)
        }
    }

    /// The record as one line of JSON (JSONEncoder never writes a newline without `.prettyPrinted`).
    static func encode(_ record: JSONLogRecord) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(record), as: UTF8.self)
        } catch {
            // Only non-finite numbers fail to encode, and no field here is a float; kept so a
            // line is never lost silently.
            var fallback = record
            fallback.metadata = [:]
            fallback.message = "(a log line could not be written as JSON: \(error)) \(record.message)"
            return (try? encoder.encode(fallback)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
    }

    /// Now, as RFC 3339 in UTC with microseconds.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return rfc3339(secondsSinceEpoch: Int(now.tv_sec), microseconds: Int(now.tv_nsec / 1000))
    }

    /// `2026-12-03T12:20:36.123456Z`: the calendar from `gmtime_r`, the digits padded by hand
    /// (no formatter to set up per line).
    public static func rfc3339(secondsSinceEpoch: Int, microseconds: Int) -> String {
        var seconds = time_t(secondsSinceEpoch)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(padded(Int(parts.tm_year) + 1900, 4))-\(padded(Int(parts.tm_mon) + 1, 2))-\(padded(Int(parts.tm_mday), 2))"
            + "T\(padded(Int(parts.tm_hour), 2)):\(padded(Int(parts.tm_min), 2)):\(padded(Int(parts.tm_sec), 2))"
            + ".\(padded(microseconds, 6))Z"
    }
}

/// One log line's fields, encoded as a flat JSON object (`JSONLogHandler`).
struct JSONLogRecord: Encodable {
    var timestamp: String
    var level: Logger.Level
    var logger: String
    var message: String
    var error: String?
    var metadata: Logger.Metadata

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: Encoder) throws {
        var object = encoder.container(keyedBy: Key.self)
        try object.encode(timestamp, forKey: Key("ts"))
        try object.encode(level.rawValue, forKey: Key("level"))
        try object.encode(logger, forKey: Key("logger"))
        try object.encode(message, forKey: Key("msg"))
        if let error { try object.encode(error, forKey: Key("error")) }
        for (key, value) in metadata {
            let name = JSONLogHandler.ownFields.contains(key) ? "metadata.\(key)" : key
            try object.encode(JSONMetadataValue(value), forKey: Key(name))
        }
    }
}

/// A metadata value as JSON: a string, a number (an integer given as `.stringConvertible`), or an
/// object or array of them.
private struct JSONMetadataValue: Encodable {
    let value: Logger.Metadata.Value
    init(_ value: Logger.Metadata.Value) { self.value = value }

    func encode(to encoder: Encoder) throws {
        switch value {
        case .string(let text):
            var single = encoder.singleValueContainer()
            try single.encode(text)
        case .stringConvertible(let convertible):
            // A count or an id logged as `.stringConvertible(n)` is a JSON number; the human
            // format prints the same digits.
            var single = encoder.singleValueContainer()
            if let number = convertible as? any BinaryInteger {
                if let signed = Int64(exactly: number) {
                    try single.encode(signed)
                } else {
                    try single.encode(UInt64(truncatingIfNeeded: number))
                }
            } else if let flag = convertible as? Bool {
                try single.encode(flag)
            } else {
                try single.encode(convertible.description)
            }
        case .array(let values):
            var list = encoder.unkeyedContainer()
            for element in values { try list.encode(JSONMetadataValue(element)) }
        case .dictionary(let dictionary):
            try dictionary.mapValues(JSONMetadataValue.init).encode(to: encoder)
        }
    }
}

/// The process's stderr, written a whole line at a time.
enum StandardError {
    private static let lock = Mutex(())

    /// Writes `text` with as many `write(2)` calls as it takes (one, unless it is larger than the
    /// pipe's buffer), under a lock so that concurrent writers' lines do not interleave.
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            lock.withLock { _ in
                var offset = 0
                while offset < bytes.count {
                    let written = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 && errno == EINTR { continue }
                    guard written > 0 else { return }
                    offset += written
                }
            }
        }
    }
}
