import NIOCore
import Yamux

/// Cuts one direction of a link's byte stream into whole frames, so that every capture record
/// is exactly one frame however the bytes were split into reads and writes.
///
/// Framing is `YamuxFrameDecoder`'s, so the capture agrees with the multiplexer about where
/// frames start and what is malformed. Bytes that cannot be framed (everything from a bad
/// header on, or a partial frame when the link closes) come out as `.unframed`, so a capture
/// still shows exactly what crossed the link when the peer was not speaking yamux.
public struct FrameReassembler: Sendable {
    public enum Piece: Hashable, Sendable {
        /// One whole frame: 12 header bytes and its payload, exactly as on the wire.
        case frame(ByteBuffer)
        /// Bytes that are not one whole frame.
        case unframed(ByteBuffer)
    }

    private var decoder = YamuxFrameDecoder()
    /// Bytes appended but not yet handed out, starting at `decoder` offset `handedOut`.
    private var pending = ByteBuffer()
    private var handedOut = 0
    private var failed = false

    public init() {}

    /// Adds bytes in wire order; returns the frames (or unframed bytes) they complete.
    public mutating func append(_ bytes: ByteBuffer) -> [Piece] {
        guard bytes.readableBytes > 0 else { return [] }
        if failed { return [.unframed(bytes)] }
        if pending.readableBytes == 0 {
            pending = bytes
        } else {
            pending.writeImmutableBuffer(bytes)
        }
        decoder.append(bytes)
        var pieces: [Piece] = []
        do {
            while let item = try decoder.next() {
                switch item {
                case .header(let header):
                    if header.payloadLength == 0 { pieces.append(.frame(cut())) }
                case .payload(_, let isLast):
                    if isLast { pieces.append(.frame(cut())) }
                }
            }
        } catch {
            failed = true
            pieces.append(.unframed(pending))
            pending = ByteBuffer()
        }
        return pieces
    }

    /// The link closed: whatever is left is a partial frame.
    public mutating func finish() -> Piece? {
        guard pending.readableBytes > 0 else { return nil }
        defer { pending = ByteBuffer() }
        return .unframed(pending)
    }

    private mutating func cut() -> ByteBuffer {
        let length = decoder.consumedBytes - handedOut
        handedOut = decoder.consumedBytes
        let frame = pending.readSlice(length: length)!
        if pending.readableBytes == 0 { pending = ByteBuffer() }
        return frame
    }
}
