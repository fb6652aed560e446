import NIOCore

/// The client sessions of one event loop, and their drain: touched only on that loop, so an
/// accept or a close takes no lock (the loops share nothing here but what the caller counts).
///
/// Why not NIOExtras' `ServerQuiescingHelper`: it tracks the children of a server channel and
/// closes its listener itself, while a repeater's shutdown must close all of its per-loop
/// listeners *first* and then serve what they had accepted (a restart beside another repeaterd
/// drops nobody that way, README "Restarting without dropping a connection"); it also has no
/// drain timeout and would pull NIOHTTP1 (NIOExtras links it) into the relay core.
final class LoopSessionTable {
    let eventLoop: EventLoop
    /// Ids are unique over the loops without a shared counter: loop i of n hands out
    /// i+1, i+1+n, i+1+2n, …
    private var nextID: UInt64
    private let idStride: UInt64
    private var open: [UInt64: Channel] = [:]
    private var drained: EventLoopPromise<Void>?
    private var drainTimer: Scheduled<Void>?
    /// Set when the drain timeout closes what is left: those sessions' ends count as `drain`.
    private(set) var drainTimedOut = false

    init(eventLoop: EventLoop, loopIndex: Int, loopCount: Int) {
        self.eventLoop = eventLoop
        nextID = UInt64(loopIndex) + 1
        idStride = UInt64(max(loopCount, 1))
    }

    var count: Int { open.count }
    var channels: [Channel] { Array(open.values) }

    /// A session begins: its id.
    func add(_ channel: Channel) -> UInt64 {
        eventLoop.assertInEventLoop()
        let id = nextID
        nextID += idStride
        open[id] = channel
        return id
    }

    /// A session ended (its channel closed): false when it was not in the table.
    @discardableResult
    func remove(_ id: UInt64) -> Bool {
        eventLoop.assertInEventLoop()
        guard open.removeValue(forKey: id) != nil else { return false }
        if open.isEmpty, let drained {
            self.drained = nil
            drainTimer?.cancel()
            drainTimer = nil
            drained.succeed(())
        }
        return true
    }

    /// The shutdown's drain on this loop: completes when the last open session ends, or after
    /// `timeout`, when `onTimeout` is told how many are left and they are closed (each close
    /// ends its session through `remove`). Sessions added meanwhile are waited for too.
    func drain(timeout: TimeAmount, onTimeout: @escaping (Int) -> Void) -> EventLoopFuture<Void> {
        eventLoop.assertInEventLoop()
        if let drained { return drained.futureResult }
        if open.isEmpty { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        drained = promise
        let expire = NIOLoopBound({ [self] in self.drainTimeoutExpired(onTimeout) }, eventLoop: eventLoop)
        drainTimer = eventLoop.scheduleTask(in: timeout) { expire.value() }
        return promise.futureResult
    }

    private func drainTimeoutExpired(_ onTimeout: (Int) -> Void) {
        drainTimer = nil
        guard !open.isEmpty else { return }
        drainTimedOut = true
        onTimeout(open.count)
        for channel in open.values { channel.close(promise: nil) }
    }
}
