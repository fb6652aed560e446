import NIOCore

/// The turn-taking of streams with data (or a FIN) to send on the link.
///
/// - **Sparse streams first**, as fq_codel serves sparse flows: a stream that had nothing queued
///   and now has at most `sparseQuantum` bytes (a small message, a FIN) goes ahead of the streams
///   with a backlog, once, for at most that many bytes; if it has more after that turn, it joins
///   the round at the back. A small message then waits behind no bulk frame in this queue.
/// - **Round-robin among the rest**, one Data frame per turn, so a bulk stream cannot starve
///   another.
///
/// A stream is in the queue at most once (its `isQueuedForSend` says so: no lookup), and a stream
/// that could not go because the link is full keeps its place at the front of its list. A pass
/// serves the streams queued when it started.
///
/// A value without I/O: the multiplexer asks it whose turn it is and says what came of the turn.
struct YamuxSendQueue {
    /// Most bytes of a sparse turn, and most a newly queued stream may have to count as sparse:
    /// one small message or TLS record of one, not a bulk read (64 KiB).
    static let sparseQuantum = 4 * 1024

    /// One turn: the stream, and which list it came from.
    struct Turn {
        var stream: any YamuxStreamEndpoint
        var isSparse: Bool
        /// The most bytes the stream may send in this turn.
        var byteLimit: Int { isSparse ? YamuxSendQueue.sparseQuantum : .max }
    }

    private var sparse = CircularBuffer<any YamuxStreamEndpoint>(initialCapacity: 4)
    private var round = CircularBuffer<any YamuxStreamEndpoint>(initialCapacity: 16)
    /// Turns left in the current pass (`startPass`), in each list.
    private var sparseTurnsLeft = 0
    private var roundTurnsLeft = 0

    var count: Int { sparse.count + round.count }
    var isEmpty: Bool { sparse.isEmpty && round.isEmpty }

    /// Queues a stream that has something to send; a queued stream keeps its place.
    mutating func enqueue(_ stream: any YamuxStreamEndpoint) {
        guard !stream.marks.queuedForSend else { return }
        stream.marks.queuedForSend = true
        if stream.sendableBytes <= Self.sparseQuantum {
            sparse.append(stream)
        } else {
            round.append(stream)
        }
    }

    /// Starts a pass: every stream queued now gets one turn, the sparse ones first.
    mutating func startPass() {
        sparseTurnsLeft = sparse.count
        roundTurnsLeft = round.count
    }

    /// Whose turn it is (nil once the pass is over); the stream leaves the queue for its turn.
    mutating func nextTurn() -> Turn? {
        if sparseTurnsLeft > 0, let stream = sparse.popFirst() {
            sparseTurnsLeft -= 1
            stream.marks.queuedForSend = false
            return Turn(stream: stream, isSparse: true)
        }
        guard roundTurnsLeft > 0, let stream = round.popFirst() else { return nil }
        roundTurnsLeft -= 1
        stream.marks.queuedForSend = false
        return Turn(stream: stream, isSparse: false)
    }

    /// The stream sent a frame and has more, with window left: to the back of the round, with a
    /// turn in this pass (after every stream ahead of it has had one). A sparse stream joins the
    /// round here.
    mutating func takeAnotherTurn(_ stream: any YamuxStreamEndpoint) {
        guard !stream.marks.queuedForSend else { return }
        stream.marks.queuedForSend = true
        round.append(stream)
        roundTurnsLeft += 1
    }

    /// The link is full: the turn's stream goes back to the front of its list, and the pass
    /// ends (writability resumes it).
    mutating func keepPlace(_ turn: Turn) {
        if !turn.stream.marks.queuedForSend {
            turn.stream.marks.queuedForSend = true
            if turn.isSparse {
                sparse.prepend(turn.stream)
            } else {
                round.prepend(turn.stream)
            }
        }
        sparseTurnsLeft = 0
        roundTurnsLeft = 0
    }

    /// Forgets every stream (the link is gone).
    mutating func removeAll() {
        for stream in sparse { stream.marks.queuedForSend = false }
        for stream in round { stream.marks.queuedForSend = false }
        sparse.removeAll()
        round.removeAll()
        sparseTurnsLeft = 0
        roundTurnsLeft = 0
    }
}
