#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A JSON value, for documents the daemons write by hand (no Foundation): `/status.json`.
/// Objects keep their members in the order given, so a document reads in the order it is built.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    /// Written as a number when finite, `null` otherwise (JSON has no NaN or infinity).
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(members: [Member])

    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: JSONValue
        public init(_ key: String, _ value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// An object from `(key, value)` pairs, in their order.
    public static func object(_ pairs: KeyValuePairs<String, JSONValue>) -> JSONValue {
        .object(members: pairs.map { Member($0.key, $0.value) })
    }

    /// `value`, or `null` when it is nil.
    public static func optional<T>(_ value: T?, _ make: (T) -> JSONValue) -> JSONValue {
        value.map(make) ?? .null
    }

    /// The UTF-8 text of this value, on one line.
    public var text: String {
        var writer = JSONText()
        writer.write(self)
        return writer.text
    }
}

/// JSON text written by hand: strings escaped as RFC 8259 requires (quote, backslash, control
/// characters; everything else as UTF-8, `/` unescaped). A value without I/O, tested alone;
/// `JSONLine` (the JSON log format) writes its strings through it too.
public struct JSONText {
    public private(set) var text = ""

    public init(reservingCapacity capacity: Int = 512) {
        text.reserveCapacity(capacity)
    }

    /// Appends text that is JSON already (punctuation, a number).
    public mutating func appendRaw(_ raw: String) {
        text.append(raw)
    }

    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: text.append("null")
        case .bool(let flag): text.append(flag ? "true" : "false")
        case .int(let number): text.append(String(number))
        case .double(let number): text.append(number.isFinite ? String(number) : "null")
        case .string(let string): writeString(string)
        case .array(let elements):
            text.append("[")
            for (index, element) in elements.enumerated() {
                if index > 0 { text.append(",") }
                write(element)
            }
            text.append("]")
        case .object(let members):
            text.append("{")
            for (index, member) in members.enumerated() {
                if index > 0 { text.append(",") }
                writeString(member.key)
                text.append(":")
                write(member.value)
            }
            text.append("}")
        }
    }

    private static let hexDigits = Array("0123456789abcdef".unicodeScalars)

    public mutating func writeString(_ string: String) {
        Self.appendQuoted(string, to: &text)
    }

    /// Appends `string` to `text` as a JSON string, quoted and escaped.
    public static func appendQuoted(_ string: String, to text: inout String) {
        text.append("\"")
        // Runs of characters that need no escape are appended whole.
        let scalars = string.unicodeScalars
        var pending = scalars.startIndex
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let scalar = scalars[index]
            let escape: String?
            switch scalar {
            case "\"": escape = "\\\""
            case "\\": escape = "\\\\"
            case "\n": escape = "\\n"
            case "\r": escape = "\\r"
            case "\t": escape = "\\t"
            case "\u{08}": escape = "\\b"
            case "\u{0C}": escape = "\\f"
            default:
                if scalar.value < 0x20 {
                    escape = "\\u00" + String(hexDigits[Int(scalar.value >> 4)]) + String(hexDigits[Int(scalar.value & 0xF)])
                } else {
                    escape = nil
                }
            }
            if let escape {
                text.unicodeScalars.append(contentsOf: scalars[pending..<index])
                text.append(escape)
                pending = scalars.index(after: index)
            }
            index = scalars.index(after: index)
        }
        text.unicodeScalars.append(contentsOf: scalars[pending..<scalars.endIndex])
        text.append("\"")
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
