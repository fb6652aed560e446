import NIOCore

/// Splits a byte stream into the payloads of length-prefixed messages.
///
/// Wire format (PROTOCOL-NOTES section 3): an 8-byte unsigned big-endian length,
/// then exactly that many bytes. The decoder is a value without I/O: append the
/// bytes that arrived, then ask ``nextPayload()`` until it returns `nil`.
///
/// Why it is written this way:
/// - The length is learned from the prefix, so a payload is handed back exactly
///   once, when its last byte arrives. Nothing ever "tries to decode until it
///   works" (that costs O(n²) on large messages).
/// - A payload that arrives in one read is returned as a slice of that read
///   (no copy). One that arrives in pieces is gathered into a buffer that grows
///   geometrically with what has *arrived*, capped at the announced length, so
///   gathering is linear and a lying prefix cannot make us allocate its claim.
/// - A prefix above `maximumMessageBytes` is refused as soon as its 8 bytes are
///   complete, before any payload buffer exists; the decoder then stays failed.
public struct LengthPrefixFrameDecoder {
    /// Size of the length prefix in bytes.
    public static let prefixLength = 8

    /// Default limit on one message: 64 MiB.
    public static let defaultMaximumMessageBytes = 64 * 1024 * 1024

    private enum State {
        /// Waiting for (the rest of) a prefix; `partial` holds fewer than 8 bytes.
        case readingPrefix(partial: ByteBuffer?)
        /// The prefix announced `expected` bytes; `gathered` holds those seen so far.
        case readingPayload(expected: Int, gathered: ByteBuffer)
        /// A fatal framing error happened; every later call reports it again.
        case failed(TransportProtocolError)
    }

    /// The largest payload accepted, in bytes.
    public let maximumMessageBytes: Int

    private var state: State = .readingPrefix(partial: nil)
    /// Bytes appended but not yet consumed by the state machine.
    private var unconsumed: ByteBuffer?

    public init(maximumMessageBytes: Int = Self.defaultMaximumMessageBytes) {
        precondition(maximumMessageBytes >= 0, "maximumMessageBytes must not be negative")
        self.maximumMessageBytes = maximumMessageBytes
    }

    /// Hands the decoder bytes that arrived. Cheap: no decoding happens here.
    public mutating func append(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        if var pending = self.unconsumed, pending.readableBytes > 0 {
            // Only happens when the caller appends twice without draining;
            // the copy is bounded by what the caller buffered.
            var bytes = bytes
            pending.writeBuffer(&bytes)
            self.unconsumed = pending
        } else {
            self.unconsumed = bytes
        }
    }

    /// Returns the next complete payload, or `nil` when more bytes are needed.
    ///
    /// Call it in a loop after each ``append(_:)`` until it returns `nil`.
    /// - Throws: ``TransportProtocolError/messageTooLarge(length:limit:)`` once a
    ///   prefix over the limit is complete (and again on every later call).
    public mutating func nextPayload() throws -> ByteBuffer? {
        while true {
            switch self.state {
            case .failed(let error):
                self.unconsumed = nil
                throw error

            case .readingPrefix(let partial):
                guard var input = self.unconsumed, input.readableBytes > 0 else { return nil }
                self.unconsumed = nil
                let length: UInt64
                if var partial = partial {
                    // The prefix was split across reads: complete it byte-wise.
                    let needed = Self.prefixLength - partial.readableBytes
                    var head = input.readSlice(length: min(needed, input.readableBytes))!
                    partial.writeBuffer(&head)
                    self.unconsumed = input
                    guard partial.readableBytes == Self.prefixLength else {
                        self.state = .readingPrefix(partial: partial)
                        return nil
                    }
                    length = partial.readInteger(endianness: .big, as: UInt64.self)!
                } else if input.readableBytes >= Self.prefixLength {
                    length = input.readInteger(endianness: .big, as: UInt64.self)!
                    self.unconsumed = input
                } else {
                    self.state = .readingPrefix(partial: input)
                    return nil
                }

                guard length <= UInt64(self.maximumMessageBytes) else {
                    let error = TransportProtocolError.messageTooLarge(length: length, limit: self.maximumMessageBytes)
                    self.state = .failed(error)
                    self.unconsumed = nil
                    throw error
                }
                let expected = Int(length)
                var rest = self.unconsumed ?? ByteBuffer()
                self.unconsumed = nil
                if rest.readableBytes >= expected {
                    // Whole payload already here: hand out a slice, no copy.
                    let payload = rest.readSlice(length: expected)!
                    self.unconsumed = rest.readableBytes > 0 ? rest : nil
                    self.state = .readingPrefix(partial: nil)
                    return payload
                }
                // Partial payload: keep what arrived, sized by what arrived.
                var gathered = ByteBufferAllocator().buffer(capacity: rest.readableBytes)
                gathered.writeBuffer(&rest)
                self.state = .readingPayload(expected: expected, gathered: gathered)
                return nil

            case .readingPayload(let expected, var gathered):
                guard var input = self.unconsumed, input.readableBytes > 0 else { return nil }
                self.unconsumed = nil
                // Drop our reference in the enum so `gathered` is uniquely owned
                // and grows in place instead of being copied.
                self.state = .readingPrefix(partial: nil)
                let take = min(expected - gathered.readableBytes, input.readableBytes)
                let needed = gathered.writerIndex + take
                if needed > gathered.capacity {
                    // Geometric growth bounded by the announced length.
                    gathered.reserveCapacity(min(gathered.readerIndex + expected, max(needed, gathered.capacity * 2)))
                }
                var chunk = input.readSlice(length: take)!
                gathered.writeBuffer(&chunk)
                self.unconsumed = input.readableBytes > 0 ? input : nil
                if gathered.readableBytes == expected {
                    return gathered
                }
                self.state = .readingPayload(expected: expected, gathered: gathered)
                return nil
            }
        }
    }

    /// Progress of the message being received, if one is partly here:
    /// payload bytes received so far and the announced payload size.
    /// Lets a client draw a progress bar for a large download.
    public var partialPayloadProgress: (received: Int, expected: Int)? {
        if case .readingPayload(let expected, let gathered) = self.state {
            return (gathered.readableBytes + (self.unconsumed?.readableBytes ?? 0), expected)
        }
        return nil
    }

    /// Bytes of memory the decoder holds for a partly received payload.
    /// Bounded by what has arrived (times two), never by what a prefix claims.
    public var gatheredCapacity: Int {
        if case .readingPayload(_, let gathered) = self.state {
            return gathered.capacity
        }
        return 0
    }

    /// Whether part of a message (some prefix bytes, or a prefix and part of its payload) is here.
    public var isMidMessage: Bool {
        if case .failed = self.state { return false }
        return self.errorAtEndOfStream != nil
    }

    /// The framing error to report when the stream ends now, if it ends mid-message.
    public var errorAtEndOfStream: TransportProtocolError? {
        let extra = self.unconsumed?.readableBytes ?? 0
        switch self.state {
        case .readingPrefix(let partial):
            let received = (partial?.readableBytes ?? 0) + extra
            return received == 0 ? nil : .truncatedMessage(received: received, expected: nil)
        case .readingPayload(let expected, let gathered):
            return .truncatedMessage(received: gathered.readableBytes + extra, expected: expected)
        case .failed:
            return nil
        }
    }
}

/// Writes the 8-byte big-endian length prefix for a payload of `length` bytes.
public func writeLengthPrefix(_ length: Int, into buffer: inout ByteBuffer) {
    precondition(length >= 0)
    buffer.writeInteger(UInt64(length), endianness: .big)
}

/// The prefix that goes on the wire before `payload`, as a buffer of its own: the one framing
/// step both encoders share (the payload follows as a second write, so it is never copied).
public func lengthPrefix(for payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
    var prefix = allocator.buffer(capacity: LengthPrefixFrameDecoder.prefixLength)
    writeLengthPrefix(payload.readableBytes, into: &prefix)
    return prefix
}
