import NIOCore

/// Turns the inbound byte stream of a link into frame headers and payload pieces.
///
/// A Data frame's payload is handed out as it arrives, in slices of the bytes read from the
/// socket (no copy), instead of waiting for the whole frame: the repeater must never wait for a
/// "complete" anything, and a 256 KiB frame would otherwise cost a 256 KiB buffer and its latency.
/// Every frame yields exactly one `.header`, and a Data frame then yields `.payload` pieces that
/// add up to its length (none for an empty one). Bytes are only copied when a header straddles
/// two reads (the next read is then appended to the partial header).
public struct YamuxFrameDecoder: Sendable {
    public enum Item: Hashable, Sendable {
        case header(YamuxFrameHeader)
        /// A piece of the current Data frame's payload; `isLast` marks its final piece.
        case payload(ByteBuffer, isLast: Bool)
    }

    private enum State: Sendable {
        case awaitingHeader
        case readingPayload(remaining: Int)
        case failed(YamuxError)
    }

    /// Data frames longer than this are refused at the header: no receiver ever grants more.
    public var maximumDataLength: UInt32

    private var state: State = .awaitingHeader
    private var buffer = ByteBuffer()
    /// Bytes consumed so far, for error offsets and `muxcat decode`.
    public private(set) var consumedBytes = 0
    /// Byte offset at which the frame whose header was most recently returned started.
    public private(set) var currentFrameOffset = 0

    public init(maximumDataLength: UInt32 = UInt32(Int32.max)) {
        self.maximumDataLength = maximumDataLength
    }

    /// Adds bytes read from the link. Takes the buffer itself when nothing is pending.
    public mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            buffer.writeImmutableBuffer(bytes)
        }
    }

    /// Whether any undecoded bytes remain, or a frame is incomplete (for end-of-input checks).
    public var isMidFrame: Bool {
        switch state {
        case .awaitingHeader: return buffer.readableBytes > 0
        case .readingPayload: return true
        case .failed: return false
        }
    }

    /// Bytes still expected to complete the current frame (header or payload), for error messages.
    public var bytesMissing: Int {
        switch state {
        case .awaitingHeader: return buffer.readableBytes > 0 ? YamuxFrameHeader.size - buffer.readableBytes : 0
        case .readingPayload(let remaining): return remaining
        case .failed: return 0
        }
    }

    /// The next item, or nil when more bytes are needed. After an error, every call throws it again.
    public mutating func next() throws -> Item? {
        switch state {
        case .failed(let error):
            throw error
        case .awaitingHeader:
            guard buffer.readableBytes >= YamuxFrameHeader.size else { return nil }
            let header: YamuxFrameHeader
            do {
                header = try YamuxHeaderCodec.decode(from: &buffer, offset: consumedBytes)!
            } catch let error as YamuxError {
                state = .failed(error)
                throw error
            }
            if header.type == .data && header.length > maximumDataLength {
                let error = YamuxError(
                    .dataFrameTooLarge(length: header.length, limit: maximumDataLength), offset: consumedBytes)
                state = .failed(error)
                throw error
            }
            currentFrameOffset = consumedBytes
            consumedBytes += YamuxFrameHeader.size
            if header.payloadLength > 0 {
                state = .readingPayload(remaining: header.payloadLength)
            }
            return .header(header)
        case .readingPayload(let remaining):
            let available = buffer.readableBytes
            guard available > 0 else { return nil }
            let take = min(remaining, available)
            let slice = buffer.readSlice(length: take)!
            consumedBytes += take
            if take == remaining {
                state = .awaitingHeader
                return .payload(slice, isLast: true)
            } else {
                state = .readingPayload(remaining: remaining - take)
                return .payload(slice, isLast: false)
            }
        }
    }
}
