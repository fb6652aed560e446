import NIOCore
import SwiftProtobuf

#if canImport(Glibc)
import Glibc
#endif

/// A `ByteBuffer` seen as a bag of bytes by swift-protobuf.
///
/// Why: swift-protobuf parses from and serializes into any
/// `SwiftProtobufContiguousBytes`. Wrapping the NIO buffer lets a received
/// payload be parsed in place and a message be serialized straight into the
/// buffer that goes to the channel, instead of copying through `[UInt8]`.
public struct ProtobufByteBuffer: SwiftProtobufContiguousBytes {
    public var buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) {
        self.buffer = buffer
    }

    /// swift-protobuf asks for a zeroed buffer of the message's size before serializing into it.
    /// One `memset` rather than a byte-at-a-time fill: for a 256 MiB response the difference
    /// is a long stall of the event loop in unoptimized builds.
    public init(repeating byte: UInt8, count: Int) {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        if count > 0 {
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
                memset(pointer.baseAddress!, Int32(byte), count)
                return count
            }
        }
        self.buffer = buffer
    }

    public init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        self.buffer = ByteBuffer(bytes: sequence)
    }

    public var count: Int { self.buffer.readableBytes }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeReadableBytes(body)
    }

    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeMutableReadableBytes(body)
    }
}

extension SwiftProtobuf.Message {
    /// Parses a message from a complete payload without copying it.
    public init(payload: ByteBuffer) throws {
        try self.init(serializedBytes: ProtobufByteBuffer(payload))
    }

    /// Serializes the message into a new `ByteBuffer`.
    public func serializedByteBuffer() throws -> ByteBuffer {
        let bytes: ProtobufByteBuffer = try self.serializedBytes()
        return bytes.buffer
    }

    /// The message as it goes on the wire: 8-byte big-endian length, then the protobuf bytes.
    /// Handy for tests and tools; channels use ``LengthPrefixedMessageEncoder``.
    public func lengthPrefixedByteBuffer() throws -> ByteBuffer {
        var payload = try self.serializedByteBuffer()
        var framed = ByteBufferAllocator().buffer(capacity: LengthPrefixFrameDecoder.prefixLength + payload.readableBytes)
        writeLengthPrefix(payload.readableBytes, into: &framed)
        framed.writeBuffer(&payload)
        return framed
    }
}
