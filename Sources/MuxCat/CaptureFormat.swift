import NIOCore

/// Which way a captured frame went, seen from the muxcat that wrote the capture.
public enum CaptureDirection: UInt8, Sendable, CustomStringConvertible {
    /// Received from the peer (`I`).
    case received = 0x49
    /// Sent to the peer (`O`).
    case sent = 0x4F

    public var description: String { self == .received ? "in" : "out" }
}

/// Which end of the link the capturing muxcat stood in for, so a reader knows what "in" means.
public enum CaptureRole: UInt8, Sendable, CustomStringConvertible {
    case unknown = 0
    /// `muxcat connect`: the yamux client, standing in for the repeater.
    case client = 1
    /// `muxcat listen`: the yamux server, standing in for the runtime manager.
    case server = 2

    public var description: String {
        switch self {
        case .unknown: return "unknown side"
        case .client: return "muxcat connect (yamux client, the repeater's side)"
        case .server: return "muxcat listen (yamux server, the runtime manager's side)"
        }
    }
}

/// One frame (or unframed bytes) that crossed a link, with when and which way.
public struct CaptureRecord: Hashable, Sendable {
    public var direction: CaptureDirection
    /// The bytes are not exactly one frame (malformed input, or a partial frame at link close).
    public var unframed: Bool
    /// Links are numbered 1, 2, … in the order the capturing muxcat accepted or dialed them.
    public var link: UInt32
    /// Microseconds since the Unix epoch (UTC) when the frame's last byte crossed the tap.
    public var timestamp: UInt64
    public var bytes: ByteBuffer

    public init(direction: CaptureDirection, unframed: Bool = false, link: UInt32, timestamp: UInt64, bytes: ByteBuffer) {
        self.direction = direction
        self.unframed = unframed
        self.link = link
        self.timestamp = timestamp
        self.bytes = bytes
    }
}

/// The capture file format (docs/CAPTURE-FORMAT.md): a 12-byte file header, then records of an
/// 18-byte record header and the frame's bytes. All integers big-endian, like yamux itself.
///
/// The magic's first byte, 0x89, can never start a yamux frame (version 0), so `muxcat decode`
/// tells a capture from a raw frame stream by its first byte.
public enum CaptureFormat {
    /// `\x89MUXCAP\n`
    public static let magic: [UInt8] = [0x89, 0x4D, 0x55, 0x58, 0x43, 0x41, 0x50, 0x0A]
    public static let version: UInt8 = 1
    public static let fileHeaderSize = 12
    public static let recordHeaderSize = 18

    public static func writeFileHeader(role: CaptureRole, into buffer: inout ByteBuffer) {
        buffer.writeBytes(magic)
        buffer.writeInteger(version)
        buffer.writeInteger(role.rawValue)
        buffer.writeInteger(UInt16(0))  // reserved
    }

    public static func writeRecord(_ record: CaptureRecord, into buffer: inout ByteBuffer) {
        buffer.writeInteger(record.direction.rawValue)
        buffer.writeInteger(UInt8(record.unframed ? 1 : 0))
        buffer.writeInteger(record.link)
        buffer.writeInteger(record.timestamp)
        buffer.writeInteger(UInt32(record.bytes.readableBytes))
        buffer.writeImmutableBuffer(record.bytes)
    }
}

/// A capture file that is not one: what was wrong, and where.
public struct CaptureFormatError: Error, Hashable, Sendable, CustomStringConvertible {
    public var offset: Int
    public var problem: String
    public var description: String { "malformed capture file at byte offset \(offset): \(problem)" }
}

/// Reads a capture file incrementally (it may be arriving on stdin), one record at a time.
public struct CaptureReader: Sendable {
    public enum Item: Hashable, Sendable {
        case fileHeader(role: CaptureRole)
        /// A record, and the file offset of its frame bytes (for error messages).
        case record(CaptureRecord, bytesOffset: Int)
    }

    private var buffer = ByteBuffer()
    private var offset = 0
    private var headerRead = false

    public init() {}

    public mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            buffer.discardReadBytes()
            buffer.writeImmutableBuffer(bytes)
        }
    }

    /// The next item, or nil when more bytes are needed.
    public mutating func next() throws -> Item? {
        if !headerRead {
            guard buffer.readableBytes >= CaptureFormat.fileHeaderSize else { return nil }
            let magic = buffer.getBytes(at: buffer.readerIndex, length: CaptureFormat.magic.count)!
            guard magic == CaptureFormat.magic else {
                throw CaptureFormatError(offset: 0, problem: "the file does not start with the capture magic \\x89MUXCAP\\n")
            }
            let version = buffer.getInteger(at: buffer.readerIndex + 8, as: UInt8.self)!
            guard version == CaptureFormat.version else {
                throw CaptureFormatError(
                    offset: 8,
                    problem: "capture format version \(version) is not supported (this muxcat reads version \(CaptureFormat.version))")
            }
            let role = CaptureRole(rawValue: buffer.getInteger(at: buffer.readerIndex + 9, as: UInt8.self)!) ?? .unknown
            buffer.moveReaderIndex(forwardBy: CaptureFormat.fileHeaderSize)
            offset += CaptureFormat.fileHeaderSize
            headerRead = true
            return .fileHeader(role: role)
        }
        guard buffer.readableBytes >= CaptureFormat.recordHeaderSize else { return nil }
        let start = buffer.readerIndex
        let length = Int(buffer.getInteger(at: start + 14, as: UInt32.self)!)
        guard buffer.readableBytes >= CaptureFormat.recordHeaderSize + length else { return nil }
        let rawDirection = buffer.getInteger(at: start, as: UInt8.self)!
        guard let direction = CaptureDirection(rawValue: rawDirection) else {
            throw CaptureFormatError(
                offset: offset, problem: "record direction byte is 0x\(String(rawDirection, radix: 16)) (expected 'I' or 'O')")
        }
        let flags = buffer.getInteger(at: start + 1, as: UInt8.self)!
        let link = buffer.getInteger(at: start + 2, as: UInt32.self)!
        let timestamp = buffer.getInteger(at: start + 6, as: UInt64.self)!
        buffer.moveReaderIndex(forwardBy: CaptureFormat.recordHeaderSize)
        let bytes = buffer.readSlice(length: length)!
        let bytesOffset = offset + CaptureFormat.recordHeaderSize
        offset = bytesOffset + length
        let record = CaptureRecord(
            direction: direction, unframed: flags & 1 != 0, link: link, timestamp: timestamp, bytes: bytes)
        return .record(record, bytesOffset: bytesOffset)
    }

    /// End of input: anything left over is a truncated header or record.
    public func finish() throws {
        let left = buffer.readableBytes
        guard left > 0 else { return }
        if !headerRead {
            throw CaptureFormatError(
                offset: 0, problem: "truncated file header: \(left) of \(CaptureFormat.fileHeaderSize) bytes")
        }
        if left < CaptureFormat.recordHeaderSize {
            throw CaptureFormatError(
                offset: offset, problem: "truncated record header: \(left) of \(CaptureFormat.recordHeaderSize) bytes")
        }
        let length = Int(buffer.getInteger(at: buffer.readerIndex + 14, as: UInt32.self)!)
        throw CaptureFormatError(
            offset: offset,
            problem:
                "truncated record: \(left - CaptureFormat.recordHeaderSize) of its \(length) frame bytes (was muxcat killed while writing?)"
        )
    }
}
