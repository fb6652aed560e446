import NIOCore

/// The turn-taking of streams with data (or a FIN) to send on the link: round-robin, one Data
/// frame per turn, so a bulk stream cannot starve a small one. A stream is in the queue at most
/// once (its `isQueuedForSend` says so: no lookup), and a stream that could not go because the
/// link is full keeps its place at the front.
///
/// A value without I/O: the multiplexer asks it whose turn it is and says what came of the turn.
struct YamuxSendQueue {
    private var streams = CircularBuffer<any YamuxStreamEndpoint>(initialCapacity: 16)
    /// Turns left in the current pass (`startPass`).
    private var turnsLeft = 0

    var count: Int { streams.count }
    var isEmpty: Bool { streams.isEmpty }

    /// Queues a stream that has something to send; a queued stream keeps its place.
    mutating func enqueue(_ stream: any YamuxStreamEndpoint) {
        guard !stream.isQueuedForSend else { return }
        stream.isQueuedForSend = true
        streams.append(stream)
    }

    /// Starts a pass: every stream queued now gets one turn.
    mutating func startPass() {
        turnsLeft = streams.count
    }

    /// The stream whose turn it is (nil once the pass is over); it leaves the queue for its turn.
    mutating func nextTurn() -> (any YamuxStreamEndpoint)? {
        guard turnsLeft > 0, let stream = streams.popFirst() else { return nil }
        turnsLeft -= 1
        stream.isQueuedForSend = false
        return stream
    }

    /// The stream sent a frame and has more, with window left: to the back, with a turn in this
    /// pass (after every stream ahead of it has had one).
    mutating func takeAnotherTurn(_ stream: any YamuxStreamEndpoint) {
        enqueue(stream)
        turnsLeft += 1
    }

    /// The link is full: the stream goes back to the front, and the pass ends (writability resumes it).
    mutating func keepPlace(_ stream: any YamuxStreamEndpoint) {
        if !stream.isQueuedForSend {
            stream.isQueuedForSend = true
            streams.prepend(stream)
        }
        turnsLeft = 0
    }

    /// Forgets every stream (the link is gone).
    mutating func removeAll() {
        for stream in streams { stream.isQueuedForSend = false }
        streams.removeAll()
        turnsLeft = 0
    }
}
