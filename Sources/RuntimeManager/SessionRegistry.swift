import Foundation
import NIOCore

/// The open sessions of a server, whatever carries them.
///
/// Why: a graceful shutdown must close every session (with a TLS close_notify),
/// including sessions on yamux streams that the server did not accept itself.
/// Sessions add and remove themselves; the lock makes that safe from any event loop.
public final class SessionRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var channels: [ObjectIdentifier: Channel] = [:]

    public init() {}

    func add(_ channel: Channel) {
        self.lock.withLock { self.channels[ObjectIdentifier(channel)] = channel }
    }

    func remove(_ channel: Channel) {
        self.lock.withLock { _ = self.channels.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// How many sessions are open now.
    public var count: Int {
        self.lock.withLock { self.channels.count }
    }

    /// Closes every open session and waits until they are closed.
    public func closeAll() async {
        let open = self.lock.withLock { Array(self.channels.values) }
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
