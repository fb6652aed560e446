import NIOCore

/// The lock-step of an old relay client, as data: one request in flight at a time, each carrying
/// one TLS record; when nothing is left to send but a reply is awaited, a poll (no payload).
///
/// `LegacyHTTPTransportHandler` feeds it writes, answers and "a reply is awaited" signals, and
/// sends what `next()` says.
struct LegacyHTTPClientState {
    enum Action: Equatable {
        /// POST this record.
        case send(ByteBuffer)
        /// POST with no payload, to collect what the runtime manager sent.
        case poll
        /// Nothing to do until more is written, an answer arrives or a reply is awaited.
        case none
    }

    /// An answer that does not fit the session: the relay is confused or not the old relay.
    struct SessionMismatch: Error, Equatable {
        var expected: UInt32
        var got: UInt32
    }

    /// 0 until the relay's first answer assigns one.
    private(set) var sessionID: UInt32 = 0
    private var splitter = TLSRecordSplitter()
    private var records = CircularBuffer<ByteBuffer>()
    /// A request is on the wire; nothing else may be sent until it is answered.
    private(set) var inFlight = false
    /// Whether the layer above waits for bytes from the runtime manager (handshake, a request
    /// outstanding, the peer's close_notify). Starts true: the client speaks first and then
    /// awaits the server's hello.
    var awaitingReply = true
    /// Bytes written so far, and how many of them the relay has acknowledged by answering.
    private(set) var bytesWritten = 0
    private(set) var bytesAcknowledged = 0
    private var inFlightEnd = 0

    /// Ciphertext from the TLS handler. Returns the offset that, once acknowledged, completes this write.
    mutating func write(_ bytes: ByteBuffer) -> Int {
        bytesWritten += bytes.readableBytes
        splitter.append(bytes)
        while let record = splitter.nextRecord() { records.append(record.bytes) }
        return bytesWritten
    }

    /// What to send now (moves a record in flight).
    mutating func next() -> Action {
        guard !inFlight else { return .none }
        if let record = records.popFirst() {
            inFlight = true
            // Records leave in the order they were written, so each answer acknowledges exactly its record.
            inFlightEnd = bytesAcknowledged + record.readableBytes
            return .send(record)
        }
        // A poll with id 0 would open a new session: only poll once the relay named ours.
        guard sessionID != 0, awaitingReply else { return .none }
        inFlight = true
        inFlightEnd = bytesAcknowledged
        return .poll
    }

    /// The relay answered the request in flight. Returns the TLS bytes it carried.
    mutating func answered(_ response: LegacyRelayResponse) throws(SessionMismatch) -> [ByteBuffer] {
        precondition(inFlight, "an answer without a request in flight")
        inFlight = false
        if sessionID == 0 {
            guard response.sessionID != 0 else { throw SessionMismatch(expected: 0, got: 0) }
            sessionID = response.sessionID
        } else if response.sessionID != sessionID {
            throw SessionMismatch(expected: sessionID, got: response.sessionID)
        }
        bytesAcknowledged = inFlightEnd
        return response.chunks
    }
}
