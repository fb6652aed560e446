import ByteRelay
import NIOCore
import Yamux

/// Closes the sessions of one event loop that were silent both ways for the idle timeout, with
/// one repeated task for all of them.
///
/// Why not `IdleStateHandler` per connection: it schedules a timer per connection (a heap insert
/// at accept, a cancel at close) and attaches a promise to every write to note the time, which
/// cost connection rate and per-message latency (docs/bench/NOTES.md). Here a read costs one
/// store into `RelayActivity`.
///
/// Every `timeout / sweepsPerTimeout` the sweeper looks at each session: one that saw traffic
/// since the last look starts counting again; one found quiet `sweepsPerTimeout` times in a row is
/// closed. A session is therefore closed between `timeout` and `timeout × (1 + 1/sweepsPerTimeout)`
/// after its last byte (or after it connected, if it never sent or received one).
///
/// Confined to its event loop: `add`, `remove` and `stop` must be called on it.
final class IdleSweeper {
    static let sweepsPerTimeout = 4

    private struct Session {
        var channel: Channel
        var activity: RelayActivity
        /// Told the cause ("idle") just before the sweeper closes the session.
        var closingOnPurpose: ((String) -> Void)?
        /// Consecutive looks that found no traffic.
        var quietSweeps = 0
    }

    let eventLoop: EventLoop
    let timeout: TimeAmount
    private let onIdle: (UInt64, Channel) -> Void
    private var sessions: [UInt64: Session] = [:]
    private var task: RepeatedTask?

    /// `onIdle` is called (on the loop) for each session found idle, before it is closed.
    init(eventLoop: EventLoop, timeout: TimeAmount, onIdle: @escaping (UInt64, Channel) -> Void) {
        self.eventLoop = eventLoop
        self.timeout = timeout
        self.onIdle = onIdle
    }

    var sessionCount: Int { sessions.count }

    /// `closingOnPurpose` is told why (`"idle"`) just before the session is closed, so that its
    /// end is counted under that cause rather than as its client's close.
    func add(_ id: UInt64, channel: Channel, activity: RelayActivity, closingOnPurpose: ((String) -> Void)? = nil) {
        eventLoop.assertInEventLoop()
        activity.sawTraffic = true
        sessions[id] = Session(channel: channel, activity: activity, closingOnPurpose: closingOnPurpose)
        if task == nil {
            let interval = TimeAmount.nanoseconds(max(timeout.nanoseconds / Int64(Self.sweepsPerTimeout), 1_000_000))
            // The task runs on this loop, where the sweeper lives: bound to it, not Sendable.
            let sweep = NIOLoopBound({ [weak self] in self?.sweep() }, eventLoop: eventLoop)
            task = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                sweep.value()
            }
        }
    }

    func remove(_ id: UInt64) {
        eventLoop.assertInEventLoop()
        sessions[id] = nil
    }

    func stop() {
        eventLoop.assertInEventLoop()
        task?.cancel()
        task = nil
    }

    /// One look at every session (normally run by the repeated task).
    func sweep() {
        var idle: [(UInt64, Session)] = []
        for index in sessions.indices {
            let activity = sessions.values[index].activity
            if activity.sawTraffic {
                activity.sawTraffic = false
                sessions.values[index].quietSweeps = 0
            } else {
                sessions.values[index].quietSweeps += 1
                if sessions.values[index].quietSweeps >= Self.sweepsPerTimeout {
                    idle.append((sessions.keys[index], sessions.values[index]))
                }
            }
        }
        for (id, session) in idle {
            sessions[id] = nil
            onIdle(id, session.channel)
            session.closingOnPurpose?("idle")
            session.channel.close(promise: nil)
        }
    }
}
