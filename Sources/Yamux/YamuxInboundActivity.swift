import NIOCore

/// Which streams sent small messages on the link lately, so a receiver can tell a bulk stream
/// that shares the link with an interactive one (`YamuxReceiveWindow`'s "Sharing": its window
/// then shrinks to `YamuxConfiguration.sharedStreamWindow`, so the small messages wait behind
/// little of it in the link's buffers). Bulk streams beside bulk streams are not limited: they
/// take turns at the sender, and none of them waits for a round trip per message.
///
/// Data arrives in runs, one stream's frames after another's. Only the stream of the current run
/// is kept, whether its run had a small frame, and when the last run with a small frame of
/// another stream ended. So the clock is read only when the sender changes, never per frame of
/// one stream (a bulk stream alone, or a ping-pong alone, reads no clock here).
///
/// A value without I/O, tested alone.
struct YamuxInboundActivity {
    /// A Data frame up to this size is a small message (`YamuxSendQueue.sparseQuantum`).
    static let smallFrame = YamuxSendQueue.sparseQuantum

    /// The stream of the current run.
    private(set) var latest: YamuxStreamID?
    /// The current run had a small frame.
    private var latestSentSmall = false
    /// The stream of the last finished run that had a small frame, and when that run ended.
    private var smallSender: YamuxStreamID?
    private var smallSenderLastSent: NIODeadline = .distantPast

    /// A Data frame with `length` bytes of payload arrived on `id`.
    mutating func dataArrived(on id: YamuxStreamID, length: Int, now: @autoclosure () -> NIODeadline) {
        let small = length <= Self.smallFrame
        if id == latest {
            if small { latestSentSmall = true }
            return
        }
        if latestSentSmall {
            smallSender = latest
            smallSenderLastSent = now()
        }
        latest = id
        latestSentSmall = small
    }

    /// Whether a stream other than `id` sent a small message within `horizon` before `now`. (A
    /// run of another stream that is still the latest counts however long ago it began: `id` is
    /// consuming what came before it.)
    func smallMessagesOnAnotherStream(besides id: YamuxStreamID, now: NIODeadline, within horizon: TimeAmount) -> Bool {
        if latest != id && latestSentSmall { return true }
        return smallSender != nil && smallSender != id && now - smallSenderLastSent < horizon
    }
}
