import ByteRelay
import CoreMetrics
import Logging
import NIOCore
import NIOPosix
import Synchronization
import SystemErrorText
import Yamux

/// One long-lived yamux link from the repeater to the runtime manager, owned by one event loop.
///
/// It dials at start and redials with exponential backoff and jitter whenever the link drops.
/// While it is down, `openStream` fails at once, so a new client is closed instead of hanging;
/// when it drops, the multiplexer closes every stream on it (their TLS state lived on the far
/// side, so nothing could be resumed anyway).
///
/// Sendable: what changes (the state, the failure count, the waiters) lives in a box bound to the
/// link's event loop, which checks every access; what any thread reads is `health`, under a mutex.
public final class Link: Sendable {
    public struct Configuration: Sendable {
        public var backend: LinkAddress
        public var yamux: YamuxConfiguration
        public var connectTimeout: TimeAmount = .seconds(5)
        public var initialBackoff: TimeAmount = .milliseconds(100)
        public var maximumBackoff: TimeAmount = .seconds(5)
        /// The link's outbound buffer in NIO: small, so frames wait in their streams, where
        /// round-robin orders them, rather than in a FIFO below the multiplexer (see `LinkSocketTuning`).
        public var writeBufferWaterMark = LinkSocketTuning.writeBufferWaterMark

        public init(backend: LinkAddress, yamux: YamuxConfiguration) {
            self.backend = backend
            self.yamux = yamux
        }
    }

    private enum State {
        case idle
        case connecting
        case up(Channel, YamuxMultiplexer)
        case waitingToRedial(Scheduled<Void>)
        case stopped
    }

    /// The link's state as any thread may read it (the admin endpoint's `/readyz` and
    /// `/metrics`): written on the event loop at each change of state, never per message.
    public struct Health: Sendable, Equatable {
        public var isUp = false
        /// Why the last dial failed or the link went down, in a user's words; nil while up.
        public var lastFailure: String?
    }

    public let eventLoop: EventLoop
    public let index: Int
    private let configuration: Configuration
    private let healthBox = Mutex(Health())
    /// `repeater_link_redials_total`: dials after the first, on every link.
    private let redials = CoreMetrics.Counter(label: "repeater_link_redials_total")
    private let logger: Logger
    private let onLoop: NIOLoopBoundBox<LoopState>
    /// How a dial connects (a `ClientBootstrap` on the link's loop); tests put a stand-in here to
    /// run the redial clock on virtual time.
    private let connector: Connector
    /// The backoff's jitter, 0.5–1 (random; fixed in tests).
    private let jitter: @Sendable () -> Double

    typealias Connector = @Sendable (_ address: LinkTarget, _ link: Link) -> EventLoopFuture<Channel>

    /// What only the link's event loop reads and writes.
    private struct LoopState {
        var state: State = .idle
        var failures = 0
        var resolved: LinkTarget?
        var upWaiters: [EventLoopPromise<Void>] = []
        /// The name the dial in progress gives its connection (`YamuxLinkID`).
        var dialingID = YamuxLinkID.random()
        /// For `/status.json`: since when the link is up, its dials after the first, and what
        /// happened to it lately (changes of state only, never per message).
        var upSince: NIODeadline?
        var redialCount = 0
        var events = RecentLinkEvents()
    }

    private var state: State {
        get { onLoop.value.state }
        set { onLoop.value.state = newValue }
    }
    private var failures: Int {
        get { onLoop.value.failures }
        set { onLoop.value.failures = newValue }
    }
    private var resolved: LinkTarget? {
        get { onLoop.value.resolved }
        set { onLoop.value.resolved = newValue }
    }
    private var upWaiters: [EventLoopPromise<Void>] {
        get { onLoop.value.upWaiters }
        set { onLoop.value.upWaiters = newValue }
    }

    public convenience init(index: Int, eventLoop: EventLoop, configuration: Configuration, logger: Logger) {
        self.init(
            index: index, eventLoop: eventLoop, configuration: configuration, logger: logger,
            connector: { address, link in link.bootstrap().connect(to: address) }, jitter: { Double.random(in: 0.5...1.0) })
    }

    init(
        index: Int, eventLoop: EventLoop, configuration: Configuration, logger: Logger, connector: @escaping Connector,
        jitter: @escaping @Sendable () -> Double
    ) {
        self.connector = connector
        self.jitter = jitter
        self.index = index
        self.eventLoop = eventLoop
        var configuration = configuration
        // The repeater's link metrics (swift-metrics; no-ops unless repeaterd runs with --admin).
        let roundTrips = CoreMetrics.Timer(label: "repeater_link_rtt_seconds")
        let resetsByUs = CoreMetrics.Counter(label: "repeater_streams_reset_total", dimensions: [("by", "local")])
        let resetsByPeer = CoreMetrics.Counter(label: "repeater_streams_reset_total", dimensions: [("by", "peer")])
        configuration.yamux.events.pingAnswered = { roundTrips.recordNanoseconds($0.nanoseconds) }
        configuration.yamux.events.streamReset = { byPeer in (byPeer ? resetsByPeer : resetsByUs).increment() }
        configuration.yamux.events.countLinkFailures(as: "repeater_link_failures_total")
        self.configuration = configuration
        // `link_slot` is this link's place (one per event loop, the same across redials); `link`,
        // on the lines of a connection, is the name both ends log for it (`YamuxLinkID`).
        var logger = logger
        logger[metadataKey: "link_slot"] = .stringConvertible(index)
        self.logger = logger
        self.onLoop = NIOLoopBoundBox.makeBoxSendingValue(LoopState(), eventLoop: eventLoop)
    }

    /// Starts dialing. The returned future completes when the link is first up (or never, if the
    /// backend never answers; the link keeps retrying in the background).
    @discardableResult
    public func start() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            let promise = self.eventLoop.makePromise(of: Void.self)
            if case .up = self.state {
                promise.succeed(())
            } else {
                self.upWaiters.append(promise)
            }
            if case .idle = self.state { self.dial() }
            return promise.futureResult
        }
    }

    public var health: Health { healthBox.withLock { $0 } }

    private func setHealth(isUp: Bool, lastFailure: String?) {
        healthBox.withLock { $0 = Health(isUp: isUp, lastFailure: lastFailure) }
    }

    /// Whether the link is up right now (on the event loop; elsewhere `health.isUp`).
    public var isUp: Bool {
        if case .up = state { return true }
        return false
    }

    /// The live link channel, if any (on the event loop: checked).
    public var channel: Channel? {
        if case .up(let channel, _) = state { return channel }
        return nil
    }

    /// The multiplexer of the live link, if any (on the event loop: checked).
    public var multiplexer: YamuxMultiplexer? {
        if case .up(_, let mux) = state { return mux }
        return nil
    }

    /// The name of the connection up now (`YamuxLinkID`), for session log lines; call on the
    /// link's loop.
    public var connectedLinkID: YamuxLinkID? {
        guard case .up(_, let mux) = state else { return nil }
        return mux.linkID
    }

    /// Opens a stream on the link. Fails at once while the link is down. Call on the event loop.
    public func openStream(initializer: YamuxMultiplexer.StreamInitializer?) -> EventLoopFuture<Channel> {
        eventLoop.preconditionInEventLoop()
        guard case .up(_, let mux) = state else {
            return eventLoop.makeFailedFuture(LinkDownError(backend: configuration.backend, lastFailure: health.lastFailure))
        }
        return mux.createStream(initializer: initializer)
    }

    /// Opens a stream relayed to `socket`, a channel on this link's event loop, without a child
    /// channel (`YamuxSocketRelay`: the relay joins the socket's pipeline). Throws at once while
    /// the link is down. Call on the event loop.
    public func openRelayStream(
        to socket: Channel, socketSide: String = "client", streamSide: String = "runtime manager",
        activity: RelayActivity? = nil, preamble: ByteBuffer? = nil, onEnd: ((RelayEndReason) -> Void)? = nil
    ) throws -> YamuxSocketRelay {
        eventLoop.preconditionInEventLoop()
        guard case .up(_, let mux) = state else { throw LinkDownError(backend: configuration.backend, lastFailure: health.lastFailure) }
        return try mux.createRelayStream(
            to: socket, socketSide: socketSide, streamSide: streamSide, activity: activity, preamble: preamble, onEnd: onEnd)
    }

    /// Says Go Away on the link (no new streams), for a graceful shutdown.
    public func goAway() {
        eventLoop.execute {
            if case .up(_, let mux) = self.state {
                mux.goAway(.normal)
                self.record("go_away_sent", detail: "draining")
            }
        }
    }

    /// The link as `/status.json` shows it, read on its event loop.
    public func status() -> EventLoopFuture<LinkStatus> {
        eventLoop.submit { self.statusOnLoop() }
    }

    private func statusOnLoop() -> LinkStatus {
        let loopState = onLoop.value
        var status = LinkStatus(
            index: index, state: .down, peer: "\(configuration.backend)", upSince: loopState.upSince,
            redials: loopState.redialCount, streamsOpen: 0, goAway: "none", lastFailure: health.lastFailure,
            events: loopState.events.events)
        switch loopState.state {
        case .up(let channel, let mux):
            status.state = .up
            status.linkID = mux.linkID.map { "\($0)" }
            status.roundTripTime = mux.roundTripTime
            status.streamsOpen = mux.openStreamCount
            status.goAway = mux.goAwayStatus
            status.queuedBytes = try? channel.syncOptions?.getOption(.bufferedWritableBytes)
            status.lastFailure = nil
        case .connecting, .idle: status.state = .connecting
        case .waitingToRedial: status.state = .down
        case .stopped: status.state = .stopped
        }
        return status
    }

    /// Notes a change of the link's state for the status page (on the loop).
    private func record(_ kind: String, detail: String?) {
        onLoop.value.events.record(.init(time: WallClock.secondsSinceEpoch(), link: index, kind: kind, detail: detail))
    }

    /// Completes once the link carries no stream.
    public func drained() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            if case .up(_, let mux) = self.state { return mux.allStreamsClosed() }
            return self.eventLoop.makeSucceededVoidFuture()
        }
    }

    /// Stops redialing and closes the link.
    public func stop() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            let previous = self.state
            self.state = .stopped
            self.setHealth(isUp: false, lastFailure: "stopped")
            for waiter in self.upWaiters { waiter.fail(LinkDownError(backend: self.configuration.backend)) }
            self.upWaiters.removeAll()
            switch previous {
            case .up(let channel, _):
                return channel.close().recover { _ in }
            case .waitingToRedial(let task):
                task.cancel()
                return self.eventLoop.makeSucceededVoidFuture()
            default:
                return self.eventLoop.makeSucceededVoidFuture()
            }
        }
    }

    // MARK: Dialing

    private func dial() {
        eventLoop.preconditionInEventLoop()
        state = .connecting
        let address: LinkTarget
        do {
            if resolved == nil { resolved = try configuration.backend.resolve() }
            address = resolved!
        } catch {
            logger.error("cannot resolve backend \(configuration.backend): \(SystemErrorText.describe(error))")
            setHealth(isUp: false, lastFailure: "cannot resolve \(configuration.backend): \(SystemErrorText.describe(error))")
            scheduleRedial()
            return
        }
        onLoop.value.dialingID = YamuxLinkID.random()
        connector(address, self).whenComplete { result in
            self.connectCompleted(result)
        }
    }

    /// A dial's bootstrap: the link's socket options and a multiplexer on the new channel.
    private func bootstrap() -> ClientBootstrap {
        var named = configuration.yamux
        named.announcedLinkID = onLoop.value.dialingID
        var namedLogger = self.logger
        namedLogger[metadataKey: "link"] = "\(onLoop.value.dialingID)"
        let (yamux, logger) = (named, namedLogger)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .linkSocketOptions(for: configuration.backend, writeBufferWaterMark: configuration.writeBufferWaterMark)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        YamuxMultiplexer(configuration: yamux, logger: logger))
                }
            }
    }

    private func connectCompleted(_ result: Result<Channel, Error>) {
        guard case .connecting = state else {
            // Stopped while connecting.
            if case .success(let channel) = result { channel.close(promise: nil) }
            return
        }
        switch result {
        case .success(let channel):
            // The channel initializer added the multiplexer; a channel closed before we look has
            // lost its handlers, which counts as a failed dial.
            guard let mux = try? channel.pipeline.syncOperations.handler(type: YamuxMultiplexer.self) else {
                channel.close(promise: nil)
                connectCompleted(.failure(ChannelError.ioOnClosedChannel))
                return
            }
            failures = 0
            state = .up(channel, mux)
            setHealth(isUp: true, lastFailure: nil)
            onLoop.value.upSince = .now()
            record("up", detail: mux.linkID.map { "link \($0)" })
            mux.onGoAway = { code in self.record("go_away_received", detail: "code \(code)") }
            logger.info("link up", metadata: ["backend": "\(configuration.backend)", "link": "\(mux.linkID.map { "\($0)" } ?? "?")"])
            for waiter in upWaiters { waiter.succeed(()) }
            upWaiters.removeAll()
            channel.closeFuture.whenComplete { _ in
                self.linkClosed(channel)
            }
        case .failure(let error):
            failures += 1
            setHealth(isUp: false, lastFailure: SystemErrorText.describe(error))
            // One line per failed dial, with when the next one is: at most one every 2.5–5 s
            // once the backoff is at its cap, and each says the outage goes on.
            guard let delay = scheduleRedial() else { return }
            logger.warning(
                "cannot reach the runtime manager at \(configuration.backend): \(SystemErrorText.describe(error)); retrying with backoff in \(Self.describe(delay))",
                metadata: ["attempts": .stringConvertible(failures), "backend": "\(configuration.backend)"])
        }
    }

    private func linkClosed(_ channel: Channel) {
        guard case .up(let current, let mux) = state, current === channel else { return }
        logger.warning(
            "link to \(configuration.backend) went down; its sessions are closed; redialing",
            metadata: ["backend": "\(configuration.backend)", "link": "\(mux.linkID.map { "\($0)" } ?? "?")"])
        setHealth(isUp: false, lastFailure: "the link went down; redialing")
        onLoop.value.upSince = nil
        record("down", detail: "redialing")
        scheduleRedial()
    }

    /// Schedules the next dial; returns how long until it (nil once stopped).
    @discardableResult
    private func scheduleRedial() -> TimeAmount? {
        if case .stopped = state { return nil }
        redials.increment()
        onLoop.value.redialCount += 1
        let delay = Link.backoff(
            attempt: failures, initial: configuration.initialBackoff, maximum: configuration.maximumBackoff,
            jitter: jitter())
        state = .waitingToRedial(eventLoop.scheduleTask(in: delay) { self.dial() })
        return delay
    }

    /// `80 ms`, `1.6 s`: a backoff as a log line gives it.
    static func describe(_ delay: TimeAmount) -> String {
        let milliseconds = delay.nanoseconds / 1_000_000
        return milliseconds < 1000 ? "\(milliseconds) ms" : "\(milliseconds / 1000).\(milliseconds % 1000 / 100) s"
    }

    /// Exponential backoff with jitter: initial × 2^attempt, capped, scaled by `jitter` (0.5–1) so
    /// many repeaters that lost the same runtime manager do not redial in lockstep.
    public static func backoff(attempt: Int, initial: TimeAmount, maximum: TimeAmount, jitter: Double) -> TimeAmount {
        let exponent = min(max(attempt - 1, 0), 30)
        let raw = min(Double(initial.nanoseconds) * pow(2, Double(exponent)), Double(maximum.nanoseconds))
        return .nanoseconds(Int64(raw * jitter))
    }
}

/// A stream was asked for while the link to the runtime manager is down.
public struct LinkDownError: Error, CustomStringConvertible {
    public var backend: LinkAddress
    /// Why, as the last dial failed ("connection timed out"), when known.
    public var lastFailure: String?

    public init(backend: LinkAddress, lastFailure: String? = nil) {
        self.backend = backend
        self.lastFailure = lastFailure
    }

    public var description: String {
        "the link to the runtime manager at \(backend) is down\(lastFailure.map { " (\($0))" } ?? ""); the repeater keeps redialing"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension YamuxLinkEvents {
    /// Counts the links this side closed because of their peer in `label{reason}`
    /// (`YamuxError.metricReasons`), each counter made once.
    public mutating func countLinkFailures(as label: String) {
        let counters = Dictionary(
            uniqueKeysWithValues: YamuxError.metricReasons.map { ($0, CoreMetrics.Counter(label: label, dimensions: [("reason", $0)])) })
        linkFailed = { reason in counters[reason]?.increment() }
    }
}
