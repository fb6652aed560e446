import NIOCore
import Synchronization

/// The open sessions of a server, whatever carries them.
///
/// Why: a graceful shutdown must close every session (with a TLS close_notify),
/// including sessions on yamux streams that the server did not accept itself.
/// Sessions add and remove themselves from their own event loops; the mutex makes that safe.
///
/// Why a mutex and not per-loop tables (as repeaterd's accept path has): it is taken twice per
/// TLS session, whose handshake costs three orders of magnitude more CPU than an uncontended
/// lock, and the registry cannot know the loops up front (sessions arrive on link loops and on
/// `--direct` listener loops alike).
///
/// Why not NIOExtras' `ServerQuiescingHelper`: it tracks the children of one `ServerBootstrap`'s
/// server channel, which covers only `--direct`. The sessions that matter most are streams on
/// repeaters' yamux links, child channels of a multiplexer that no server channel accepts, so
/// they would still need this table; one table for both kinds keeps one way to drain. (It would
/// also pull NIOHTTP1, which NIOExtras links, into the runtime manager.)
public final class SessionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let closingAll = Atomic<Bool>(false)

    /// The server is closing every session (a shutdown): what ends a session now is that.
    var isClosingAll: Bool { closingAll.load(ordering: .relaxed) }

    public init() {}

    func add(_ channel: any Channel) {
        self.channels.withLock { $0[ObjectIdentifier(channel)] = channel }
    }

    func remove(_ channel: any Channel) {
        _ = self.channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// How many sessions are open now.
    public var count: Int {
        self.channels.withLock { $0.count }
    }

    /// Closes every open session and waits until they are closed.
    public func closeAll() async {
        closingAll.store(true, ordering: .relaxed)
        let open = self.channels.withLock { Array($0.values) }
        // In parallel: each close waits for the peer's close_notify (or a timeout).
        await withTaskGroup(of: Void.self) { group in
            for channel in open {
                group.addTask { try? await channel.close() }
            }
        }
        // Handlers are removed a moment after the close completes; do not wait for that to count them gone.
        for channel in open {
            self.remove(channel)
        }
    }
}
