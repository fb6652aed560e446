/// The control frames (window updates, SYN/ACK/FIN/RST, ping replies, Go Away) that wait while
/// the link channel is not writable, as data: capped, coalesced, and telling the multiplexer
/// when to stop reading the link. No I/O.
///
/// Why it exists: the peer decides how many control frames we owe it. Every ping it sends asks
/// for a reply, every SYN past our limits for an RST; a peer that sends them and never reads
/// would otherwise make us queue replies without bound (measured before this queue: +1.2 GiB in
/// 10 s of a ping flood). swift-nio-http2 caps its control frames the same way
/// (`maximumBufferedControlFrames`, then the connection is closed).
///
/// Frames go through the queue only while the link channel is not writable (then at most its
/// write watermark of bytes sits in the channel); while it is writable they are written at once,
/// ahead of stream data, as before. The queue keeps three promises:
/// - **Answers pause reading.** Replies the peer asks for by a frame of their own and that hold
///   no stream state (ping replies, RSTs refusing a SYN) are counted as `answers`; once they reach
///   `pauseThreshold` the multiplexer stops decoding and reading the link, so the peer's further
///   frames wait in its own socket, as its data already does. Frames tied to a stream are not
///   counted there: they are bounded by the number of streams, and a peer that merely reads
///   slowly must not make two healthy ends stop reading each other.
/// - **Per stream, only what still matters.** Plain window updates for the same stream coalesce
///   into one (their deltas add up; only the total credit matters). A stream the peer resets
///   loses every frame still queued for it (the peer has no use for them); a stream we reset
///   loses its queued window update.
/// - **A hard cap.** Past `limit` frames, `append` says `.overLimit` and queues nothing: the
///   multiplexer closes the link (`YamuxError.Kind.controlFlood`).
///
/// What a link may hold, then: at most `limit` frames of 12 bytes, and in practice
/// `pauseThreshold` answers plus at most four frames per stream (SYN or ACK, a window update,
/// FIN, RST); docs/SECURITY.md has the formula.
public struct YamuxControlFrameQueue: Sendable {
    /// What `append` did with a frame.
    public enum Outcome: Sendable, Hashable {
        /// Queued at the end.
        case queued
        /// Added to the window update already queued for the same stream.
        case coalesced
        /// Not queued: it would exceed `limit`. The link must be closed.
        case overLimit
    }

    /// Most frames the queue holds.
    public let limit: Int
    /// Answers (ping replies, refusals) queued at which link reads pause.
    public let pauseThreshold: Int

    /// The frames in order; nil where one was dropped (indices stay valid until `drain`).
    private var frames: [YamuxFrameHeader?] = []
    /// Where each stream's frames are in `frames` (a few per stream at most).
    private var framesByStream: [YamuxStreamID: [Int]] = [:]
    /// Frames queued and not dropped.
    public private(set) var count = 0
    /// Of those, answers to the peer that hold no stream state (ping replies, refusals).
    public private(set) var answers = 0

    public init(limit: Int, pauseThreshold: Int) {
        precondition(limit > 0 && pauseThreshold > 0, "the control frame limits must be positive")
        self.limit = limit
        self.pauseThreshold = min(pauseThreshold, limit)
    }

    public var isEmpty: Bool { count == 0 }

    /// Whether the multiplexer should stop reading the link until the queue has drained.
    public var pausesReading: Bool { answers >= pauseThreshold }

    /// Queues `frame`. `isAnswer` marks a reply the peer asked for that holds no stream state
    /// (an RST refusing its SYN); a ping reply counts as one without being told.
    public mutating func append(_ frame: YamuxFrameHeader, isAnswer: Bool = false) -> Outcome {
        let id = frame.streamID
        if frame.type == .windowUpdate, frame.flags.isEmpty, id != .session,
            let index = framesByStream[id]?.first(where: { frames[$0].map(Self.isPlainWindowUpdate) ?? false })
        {
            let (sum, overflow) = frames[index]!.length.addingReportingOverflow(frame.length)
            if !overflow {
                frames[index]!.length = sum
                return .coalesced
            }
        }
        guard count < limit else { return .overLimit }
        if frame.type == .windowUpdate, frame.flags.contains(.rst), !isAnswer {
            // A stream we reset needs no more credit.
            dropFrames(of: id, where: Self.isPlainWindowUpdate)
        }
        let answer = isAnswer || (frame.type == .ping && frame.flags.contains(.ack))
        frames.append(frame)
        count += 1
        if answer {
            answers += 1
        } else if id != .session {
            framesByStream[id, default: []].append(frames.count - 1)
        }
        return .queued
    }

    /// The peer reset the stream: it needs nothing more that is queued for it.
    public mutating func peerReset(_ id: YamuxStreamID) {
        guard !framesByStream.isEmpty else { return }
        dropFrames(of: id) { _ in true }
        framesByStream[id] = nil
    }

    /// Hands every frame to `write`, in order, and empties the queue.
    public mutating func drain(_ write: (YamuxFrameHeader) -> Void) {
        for frame in frames {
            if let frame { write(frame) }
        }
        frames.removeAll(keepingCapacity: frames.count <= 1024)
        framesByStream.removeAll(keepingCapacity: framesByStream.count <= 1024)
        count = 0
        answers = 0
    }

    private static func isPlainWindowUpdate(_ frame: YamuxFrameHeader) -> Bool {
        frame.type == .windowUpdate && frame.flags.isEmpty
    }

    private mutating func dropFrames(of id: YamuxStreamID, where matches: (YamuxFrameHeader) -> Bool) {
        guard let indices = framesByStream[id] else { return }
        var kept: [Int] = []
        for index in indices {
            guard let frame = frames[index] else { continue }
            if matches(frame) {
                frames[index] = nil
                count -= 1
            } else {
                kept.append(index)
            }
        }
        framesByStream[id] = kept.isEmpty ? nil : kept
    }
}
