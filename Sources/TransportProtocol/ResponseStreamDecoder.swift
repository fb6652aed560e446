import NIOCore
import SwiftProtobuf

/// Decodes length-prefixed `RuntimeManagerResponse`s from a byte stream without ever holding a
/// file: the bytes of `result.data` (a read's file) are handed out as they arrive, and only the
/// other fields are kept and decoded when the message is complete.
///
/// A value type without I/O, fed what arrives (``append(_:)``) and asked for events
/// (``next()``). The protobuf `bytes` field is found from its tag and length before the message
/// is complete: fields may come in any order (the runtime manager streams status, context, then
/// the file; swift-protobuf's serialization puts the context last), a field is checked against
/// the length of what contains it, and nothing is allocated from a claimed length. What is kept
/// (the fields other than the file) is bounded by `maximumMessageBytes`, as with
/// ``LengthPrefixFrameDecoder``; the file is not, since it is handed on as it arrives: a file of
/// any size the runtime manager stored can be read back (issue 42). A malformed message ends
/// decoding (the stream cannot be trusted to be framed any more).
public struct ResponseStreamDecoder {
    public enum Event: Equatable {
        /// The next bytes of the current response's `result.data`.
        case fileBytes(ByteBuffer)
        /// The response is complete. Its `result.data` is empty: the file, if any, came as
        /// `fileBytes` events (`fileBytes` of them in all).
        case response(RuntimeManagerResponse, fileBytes: Int)
    }

    private enum Phase {
        case prefix
        /// Top-level fields; inside `result` while `resultRemaining` is set.
        case fields
        case failed(TransportProtocolError)
    }

    /// Most bytes of one response kept in memory: all of it but a read's file.
    public let maximumMessageBytes: Int
    private var input = ByteBuffer()
    private var phase = Phase.prefix
    private var messageLength = 0
    private var messageRemaining = 0
    /// Bytes left of the `result` field's message, while inside it.
    private var resultRemaining: Int?
    private var fileRemaining = 0
    private var fileBytes = 0
    private var sawFile = false
    /// Bytes of an opaque field value still to copy into `kept`, or to skip (inside `result`).
    private var copyRemaining = 0
    private var skipRemaining = 0
    /// Every field but the file, re-encoded as it came, decoded at the end of the message.
    private var kept = ByteBuffer()

    public init(maximumMessageBytes: Int = LengthPrefixFrameDecoder.defaultMaximumMessageBytes) {
        self.maximumMessageBytes = maximumMessageBytes
    }

    public mutating func append(_ bytes: ByteBuffer) {
        if self.input.readableBytes == 0 {
            self.input = bytes
        } else {
            var bytes = bytes
            self.input.writeBuffer(&bytes)
        }
    }

    /// The current message's progress (bytes after the prefix so far, its announced length), or
    /// nil between messages: for a download progress bar.
    public var progress: (received: Int, expected: Int)? {
        guard case .fields = self.phase else { return nil }
        return (self.messageLength - self.messageRemaining, self.messageLength)
    }

    /// Whether a message has begun and is not complete (for the end of the stream).
    public var errorAtEndOfStream: TransportProtocolError? {
        switch self.phase {
        case .prefix:
            return self.input.readableBytes > 0 ? .truncatedMessage(received: self.input.readableBytes, expected: nil) : nil
        case .fields:
            return .truncatedMessage(received: self.messageLength - self.messageRemaining, expected: self.messageLength)
        case .failed:
            return nil
        }
    }

    public mutating func next() throws -> Event? {
        while true {
            switch self.phase {
            case .failed(let error):
                throw error
            case .prefix:
                guard let length = self.input.readInteger(as: UInt64.self) else { return nil }
                // Only what is kept is bounded (below); this bound keeps the arithmetic in `Int`.
                guard length <= UInt64(Int.max / 2) else {
                    try self.fail(.messageTooLarge(length: length, limit: self.maximumMessageBytes))
                }
                self.messageLength = Int(length)
                self.messageRemaining = Int(length)
                self.resultRemaining = nil
                self.fileBytes = 0
                self.sawFile = false
                self.kept = ByteBuffer()
                self.phase = .fields
            case .fields:
                if self.fileRemaining > 0 {
                    guard self.input.readableBytes > 0 else { return nil }
                    let piece = self.input.readSlice(length: min(self.fileRemaining, self.input.readableBytes))!
                    self.consumed(piece.readableBytes)
                    self.fileRemaining -= piece.readableBytes
                    self.fileBytes += piece.readableBytes
                    return .fileBytes(piece)
                }
                if self.copyRemaining > 0 || self.skipRemaining > 0 {
                    guard self.input.readableBytes > 0 else { return nil }
                    let count = min(self.copyRemaining + self.skipRemaining, self.input.readableBytes)
                    var piece = self.input.readSlice(length: count)!
                    if self.copyRemaining > 0 { self.kept.writeBuffer(&piece) }
                    self.copyRemaining -= self.copyRemaining > 0 ? count : 0
                    self.skipRemaining -= self.skipRemaining > 0 ? count : 0
                    self.consumed(count)
                    continue
                }
                if let inside = self.resultRemaining, inside == 0 {
                    // The end of `result`: keep it, empty, so the response says it carried one.
                    self.resultRemaining = nil
                    self.kept.writeInteger(UInt8(4 << 3 | 2))
                    self.kept.writeInteger(UInt8(0))
                    continue
                }
                if self.messageRemaining == 0 {
                    let response: RuntimeManagerResponse
                    do {
                        response = try RuntimeManagerResponse(payload: self.kept)
                    } catch {
                        try self.fail(.malformedMessage(type: RuntimeManagerResponse.protoMessageName, reason: "\(error)"))
                    }
                    self.phase = .prefix
                    return .response(response, fileBytes: self.fileBytes)
                }
                let field: Void?
                do {
                    field = try self.nextField()
                } catch let error as TransportProtocolError {
                    try self.fail(error)
                }
                guard field != nil else { return nil }
            }
        }
    }

    /// Reads one field header (and a varint's or a length's value), deciding where its bytes go.
    /// Nil when more input is needed; nothing is consumed then.
    private mutating func nextField() throws -> Void? {
        let limit = self.resultRemaining ?? self.messageRemaining
        let start = self.input.readerIndex
        guard let (tag, tagBytes) = try self.peekVarint(at: start, within: limit) else { return nil }
        let number = tag >> 3
        let wireType = tag & 7
        guard number > 0 else { try self.fail(self.malformed("field number 0")) }
        var length = tagBytes
        var value: UInt64 = 0
        switch wireType {
        case 0, 2:
            guard let (v, valueBytes) = try self.peekVarint(at: start + tagBytes, within: limit - tagBytes) else { return nil }
            value = v
            length += valueBytes
        case 1: length += 8
        case 5: length += 4
        default: try self.fail(self.malformed("field \(number) has wire type \(wireType)"))
        }
        guard length <= limit else { try self.fail(self.malformed("field \(number) runs past its message")) }
        let payloadLength = wireType == 2 ? value : 0
        guard payloadLength <= UInt64(limit - length) else {
            try self.fail(self.malformed("field \(number) of \(payloadLength) bytes runs past its message"))
        }
        let fixedBytes = wireType == 1 ? 8 : wireType == 5 ? 4 : 0
        if self.resultRemaining != nil {
            // Inside `result`: field 1 is the file; anything else is skipped.
            if number == 1 && wireType == 2 {
                guard !self.sawFile else { try self.fail(self.malformed("result carries its data twice")) }
                self.sawFile = true
                self.input.moveReaderIndex(forwardBy: length)
                self.consumed(length)
                self.fileRemaining = Int(payloadLength)
            } else {
                self.input.moveReaderIndex(forwardBy: length - fixedBytes)
                self.consumed(length - fixedBytes)
                self.skipRemaining = Int(payloadLength) + fixedBytes
            }
        } else if number == 4 && wireType == 2 {
            self.input.moveReaderIndex(forwardBy: length)
            self.consumed(length)
            self.resultRemaining = Int(payloadLength)
        } else {
            // Kept as it came: the header now, the value as it arrives; all that is kept of one
            // message stays within the limit.
            guard self.kept.readableBytes + length + Int(payloadLength) <= self.maximumMessageBytes else {
                try self.fail(.messageTooLarge(length: UInt64(self.messageLength), limit: self.maximumMessageBytes))
            }
            var header = self.input.readSlice(length: length - fixedBytes)!
            self.kept.writeBuffer(&header)
            self.consumed(length - fixedBytes)
            self.copyRemaining = Int(payloadLength) + fixedBytes
        }
        return ()
    }

    /// A varint at `index` of the input (at most 10 bytes, and `within` the enclosing length):
    /// its value and size, or nil if its last byte has not arrived.
    private func peekVarint(at index: Int, within limit: Int) throws -> (UInt64, Int)? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var count = 0
        while true {
            guard count < 10 else { throw self.malformed("a varint longer than 10 bytes") }
            guard count < limit else { throw self.malformed("a field header runs past its message") }
            guard let byte = self.input.getInteger(at: index + count, as: UInt8.self) else { return nil }
            value |= UInt64(byte & 0x7F) << shift
            shift += 7
            count += 1
            if byte & 0x80 == 0 { return (value, count) }
        }
    }

    private mutating func consumed(_ count: Int) {
        self.messageRemaining -= count
        if let inside = self.resultRemaining { self.resultRemaining = inside - count }
    }

    private func malformed(_ reason: String) -> TransportProtocolError {
        .malformedMessage(type: RuntimeManagerResponse.protoMessageName, reason: reason)
    }

    private mutating func fail(_ error: TransportProtocolError) throws -> Never {
        self.phase = .failed(error)
        throw error
    }
}
