import NIOCore

/// The link's output: where the frames written during one turn of the event loop gather, and when
/// they leave. A value without I/O: the multiplexer appends frames and says when read cycles begin
/// and end; the output hands buffers to a `write` closure (the link channel's `write`, or a list in
/// tests) and answers whether to flush now, at the end of the turn, or not yet.
///
/// Why it is shaped like this (issue 43): a 1:1 relay pays one read and one write per message on
/// each side; a multiplexer can carry every session's frames in one link write per turn and pay
/// per message only the client socket's own read and write. So:
/// - **Small frames gather in one buffer** (control frames, and Data frames of at most
///   `coalescedPayloadLimit` bytes, header and payload copied together): one iovec for many
///   frames, no allocation per frame, and the buffer's memory is reused once the socket has taken
///   it. A larger Data frame hands the gathered bytes over first, then its payload pieces as they
///   are (no copy), so the order on the wire is the order of `append` calls. Past `handOverSize`
///   the gathered bytes are handed over early, so the link channel's write watermark sees them.
/// - **One flush per turn.** While the link is being read (its frames answered: window updates,
///   pings) or while any relayed socket on this loop is in its read cycle, nothing is flushed. The
///   end of the link's read cycle flushes at once (everything the read caused is written by then).
///   The end of the last relayed socket's read cycle, and frames written outside any read cycle,
///   ask for one flush at the end of the turn (a task NIO runs after this turn's I/O, before it
///   waits again), at most one pending: NIO runs one socket's read cycle to its end before the next
///   socket's, so a flush at each end was one link write per message (measured: 1.86–1.90 link
///   writes per message at 512 sessions; 1.03–1.04 with one flush per turn; docs/BENCHMARKS.md).
///   With one stream open there is nothing to share a write with, and its read cycle's end
///   flushes at once (no task per message).
/// - **What a small message waits behind** is bounded in bytes, not per turn: Data is appended only
///   while the link channel is writable (below its write watermark, `LinkSocketTuning`: 64 KiB in
///   NIO, and 64 KiB unsent in the kernel with `TCP_NOTSENT_LOWAT`), and the send queue serves a
///   stream with a small message before streams with a backlog (`YamuxSendQueue`). So a small
///   message's frame is behind at most one watermark of bulk bytes in NIO, one in the kernel, and
///   the frame being written when it arrived.
struct YamuxLinkOutput {
    /// Hands a buffer to the link channel (not flushed), with the promise to complete once written.
    typealias Write = (ByteBuffer, EventLoopPromise<Void>?) -> Void

    /// What the multiplexer does next about flushing.
    enum FlushStep: Equatable {
        /// Nothing: no frames wait, a read cycle holds them, or a flush is already pending.
        case none
        /// Flush now (the link's read cycle ended with frames written).
        case now
        /// Schedule one task that flushes at the end of this turn of the event loop.
        case atEndOfTurn
    }

    /// Payloads up to this size are copied behind their header into the gathered buffer.
    static let coalescedPayloadLimit = 2048
    /// Gathered bytes past this are handed to the link channel at once (its watermark sees them).
    static let handOverSize = 16 * 1024

    /// Small frames written since the last hand-over.
    private var gathered = ByteBuffer()
    /// The promises of the payloads copied into `gathered` (one, the others cascaded from it).
    private var gatheredPromise: EventLoopPromise<Void>?
    /// `gathered` was handed to the channel: clear it (reusing its memory if the channel is done
    /// with it) before the next frame.
    private var handedOver = false
    /// Frames were handed over or gathered since the last flush.
    private(set) var hasUnflushedFrames = false
    /// The link channel is being read: its frames' answers wait for the read cycle's end.
    private(set) var isInLinkReadCycle = false
    /// Relayed sockets in the middle of a read cycle.
    private(set) var openRelayReadCycles = 0
    /// A flush at the end of this turn is scheduled and has not run yet.
    private var endOfTurnFlushPending = false

    /// Bytes gathered and not yet handed over (for tests and assertions).
    var gatheredBytes: Int { handedOver ? 0 : gathered.readableBytes }

    // MARK: Frames

    /// Appends a frame without payload (a control frame, or a Data frame's FIN).
    mutating func append(_ header: YamuxFrameHeader, write: Write) {
        prepareGathered()
        gathered.writeYamuxHeader(header)
        hasUnflushedFrames = true
        if gathered.readableBytes >= Self.handOverSize { handOver(write) }
    }

    /// Appends a Data frame: its header, then the payload `pieces` (whose lengths sum to the
    /// header's length). A small payload is copied behind the header, and its pieces' promises
    /// complete when the gathered buffer is written; a larger one hands the gathered bytes over and
    /// then each piece with its own promise.
    mutating func appendData(
        _ header: YamuxFrameHeader, pieces: [(ByteBuffer, EventLoopPromise<Void>?)], write: Write
    ) {
        prepareGathered()
        gathered.writeYamuxHeader(header)
        hasUnflushedFrames = true
        if Int(header.length) <= Self.coalescedPayloadLimit {
            for (var bytes, piecePromise) in pieces {
                gathered.writeBuffer(&bytes)
                guard let piecePromise else { continue }
                if let gatheredPromise {
                    gatheredPromise.futureResult.cascade(to: piecePromise)
                } else {
                    gatheredPromise = piecePromise
                }
            }
            if gathered.readableBytes >= Self.handOverSize { handOver(write) }
            return
        }
        handOver(write)
        for (bytes, promise) in pieces { write(bytes, promise) }
    }

    // MARK: When to flush

    /// After frames were appended outside the link's read cycle: flush at the end of the turn,
    /// unless a read cycle will flush them or a flush is already pending.
    mutating func framesAppended() -> FlushStep {
        guard hasUnflushedFrames, !isInLinkReadCycle, openRelayReadCycles == 0, !endOfTurnFlushPending else {
            return .none
        }
        endOfTurnFlushPending = true
        return .atEndOfTurn
    }

    /// The link channel delivered a read: hold flushes until its read cycle ends.
    mutating func linkReadCycleBegan() {
        isInLinkReadCycle = true
    }

    /// The link's read cycle ended: flush now what it caused.
    mutating func linkReadCycleEnded() -> FlushStep {
        isInLinkReadCycle = false
        return hasUnflushedFrames ? .now : .none
    }

    /// A relayed socket started a read cycle: hold flushes until it ends.
    mutating func relayReadCycleBegan() {
        openRelayReadCycles += 1
    }

    /// A relayed socket's read cycle ended: once none is open, flush at the end of the turn — or
    /// at once when no other stream is open to share the write with (`othersMayShare` false: one
    /// session, a ping-pong, where a task per message only costs; measured +7 % relay CPU and
    /// +12 % p50 with one session, docs/bench/NOTES.md).
    mutating func relayReadCycleEnded(othersMayShare: Bool = true) -> FlushStep {
        openRelayReadCycles -= 1
        assert(openRelayReadCycles >= 0, "a relay read cycle ended that never began")
        if !othersMayShare, hasUnflushedFrames, openRelayReadCycles == 0, !isInLinkReadCycle {
            return .now
        }
        return framesAppended()
    }

    /// The end-of-turn task runs: a later `framesAppended` may schedule another.
    mutating func endOfTurnFlushRan() {
        endOfTurnFlushPending = false
    }

    /// Hands the gathered frames over for a flush; returns whether there is anything to flush.
    mutating func takeFlush(write: Write) -> Bool {
        guard hasUnflushedFrames else { return false }
        hasUnflushedFrames = false
        handOver(write)
        return true
    }

    /// The link is gone: the gathered frames are dropped and their promises fail.
    mutating func fail(_ error: Error) {
        gatheredPromise?.fail(error)
        gatheredPromise = nil
        hasUnflushedFrames = false
        if !handedOver { gathered.clear() }
    }

    // MARK: Gathered buffer

    /// Makes `gathered` ready for more frames: after a hand-over it is cleared, which reuses its
    /// memory when the channel has written it out (and allocates anew only when it has not).
    private mutating func prepareGathered() {
        if handedOver {
            handedOver = false
            gathered.clear()
        }
    }

    /// Passes the gathered frames to the channel (in order with the large frames written after).
    private mutating func handOver(_ write: Write) {
        guard !handedOver, gathered.readableBytes > 0 else { return }
        write(gathered, gatheredPromise)
        gatheredPromise = nil
        handedOver = true
    }
}
