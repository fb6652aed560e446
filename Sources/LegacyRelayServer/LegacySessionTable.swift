import NIOCore

/// The old relay's sessions by id, with idle expiry. No I/O: the relay keeps one per event loop,
/// touched only on that loop, and acts on what it returns.
///
/// The old protocol has no "close": a client simply stops posting. So a session lives until it
/// has been idle (no request) for `idleTimeout`, or until the relay removes it because its stream
/// ended and the client was told. Ids are random 32-bit numbers rather than a counter, so one
/// HTTP client cannot guess another's session and steal its replies (TLS keeps them secret
/// anyway, but stealing them would still break the other session).
///
/// The table of loop i of n hands out only ids with `id % n == i`, so any loop finds a session's
/// table from its id alone, without a shared lock (it costs log2(n) bits of the id's randomness).
public struct LegacySessionTable<Session> {
    private struct Entry {
        var session: Session
        var lastUsed: NIODeadline
    }

    private var entries: [UInt32: Entry] = [:]
    /// A session without a request for this long is expired.
    public let idleTimeout: TimeAmount
    /// Sessions held at once; more are refused.
    public let capacity: Int
    /// This table's ids: `id % partitionCount == partition`.
    public let partition: UInt32
    public let partitionCount: UInt32

    public init(idleTimeout: TimeAmount, capacity: Int, partition: Int = 0, of partitionCount: Int = 1) {
        precondition(partitionCount >= 1 && (0..<partitionCount).contains(partition), "partition \(partition) of \(partitionCount)")
        self.idleTimeout = idleTimeout
        self.capacity = capacity
        self.partition = UInt32(partition)
        self.partitionCount = UInt32(partitionCount)
    }

    /// The partition (the event loop's index) whose table holds `id`.
    public static func partition(of id: UInt32, count: Int) -> Int { Int(id % UInt32(count)) }

    /// Sessions held right now.
    public var count: Int { entries.count }

    /// The table is at capacity: a new session was refused.
    public struct FullError: Error, Equatable {
        public var capacity: Int
    }

    /// Adds a session under a fresh random id (never 0, which asks for a new session).
    public mutating func insert(
        _ session: Session, now: NIODeadline, using generator: inout some RandomNumberGenerator
    ) throws(FullError) -> UInt32 {
        guard entries.count < capacity else { throw FullError(capacity: capacity) }
        var id: UInt32
        // id = k × count + partition, as large as a UInt32 allows, never 0.
        let lowestK: UInt32 = partition == 0 ? 1 : 0
        let highestK = (UInt32.max - partition) / partitionCount
        repeat {
            id = UInt32.random(in: lowestK...highestK, using: &generator) * partitionCount + partition
        } while entries[id] != nil
        entries[id] = Entry(session: session, lastUsed: now)
        return id
    }

    /// Adds a session under a fresh random id from the system's generator.
    public mutating func insert(_ session: Session, now: NIODeadline) throws(FullError) -> UInt32 {
        var generator = SystemRandomNumberGenerator()
        return try insert(session, now: now, using: &generator)
    }

    /// The session with this id, marked as used now; nil if unknown (never opened, expired or removed).
    public mutating func use(_ id: UInt32, now: NIODeadline) -> Session? {
        guard entries[id] != nil else { return nil }
        entries[id]!.lastUsed = now
        return entries[id]!.session
    }

    /// The session with this id, without touching its idle clock.
    public func peek(_ id: UInt32) -> Session? { entries[id]?.session }

    @discardableResult
    public mutating func remove(_ id: UInt32) -> Session? {
        entries.removeValue(forKey: id)?.session
    }

    /// Removes and returns every session idle for `idleTimeout` or longer at `now`.
    public mutating func expire(now: NIODeadline) -> [(id: UInt32, session: Session)] {
        let expired = entries.filter { now - $0.value.lastUsed >= idleTimeout }
        for id in expired.keys { entries[id] = nil }
        return expired.map { ($0.key, $0.value.session) }
    }

    /// Removes and returns every session (shutdown).
    public mutating func removeAll() -> [(id: UInt32, session: Session)] {
        defer { entries.removeAll() }
        return entries.map { ($0.key, $0.value.session) }
    }
}
