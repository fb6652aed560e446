import NIOCore
import Yamux

#if canImport(Glibc)
import Glibc
#endif

/// One decoded frame, with whatever context the input gave: a capture knows time, link and
/// direction; a raw frame stream knows only the byte offset.
public struct DecodedFrame: Hashable, Sendable {
    public var header: YamuxFrameHeader
    /// Byte offset of the frame's first header byte in the decoded input.
    public var offset: Int
    /// The first payload bytes (at most `FrameLine.previewLength`).
    public var preview: [UInt8]
    /// Microseconds since the Unix epoch, from a capture.
    public var timestamp: UInt64?
    public var link: UInt32?
    public var direction: CaptureDirection?

    public init(
        header: YamuxFrameHeader, offset: Int, preview: [UInt8] = [], timestamp: UInt64? = nil, link: UInt32? = nil,
        direction: CaptureDirection? = nil
    ) {
        self.header = header
        self.offset = offset
        self.preview = preview
        self.timestamp = timestamp
        self.link = link
        self.direction = direction
    }
}

/// The one-line rendering of a frame that `muxcat decode` prints, e.g.
///
///     03:14:39.123456 link 1 in  @30     DATA          flags=SYN     stream=1   length=6  68 65 6c 6c 6f 0a |hello.|
///     @0      WINDOW_UPDATE flags=SYN     stream=1   delta=262144
///
/// The `length` field is named for what it means in each type: `length` (payload bytes) for
/// Data, `delta` for Window Update, `opaque` for Ping, `code` for Go Away.
public enum FrameLine {
    public static let previewLength = 16

    public static func render(_ frame: DecodedFrame) -> String {
        var fields: [String] = []
        if let timestamp = frame.timestamp { fields.append(timeOfDay(timestamp)) }
        if let link = frame.link { fields.append("link \(link)") }
        if let direction = frame.direction { fields.append(pad(direction.description, 3)) }
        fields.append(pad("@\(frame.offset)", 7))
        let header = frame.header
        fields.append(pad(header.type.description, 13))
        fields.append(pad("flags=\(header.flags)", 13))
        fields.append(pad("stream=\(header.streamID)", 10))
        var line = fields.joined(separator: " ") + " " + value(of: header)
        if !frame.preview.isEmpty {
            let more = header.payloadLength > frame.preview.count ? " ..." : ""
            let preview = ByteBuffer(bytes: frame.preview)
            line += "  \(preview.hexDump(format: .plain)) |\(FrameLine.printable(frame.preview))|\(more)"
        }
        return line
    }

    /// The header's 32-bit field, named for its meaning in this frame type.
    public static func value(of header: YamuxFrameHeader) -> String {
        switch header.type {
        case .data: return "length=\(header.length)"
        case .windowUpdate: return "delta=\(header.length)"
        case .ping: return "opaque=\(header.length)"
        case .goAway: return "code=\(header.length) (\(goAwayName(header.length)))"
        }
    }

    public static func goAwayName(_ code: UInt32) -> String {
        YamuxGoAwayCode(rawValue: code)?.description ?? "unknown code"
    }

    /// `HH:MM:SS.uuuuuu`, UTC.
    public static func timeOfDay(_ microseconds: UInt64) -> String {
        let seconds = microseconds / 1_000_000
        let fraction = String(microseconds % 1_000_000)
        let daySeconds = seconds % 86_400
        return "\(two(daySeconds / 3600)):\(two(daySeconds / 60 % 60)):\(two(daySeconds % 60))."
            + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    /// `YYYY-MM-DD HH:MM:SS UTC`, for the summary's first and last frame.
    public static func dateTime(_ microseconds: UInt64) -> String {
        var seconds = time_t(microseconds / 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let date = "\(parts.tm_year + 1900)-\(two(UInt64(parts.tm_mon + 1)))-\(two(UInt64(parts.tm_mday)))"
        return "\(date) \(timeOfDay(microseconds).prefix(8)) UTC"
    }

    /// Printable ASCII as itself, anything else as `.` (the right-hand column of `hexdump -C`).
    static func printable(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.map { (0x20...0x7E).contains($0) ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
    }

    private static func two(_ value: UInt64) -> String { value < 10 ? "0\(value)" : "\(value)" }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }
}
