import NIOCore

/// A successful read-file response sent without ever holding it whole: the runtime manager
/// knows the file's size before it answers, so it writes the length prefix and every protobuf
/// field header first, then the file's bytes as they go out.
///
/// The bytes are a valid `RuntimeManagerResponse` (status SUCCESS, the request's context, and
/// `result.data` = the file), with the fields in the order status, context, result, so that the
/// file is the message's tail. Protobuf decoders accept fields in any order; swift-protobuf's own
/// serialization would put the context last.
public enum StreamedReadResponse {
    /// The length prefix and the fields up to the first byte of the file.
    public static func head(context: UInt32, fileBytes: Int, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var fields = allocator.buffer(capacity: 32)
        fields.writeInteger(UInt8(1 << 3 | 0))  // status = SUCCESS (1), a varint
        writeVarint(UInt64(ResponseStatus.success.rawValue), into: &fields)
        if context != 0 {  // proto3 leaves a zero context out
            fields.writeInteger(UInt8(8 << 3 | 0))
            writeVarint(UInt64(context), into: &fields)
        }
        // result (field 4), a message holding only `data` (field 1; left out when empty).
        let dataField = fileBytes == 0 ? 0 : 1 + varintLength(UInt64(fileBytes)) + fileBytes
        fields.writeInteger(UInt8(4 << 3 | 2))
        writeVarint(UInt64(dataField), into: &fields)
        if fileBytes > 0 {
            fields.writeInteger(UInt8(1 << 3 | 2))
            writeVarint(UInt64(fileBytes), into: &fields)
        }
        var head = allocator.buffer(capacity: LengthPrefixFrameDecoder.prefixLength + fields.readableBytes)
        writeLengthPrefix(fields.readableBytes + fileBytes, into: &head)
        head.writeBuffer(&fields)
        return head
    }

    /// The whole message's size on the wire for a file of `fileBytes` (prefix included).
    public static func wireBytes(context: UInt32, fileBytes: Int) -> Int {
        head(context: context, fileBytes: fileBytes).readableBytes + fileBytes
    }

    static func writeVarint(_ value: UInt64, into buffer: inout ByteBuffer) {
        var value = value
        while value >= 0x80 {
            buffer.writeInteger(UInt8(value & 0x7F | 0x80))
            value >>= 7
        }
        buffer.writeInteger(UInt8(value))
    }

    static func varintLength(_ value: UInt64) -> Int {
        var value = value
        var length = 1
        while value >= 0x80 {
            value >>= 7
            length += 1
        }
        return length
    }
}
