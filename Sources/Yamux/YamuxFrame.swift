import NIOCore

/// A yamux stream id. Stream 0 is the session itself; the dialing side (client) opens odd ids,
/// the accepting side (server) even ids.
public struct YamuxStreamID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// The id that addresses the whole session (pings and Go Away).
    public static let session = YamuxStreamID(0)

    /// Whether the dialing side (the yamux client) opened this stream.
    public var isClientInitiated: Bool { rawValue & 1 == 1 }

    public static func < (lhs: YamuxStreamID, rhs: YamuxStreamID) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { String(rawValue) }
}

/// The four yamux frame types. Only `data` carries payload bytes after the header.
public enum YamuxFrameType: UInt8, Sendable, CustomStringConvertible {
    case data = 0
    case windowUpdate = 1
    case ping = 2
    case goAway = 3

    public var description: String {
        switch self {
        case .data: return "DATA"
        case .windowUpdate: return "WINDOW_UPDATE"
        case .ping: return "PING"
        case .goAway: return "GO_AWAY"
        }
    }
}

/// The flags field of a frame header: SYN opens a stream (or asks for a ping reply), ACK accepts
/// (or answers a ping), FIN half-closes, RST resets.
public struct YamuxFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let syn = YamuxFlags(rawValue: 0x1)
    public static let ack = YamuxFlags(rawValue: 0x2)
    public static let fin = YamuxFlags(rawValue: 0x4)
    public static let rst = YamuxFlags(rawValue: 0x8)

    public var description: String {
        var names: [String] = []
        if contains(.syn) { names.append("SYN") }
        if contains(.ack) { names.append("ACK") }
        if contains(.fin) { names.append("FIN") }
        if contains(.rst) { names.append("RST") }
        let unknown = rawValue & ~0xF
        if unknown != 0 { names.append("0x" + String(unknown, radix: 16)) }
        return names.isEmpty ? "-" : names.joined(separator: "|")
    }
}

/// The error codes a Go Away frame carries in its length field.
public enum YamuxGoAwayCode: UInt32, Sendable, CustomStringConvertible {
    case normal = 0
    case protocolError = 1
    case internalError = 2

    public var description: String {
        switch self {
        case .normal: return "normal"
        case .protocolError: return "protocol error"
        case .internalError: return "internal error"
        }
    }
}

/// The 12-byte header every yamux frame starts with (all fields big-endian).
///
/// `length` means different things per type: payload bytes for Data, a window delta for
/// Window Update, an opaque value for Ping, an error code for Go Away.
public struct YamuxFrameHeader: Hashable, Sendable, CustomStringConvertible {
    public static let size = 12
    public static let protocolVersion: UInt8 = 0

    public var type: YamuxFrameType
    public var flags: YamuxFlags
    public var streamID: YamuxStreamID
    public var length: UInt32

    public init(type: YamuxFrameType, flags: YamuxFlags = [], streamID: YamuxStreamID, length: UInt32) {
        self.type = type
        self.flags = flags
        self.streamID = streamID
        self.length = length
    }

    public static func data(_ streamID: YamuxStreamID, flags: YamuxFlags = [], length: UInt32) -> Self {
        .init(type: .data, flags: flags, streamID: streamID, length: length)
    }

    public static func windowUpdate(_ streamID: YamuxStreamID, flags: YamuxFlags = [], delta: UInt32) -> Self {
        .init(type: .windowUpdate, flags: flags, streamID: streamID, length: delta)
    }

    public static func ping(flags: YamuxFlags, opaque: UInt32) -> Self {
        .init(type: .ping, flags: flags, streamID: .session, length: opaque)
    }

    public static func goAway(_ code: YamuxGoAwayCode) -> Self {
        .init(type: .goAway, streamID: .session, length: code.rawValue)
    }

    /// Number of payload bytes that follow this header on the wire.
    public var payloadLength: Int { type == .data ? Int(length) : 0 }

    public var description: String {
        "\(type) flags=\(flags) stream=\(streamID) length=\(length)"
    }
}

extension ByteBuffer {
    /// Appends the 12 header bytes.
    @inlinable
    @discardableResult
    public mutating func writeYamuxHeader(_ header: YamuxFrameHeader) -> Int {
        // One 64-bit and one 32-bit store instead of five small writes.
        let first: UInt64 =
            UInt64(YamuxFrameHeader.protocolVersion) << 56 | UInt64(header.type.rawValue) << 48
            | UInt64(header.flags.rawValue) << 32 | UInt64(header.streamID.rawValue)
        return self.writeInteger(first, endianness: .big) + self.writeInteger(header.length, endianness: .big)
    }
}

/// Encodes and decodes single headers; validation against the protocol lives here so every
/// reader (the multiplexer, `muxcat decode`, the fuzzers) rejects the same things the same way.
public enum YamuxHeaderCodec {
    /// Decodes a header from exactly 12 readable bytes at the reader index (consumed on success).
    ///
    /// - Throws: `YamuxError` for a bad version or an unknown type, naming the byte offset given.
    public static func decode(from buffer: inout ByteBuffer, offset: Int = 0) throws -> YamuxFrameHeader? {
        guard buffer.readableBytes >= YamuxFrameHeader.size else { return nil }
        let start = buffer.readerIndex
        let version = buffer.getInteger(at: start, as: UInt8.self)!
        guard version == YamuxFrameHeader.protocolVersion else {
            throw YamuxError(.badVersion(version), offset: offset)
        }
        let rawType = buffer.getInteger(at: start + 1, as: UInt8.self)!
        guard let type = YamuxFrameType(rawValue: rawType) else {
            throw YamuxError(.unknownFrameType(rawType), offset: offset)
        }
        let flags = YamuxFlags(rawValue: buffer.getInteger(at: start + 2, endianness: .big, as: UInt16.self)!)
        let streamID = YamuxStreamID(buffer.getInteger(at: start + 4, endianness: .big, as: UInt32.self)!)
        let length = buffer.getInteger(at: start + 8, endianness: .big, as: UInt32.self)!
        buffer.moveReaderIndex(forwardBy: YamuxFrameHeader.size)
        return YamuxFrameHeader(type: type, flags: flags, streamID: streamID, length: length)
    }
}
