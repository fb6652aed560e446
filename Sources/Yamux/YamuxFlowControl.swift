import NIOCore

/// The yamux flow-control constants.
public enum YamuxWindow {
    /// Every stream starts with this receive window on both sides (the spec's floor).
    public static let initial = 256 * 1024
    /// A window can never exceed 2³¹−1: a Window Update pushing past it is a protocol error.
    public static let maximum = Int(Int32.max)
}

/// How many bytes this side may still send on a stream: grows with the peer's Window Updates,
/// shrinks with every Data byte sent. Sending past it never happens.
public struct YamuxSendWindow: Hashable, Sendable {
    public private(set) var available: Int

    public init(available: Int = YamuxWindow.initial) { self.available = available }

    /// Adds a Window Update delta; a delta that overflows 2³¹−1 is the peer's protocol error.
    public mutating func increase(by delta: UInt32, stream: YamuxStreamID) throws {
        let grown = available + Int(delta)
        guard grown <= YamuxWindow.maximum else {
            throw YamuxError(.windowOverflow(stream: stream, window: UInt32(clamping: available), delta: delta))
        }
        available = grown
    }

    /// Takes up to `wanted` bytes out of the window and returns how many may be sent now.
    public mutating func take(upTo wanted: Int) -> Int {
        let granted = min(wanted, available)
        available -= granted
        return granted
    }
}

/// Decides how much the peer may send on one stream, and when to tell it it may send more.
///
/// The window is credited back only for bytes the application has consumed (delivered to the
/// stream's pipeline), so a reader that stops reading stops the peer on that stream alone, and
/// memory per stream stays bounded by the window. Updates are batched: one goes out once half of
/// the window in force has room again (as the reference implementation does; a quarter while the
/// window is held below its target), so a bulk stream sees one small frame per half window, not
/// one per read.
///
/// Auto-tuning: a fixed 256 KiB window caps a stream at window ÷ RTT. When the application drains
/// a whole target window faster than two round trips, the window is the bottleneck, so the target
/// doubles (up to `maximumTarget`) and the extra is granted in the same update.
///
/// Sharing: a window is also the most a stream can have in flight on the link ahead of another
/// stream's frame, in the link's kernel buffers and the receiver's queues, which are one FIFO. So
/// while another stream sends small messages the caller passes a smaller `limit`, and the window in force
/// shrinks to it: credit above it is withheld (a window is never taken back, only not refilled)
/// until the peer's bytes in flight drain below it. The learned target is kept, and comes back at
/// the first update after the limit is lifted.
public struct YamuxReceiveWindow: Hashable, Sendable {
    /// Bytes the peer may still send before it must wait for an update.
    public private(set) var granted: Int
    /// The window this side aims to keep open when the stream has the link to itself (grows by
    /// auto-tuning).
    public private(set) var target: Int
    /// The window in force: `target`, or the sharing limit while it applies.
    public private(set) var inForce: Int
    /// Largest target auto-tuning may reach.
    public let maximumTarget: Int
    /// Bytes received but not yet consumed by the application.
    public private(set) var buffered = 0
    private var lastUpdate: NIODeadline?

    /// Bytes received and consumed but not yet credited back to the peer (none while bytes in
    /// flight exceed a window that shrank).
    public var pendingCredit: Int { max(0, room) }
    /// What an update would grant now to bring the peer back to the window in force; negative
    /// while a shrunk window still has more than it in flight.
    private var room: Int { inForce - granted - buffered }

    public init(maximumTarget: Int = YamuxWindow.initial) {
        self.granted = YamuxWindow.initial
        self.target = YamuxWindow.initial
        self.inForce = YamuxWindow.initial
        self.maximumTarget = max(YamuxWindow.initial, min(maximumTarget, YamuxWindow.maximum))
    }

    /// Accounts for an inbound Data frame of `length` bytes; more than the window is a protocol error.
    public mutating func receive(_ length: UInt32, stream: YamuxStreamID) throws {
        guard Int(length) <= granted else {
            throw YamuxError(.receiveWindowExceeded(stream: stream, length: length, window: UInt32(granted)))
        }
        granted -= Int(length)
        buffered += Int(length)
    }

    /// The round-trip time auto-tuning assumes at least. A ping on loopback or a LAN comes back in
    /// tens of µs, but the credit loop is longer under load: the peer's event loop must get round
    /// to the Window Update, and the application here consumes in bursts (a runtime manager parses
    /// and stores an 8 MiB chunk before it reads on). With the bare ping RTT a window never grew on
    /// loopback, and a 256 MiB put through the repeater ran at 0.76× of a direct connection (whose
    /// kernel buffers take megabytes while the application is busy); with this floor, 0.82×
    /// (medians of 5, docs/bench/NOTES.md). A window still only grows while the application drains
    /// it fast, and never past `maximumTarget`.
    public static let minimumTuningRoundTrip = TimeAmount.milliseconds(4)

    /// Records that the application consumed `count` bytes. Returns the delta of a Window Update to
    /// send now, or nil while the credit is still too small to be worth a frame (or withheld).
    ///
    /// `limit` is asked only when an update is due, with the time: the window the stream may have
    /// now (`Int.max`: no limit; see "Sharing" above). `now` is read only then too.
    public mutating func consume(
        _ count: Int, now nowClock: @autoclosure () -> NIODeadline, roundTripTime: TimeAmount?,
        limit: (NIODeadline) -> Int = { _ in .max }
    ) -> UInt32? {
        buffered -= min(count, buffered)
        // A smaller limit only lowers the room and the threshold together, never below this test.
        guard room > 0, room >= updateThreshold else { return nil }
        let now = nowClock()
        let limit = max(1, limit(now))
        if limit < target {
            inForce = limit
            guard room > 0, room >= updateThreshold else { return nil }
        } else {
            if inForce == target, let rtt = roundTripTime, let last = lastUpdate, target < maximumTarget,
                now - last < max(rtt, Self.minimumTuningRoundTrip) * 2
            {
                target = min(target * 2, maximumTarget)
            }
            inForce = target
        }
        lastUpdate = now
        return grantRoom()
    }

    /// Credits received bytes straight back without the application seeing them (a stream whose
    /// reader went away still has to keep the peer moving until it closes).
    public mutating func discard(_ count: Int) -> UInt32? {
        buffered -= min(count, buffered)
        guard room > 0, room >= updateThreshold else { return nil }
        return grantRoom()
    }

    /// Room worth an update: half the window in force; a quarter while it is held below the target,
    /// so a stream kept at a small shared window is topped up before it runs dry.
    private var updateThreshold: Int { inForce < target ? inForce / 4 : inForce / 2 }

    private mutating func grantRoom() -> UInt32 {
        let delta = room
        granted += delta
        return UInt32(delta)
    }
}
