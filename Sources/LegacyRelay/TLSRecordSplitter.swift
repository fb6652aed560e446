import NIOCore

/// Cuts the ciphertext a TLS handler writes into whole TLS records.
///
/// The old relay's clients sent one record per HTTP request. NIOSSL hands down everything it
/// has encrypted in one write (a large request is hundreds of records in one buffer), so the
/// legacy transport splits it again to behave, and to cost, what the old clients cost.
struct TLSRecordSplitter {
    /// The 5-byte record header: content type, legacy version, length.
    static let headerBytes = 5
    /// TLS 1.3 allows 2^14 + 256 bytes of ciphertext per record; more means this is not TLS.
    static let maximumRecordBody = 16_384 + 256

    private var buffered = ByteBuffer()

    /// Bytes waiting to form a whole record.
    var bufferedBytes: Int { buffered.readableBytes }

    mutating func append(_ bytes: ByteBuffer) {
        if buffered.readableBytes == 0 {
            buffered = bytes
        } else {
            var bytes = bytes
            buffered.writeBuffer(&bytes)
        }
    }

    /// The next whole record (header and body, as a slice: no copy), or nil until one is complete.
    /// Bytes that cannot be a TLS record are passed on as they are rather than held forever.
    mutating func nextRecord() -> (contentType: UInt8, bytes: ByteBuffer)? {
        guard let type = buffered.getInteger(at: buffered.readerIndex, as: UInt8.self),
            let length = buffered.getInteger(at: buffered.readerIndex + 3, as: UInt16.self)
        else { return nil }
        guard Int(length) <= Self.maximumRecordBody else {
            return (type, buffered.readSlice(length: buffered.readableBytes)!)
        }
        guard let record = buffered.readSlice(length: Self.headerBytes + Int(length)) else { return nil }
        return (type, record)
    }
}
