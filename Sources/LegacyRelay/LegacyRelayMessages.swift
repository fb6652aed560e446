import NIOCore

/// The body of a `POST /runtime_manager` to the old HTTP relay: a decimal session id, a space,
/// then base64 of the TLS bytes the client produced.
///
/// Session id 0 asks for a new session. An empty payload (`"42 "`, or just `"42"`) is a poll: the
/// client has nothing to send and asks for what the runtime manager sent. Ids are 32-bit, as the
/// old server kept them, so old clients that parse them as such keep working.
public struct LegacyRelayRequest: Equatable, Sendable {
    public var sessionID: UInt32
    /// TLS bytes from the client; empty for a poll.
    public var payload: ByteBuffer

    public init(sessionID: UInt32, payload: ByteBuffer) {
        self.sessionID = sessionID
        self.payload = payload
    }

    /// Whether this asks for a new session (id 0).
    public var opensSession: Bool { sessionID == 0 }

    /// Parses a request body. Trailing whitespace (a final newline from `curl -d @file`) is ignored.
    public init(parsing body: ByteBuffer) throws(LegacyRelayBodyError) {
        let fields = try LegacyRelayBody.fields(body, what: "request")
        guard fields.count <= 2 else {
            throw LegacyRelayBodyError(
                "request has \(fields.count) space-separated fields; expected \"<session id> <base64 TLS bytes>\" (one payload per request)"
            )
        }
        sessionID = try LegacyRelayBody.sessionID(fields[0])
        payload = fields.count == 2 ? try LegacyRelayBody.decode(fields[1], field: 2) : ByteBuffer()
    }

    /// Appends the body text.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeString(String(sessionID))
        buffer.writeInteger(UInt8(ascii: " "))
        Base64.encode(payload, into: &buffer)
    }
}

/// The body the old relay answered with: the session id, then zero or more base64 chunks of TLS
/// bytes from the runtime manager, separated by spaces (no chunk at all when nothing arrived).
public struct LegacyRelayResponse: Equatable, Sendable {
    public var sessionID: UInt32
    /// TLS bytes from the runtime manager, in order; each chunk was one read from the runtime manager.
    public var chunks: [ByteBuffer]

    public init(sessionID: UInt32, chunks: [ByteBuffer]) {
        self.sessionID = sessionID
        self.chunks = chunks
    }

    /// Total TLS bytes carried.
    public var payloadBytes: Int { chunks.reduce(0) { $0 + $1.readableBytes } }

    public init(parsing body: ByteBuffer) throws(LegacyRelayBodyError) {
        let fields = try LegacyRelayBody.fields(body, what: "response")
        sessionID = try LegacyRelayBody.sessionID(fields[0])
        var chunks: [ByteBuffer] = []
        chunks.reserveCapacity(fields.count - 1)
        for (index, field) in fields.dropFirst().enumerated() {
            chunks.append(try LegacyRelayBody.decode(field, field: index + 2))
        }
        self.chunks = chunks
    }

    /// How many bytes `encode(into:)` will write, to size the buffer once.
    public var encodedLength: Int {
        String(sessionID).utf8.count + chunks.reduce(0) { $0 + 1 + Base64.encodedLength(of: $1.readableBytes) }
    }

    /// Appends the body text.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: encodedLength)
        buffer.writeString(String(sessionID))
        for chunk in chunks where chunk.readableBytes > 0 {
            buffer.writeInteger(UInt8(ascii: " "))
            Base64.encode(chunk, into: &buffer)
        }
    }
}

/// A relay body that does not have the old protocol's shape; the text says what was expected.
public struct LegacyRelayBodyError: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "malformed relay body: \(reason)" }
}

/// Shared pieces of the two body formats.
enum LegacyRelayBody {
    private static let space = UInt8(ascii: " ")

    /// Splits on single spaces after dropping trailing whitespace; never returns an empty list.
    /// Scans raw bytes: a body is up to hundreds of KiB and this runs on every request.
    static func fields(_ body: ByteBuffer, what: String) throws(LegacyRelayBodyError) -> [ByteBufferView] {
        let scanned: Result<[Range<Int>], LegacyRelayBodyError> = body.withUnsafeReadableBytes { bytes in
            var end = bytes.count
            while end > 0, [space, UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t")].contains(bytes[end - 1]) {
                end -= 1
            }
            guard end > 0 else {
                return .failure(LegacyRelayBodyError("the \(what) body is empty; expected \"<session id> <base64 TLS bytes>\""))
            }
            var ranges: [Range<Int>] = []
            var start = 0
            var index = 0
            while index < end {
                if bytes[index] == space {
                    guard index > start else {
                        return .failure(
                            LegacyRelayBodyError(
                                "two spaces in a row (or a leading space) at offset \(index); fields are separated by one space"))
                    }
                    ranges.append(start..<index)
                    start = index + 1
                }
                index += 1
            }
            ranges.append(start..<end)
            return .success(ranges)
        }
        let view = body.readableBytesView
        switch scanned {
        case .success(let ranges):
            return ranges.map { view[(view.startIndex + $0.lowerBound)..<(view.startIndex + $0.upperBound)] }
        case .failure(let error):
            throw error
        }
    }

    static func sessionID(_ field: ByteBufferView) throws(LegacyRelayBodyError) -> UInt32 {
        guard field.count <= 10, field.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let id = UInt32(String(decoding: field, as: UTF8.self))
        else {
            throw LegacyRelayBodyError(
                "the session id \"\(preview(field))\" is not a decimal number from 0 to \(UInt32.max); the body starts with it")
        }
        return id
    }

    static func decode(_ field: ByteBufferView, field number: Int) throws(LegacyRelayBodyError) -> ByteBuffer {
        do {
            return try Base64.decode(field)
        } catch {
            throw LegacyRelayBodyError("field \(number) is not base64 TLS bytes: \(error)")
        }
    }

    /// At most 24 printable characters of a field, for an error message.
    static func preview(_ field: ByteBufferView) -> String {
        let shown = field.prefix(24).map { (0x20...0x7E).contains($0) ? Character(Unicode.Scalar($0)) : "?" }
        return String(shown) + (field.count > 24 ? "…" : "")
    }
}
