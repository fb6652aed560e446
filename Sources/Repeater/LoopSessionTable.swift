import ByteRelay
import NIOCore
import Yamux

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
    /// A session as the table keeps it: its channel, and what the status page shows of it.
    struct Entry {
        var channel: Channel
        var acceptedAt: NIODeadline
        var activity: RelayActivity?
        var log: SessionLog?
        /// The session's stream end (nil on another loop's link, or before the stream opened).
        var relay: YamuxSocketRelay?
        /// Its byte total when the status page last looked, for its rate.
        var sampled: (at: NIODeadline, bytes: Int)?
    }

    private var open: [UInt64: Entry] = [:]
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
    var channels: [Channel] { open.values.map(\.channel) }

    /// A session begins: its id.
    func add(_ channel: Channel) -> UInt64 {
        eventLoop.assertInEventLoop()
        let id = nextID
        nextID += idStride
        open[id] = Entry(channel: channel, acceptedAt: .now())
        return id
    }

    /// What the status page shows of session `id`: its counts and its log identity.
    func describe(_ id: UInt64, activity: RelayActivity, log: SessionLog) {
        open[id]?.activity = activity
        open[id]?.log = log
    }

    /// Session `id`'s stream end, once it is open.
    func attach(_ id: UInt64, relay: YamuxSocketRelay) {
        open[id]?.relay = relay
    }

    /// The sessions as the status page shows them, the busiest `limit` by bytes per second since
    /// the page last looked (each session's total is sampled here, only when asked).
    func status(now: NIODeadline, limit: Int) -> [SessionStatus] {
        var rows: [SessionStatus] = []
        rows.reserveCapacity(open.count)
        for index in open.indices {
            let (id, entry) = (open.keys[index], open.values[index])
            let bytesIn = entry.activity?.bytesFromSocket ?? 0
            let bytesOut = entry.activity?.bytesToSocket ?? 0
            var rate = 0.0
            if let sampled = entry.sampled {
                let seconds = Double((now - sampled.at).nanoseconds) / 1e9
                if seconds > 0 { rate = Double(bytesIn + bytesOut - sampled.bytes) / seconds }
            }
            open.values[index].sampled = (now, bytesIn + bytesOut)
            let windows = entry.relay.flatMap { $0.windows }
            rows.append(
                SessionStatus(
                    session: id, client: entry.log?.client.map { "\(PeerDescription(address: $0))" },
                    via: entry.log?.via.map { "\(PeerDescription(address: $0))" }, stream: entry.relay?.streamID.rawValue,
                    ageSeconds: Double((now - entry.acceptedAt).nanoseconds) / 1e9, bytesIn: bytesIn, bytesOut: bytesOut,
                    bytesPerSecond: rate, sendWindow: windows?.send, receiveWindow: windows?.receive,
                    queuedToClient: entry.relay.map { $0.queuedTowardSocket }
                        .map { $0 + ((try? entry.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0) }))
        }
        return SessionStatus.busiest(rows, limit: limit)
    }

    /// The loop's relayed byte totals when the status page last looked, for the link's rates.
    private var trafficSample: (at: NIODeadline, fromClients: Int, toClients: Int)?

    /// Bytes per second to and from this loop's clients since the page last looked (nil at the
    /// first look), and the totals sampled for the next.
    func trafficRates(now: NIODeadline, fromClients: Int, toClients: Int) -> (fromClients: Double, toClients: Double)? {
        defer { trafficSample = (now, fromClients, toClients) }
        guard let sample = trafficSample else { return nil }
        let seconds = Double((now - sample.at).nanoseconds) / 1e9
        guard seconds > 0 else { return nil }
        return (Double(fromClients - sample.fromClients) / seconds, Double(toClients - sample.toClients) / seconds)
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
        for entry in open.values { entry.channel.close(promise: nil) }
    }
}
