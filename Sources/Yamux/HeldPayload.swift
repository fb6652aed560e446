import NIOCore

extension ByteBuffer {
    /// This payload piece as a stream may hold it: itself, or a copy when it is the smaller part
    /// of the storage it shares.
    ///
    /// Why: the frame decoder hands out payload as slices of the link's read buffers (no copy on
    /// the way through), and a slice keeps its whole read buffer alive, up to 64 KiB. A stream
    /// that holds many small slices (a client that stopped reading, while other streams' bytes
    /// filled the same reads) would hold many times what its window counts. A piece held here
    /// keeps at most twice its own bytes alive (a copy's storage is rounded up to a power of
    /// two), so the window and the watermarks bound memory, not just payload. Pieces that fill
    /// most of their read buffer (bulk transfer) are kept as they are.
    @inlinable
    public func heldCompactly() -> ByteBuffer {
        guard self.readableBytes &* 2 < self.storageCapacity else { return self }
        var copy = ByteBufferAllocator().buffer(capacity: self.readableBytes)
        copy.writeImmutableBuffer(self)
        return copy
    }
}
