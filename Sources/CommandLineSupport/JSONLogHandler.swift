import JSONText
import Logging
import Synchronization
import SystemPackage

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
/// The object is written by `JSONLine` (keys sorted, so lines compare by eye and by `diff`), which
/// escapes quotes, backslashes and control characters and writes UTF-8: a message can hold
/// anything a client sent without breaking the line apart. Not `JSONEncoder`: no `Codable`
/// containers built per line, and no Foundation in this module for a log line.
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
        let line = Self.line(
            timestamp: Self.timestamp(), level: event.level, logger: label, message: event.message.description,
            error: event.error.map { "\($0)" }, metadata: merged)
        switch output {
        case .standardError:
            StandardError.write(line + "\n")
        case .lines(let sink):
            sink(line)
        }
    }

    /// One line's JSON object: the handler's own fields and the metadata at the top level, keys
    /// sorted; a metadata key that is one of the own fields gets a `metadata.` prefix.
    static func line(
        timestamp: String, level: Logger.Level, logger: String, message: String, error: String?, metadata: Logger.Metadata
    ) -> String {
        var fields: [(key: String, value: Logger.Metadata.Value)] = [
            ("ts", .string(timestamp)), ("level", .string(level.rawValue)), ("logger", .string(logger)),
            ("msg", .string(message)),
        ]
        if let error { fields.append(("error", .string(error))) }
        for (key, value) in metadata {
            fields.append((ownFields.contains(key) ? "metadata.\(key)" : key, value))
        }
        var line = JSONLine()
        line.writeObject(fields)
        return line.text
    }

    /// Now, as RFC 3339 in UTC with microseconds.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return JSONText.rfc3339(secondsSinceEpoch: Int(now.tv_sec), microseconds: Int(now.tv_nsec / 1000))
    }
}

/// A log line's JSON text: objects with sorted keys, strings escaped by `JSONText`, integers given
/// as `.stringConvertible` as numbers, `Bool` as `true`/`false`. A value without I/O, tested alone.
struct JSONLine {
    private(set) var text = ""

    init() {
        text.reserveCapacity(512)
    }

    mutating func writeObject(_ fields: [(key: String, value: Logger.Metadata.Value)]) {
        text.append("{")
        for (index, field) in fields.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }).enumerated() {
            if index > 0 { text.append(",") }
            writeString(field.key)
            text.append(":")
            writeValue(field.value)
        }
        text.append("}")
    }

    mutating func writeValue(_ value: Logger.Metadata.Value) {
        switch value {
        case .string(let string):
            writeString(string)
        case .stringConvertible(let convertible):
            // A count or an id logged as `.stringConvertible(n)` is a JSON number; the human
            // format prints the same digits.
            if let number = convertible as? any BinaryInteger {
                text.append(String(number))
            } else if let flag = convertible as? Bool {
                text.append(flag ? "true" : "false")
            } else {
                writeString(convertible.description)
            }
        case .array(let values):
            text.append("[")
            for (index, element) in values.enumerated() {
                if index > 0 { text.append(",") }
                writeValue(element)
            }
            text.append("]")
        case .dictionary(let dictionary):
            writeObject(dictionary.map { (key: $0.key, value: $0.value) })
        }
    }

    mutating func writeString(_ string: String) {
        JSONText.appendQuoted(string, to: &text)
    }
}

/// The process's stderr, written a whole line at a time (and, as `StandardError.Stream`, a target
/// for `print(…, to:)`): Foundation's `FileHandle` is not needed for it.
public enum StandardError {
    /// `print(…, to: &stream)` on stderr, each `write` whole.
    public struct Stream: TextOutputStream {
        public init() {}
        public mutating func write(_ string: String) { StandardError.write(string) }
    }

    private static let lock = Mutex(())

    /// Writes `text` with as many `write(2)` calls as it takes (one, unless it is larger than the
    /// pipe's buffer), under a lock so that concurrent writers' lines do not interleave. A stderr
    /// that cannot be written (closed) loses the text: there is nowhere left to say so.
    public static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            lock.withLock { _ in _ = try? FileDescriptor.standardError.writeAll(UnsafeRawBufferPointer(bytes)) }
        }
    }
}
