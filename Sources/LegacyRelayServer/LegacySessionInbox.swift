import NIOCore

/// What one old-style session holds between HTTP requests, and when a waiting poll is answered.
/// No I/O: `LegacyRelaySession` feeds it events and acts on the decisions.
///
/// How a response waits (the old relay answered with whatever had arrived; answering a poll at
/// once with nothing would make a waiting client spin, and waiting for a "complete" reply is
/// impossible for a relay that sees only ciphertext):
/// - a request that carries TLS bytes is answered as soon as those bytes are on their way to
///   the runtime manager, with whatever the runtime manager had sent by then — like the old relay;
/// - a poll (no TLS bytes) is a *long poll*: it is answered at the end of the first read that
///   brings bytes from the runtime manager, or after the poll wait with no chunks.
struct LegacySessionInbox {
    /// What to do with a request.
    enum Decision: Equatable {
        /// Answer now with these chunks (possibly none).
        case answer([ByteBuffer])
        /// Hold the poll until bytes arrive, the stream ends or the poll wait runs out.
        case wait
        /// The stream ended and nothing is left to deliver: tell the client, forget the session.
        case gone(reason: String)
    }

    /// Bytes held for the client before the relay stops reading the stream (backpressure: the
    /// runtime manager's window for this stream then closes; other sessions are unaffected).
    let limit: Int
    private(set) var chunks: [ByteBuffer] = []
    private(set) var bytes = 0
    /// Why the stream ended, once it has.
    private(set) var endReason: String?
    /// A poll is held, waiting for bytes.
    private(set) var pollWaiting = false

    init(limit: Int) { self.limit = limit }

    /// Whether the stream should be read further.
    var wantsMoreFromStream: Bool { bytes < limit && endReason == nil }

    /// TLS bytes from the runtime manager arrived.
    mutating func received(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else { return }
        chunks.append(buffer)
        bytes += buffer.readableBytes
    }

    /// A poll arrived. `superseded` says an earlier held poll must be answered (empty) first: a
    /// client has only one request outstanding per session in the old protocol, so the earlier
    /// one was abandoned.
    mutating func poll() -> (superseded: Bool, decision: Decision) {
        let superseded = pollWaiting
        pollWaiting = false
        if !chunks.isEmpty { return (superseded, .answer(takeAll())) }
        if let endReason { return (superseded, .gone(reason: endReason)) }
        pollWaiting = true
        return (superseded, .wait)
    }

    /// A request with TLS bytes arrived; `nil` means they can be forwarded, else the reason they cannot.
    func canForward() -> String? { endReason }

    /// The bytes of a request went out: what to answer it with.
    mutating func forwarded() -> Decision {
        .answer(takeAll())
    }

    /// A read from the stream finished: a held poll is answered if bytes arrived.
    mutating func readCompleted() -> Decision? {
        guard pollWaiting, !chunks.isEmpty else { return nil }
        pollWaiting = false
        return .answer(takeAll())
    }

    /// The poll wait ran out: the held poll is answered with nothing.
    mutating func pollTimedOut() -> Decision? {
        guard pollWaiting else { return nil }
        pollWaiting = false
        return .answer(takeAll())
    }

    /// The stream ended: a held poll gets what is left, or learns that the session is gone.
    mutating func streamEnded(reason: String) -> Decision? {
        if endReason == nil { endReason = reason }
        guard pollWaiting else { return nil }
        pollWaiting = false
        if !chunks.isEmpty { return .answer(takeAll()) }
        return .gone(reason: endReason!)
    }

    private mutating func takeAll() -> [ByteBuffer] {
        defer {
            chunks.removeAll(keepingCapacity: true)
            bytes = 0
        }
        return chunks
    }
}
