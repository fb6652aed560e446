import Synchronization

/// The sessions a process serves at once, over all of its front ends: repeaterd's TCP clients
/// and its old HTTP relay's sessions count against one `--max-sessions`, since each holds a
/// stream on the same links and memory in the same process.
///
/// A relaxed atomic: it orders nothing, and a limit that lets a racing session or two through a
/// moment early harms nobody; it is the one thing the event loops share on an accept.
public final class SessionLimit: Sendable {
    public let maximum: Int
    private let open = Atomic<Int>(0)

    public init(maximum: Int) {
        self.maximum = maximum
    }

    /// Takes a place for a new session: false, and nothing taken, at the limit.
    public func reserve() -> Bool {
        let before = open.wrappingAdd(1, ordering: .relaxed).oldValue
        guard before < maximum else {
            open.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Gives back the places of `count` sessions that ended.
    public func release(_ count: Int = 1) {
        open.wrappingSubtract(count, ordering: .relaxed)
    }

    /// Sessions holding a place now (any thread).
    public var count: Int { open.load(ordering: .relaxed) }
}
