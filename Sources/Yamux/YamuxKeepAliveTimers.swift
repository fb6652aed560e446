import NIOCore

/// The link's two keep-alive timers: a ping every interval, and a deadline for the pings out to be
/// answered. What is sent and what an answer means is `YamuxPingTracker`'s; when to send and when
/// to give up is this type's. A value: the multiplexer holds it, calls it on the link's event loop,
/// and stops it at teardown (the tasks' closures hold the multiplexer strongly, so stopping them
/// breaks that cycle; see `YamuxMultiplexer.streamIsClosing`).
struct YamuxKeepAliveTimers {
    private var interval: RepeatedTask?
    private var deadline: Scheduled<Void>?
    /// Started once per link: a link that turns active after the handler was added must not start twice.
    private(set) var started = false

    /// Whether a deadline for unanswered pings is pending.
    var awaitsAnswers: Bool { deadline != nil }

    /// Marks the timers started; returns false if they already were (start once per link).
    mutating func markStarted() -> Bool {
        guard !started else { return false }
        started = true
        return true
    }

    /// Calls `ping` every `every`, first after one interval.
    mutating func startInterval(on loop: EventLoop, every: TimeAmount, ping: @escaping @Sendable () -> Void) {
        interval?.cancel()
        interval = loop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in ping() }
    }

    /// A ping went out: unless a deadline is already pending, `expired` runs after `timeout` unless
    /// `answered()` comes first. (A later ping does not move an earlier ping's deadline.)
    mutating func pingSent(on loop: EventLoop, timeout: TimeAmount, expired: @escaping @Sendable () -> Void) {
        guard deadline == nil else { return }
        deadline = loop.scheduleTask(in: timeout, expired)
    }

    /// The deadline's task ran (it then checks whether pings are still unanswered): the next ping
    /// sets a new one.
    mutating func deadlinePassed() {
        deadline = nil
    }

    /// Every ping out has been answered: no deadline until the next ping.
    mutating func answered() {
        deadline?.cancel()
        deadline = nil
    }

    /// The link is gone: no more pings, no deadline.
    mutating func stop() {
        interval?.cancel()
        interval = nil
        answered()
    }
}
