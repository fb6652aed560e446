import ServiceLifecycle

/// Runs an ``AdminServer`` in a daemon's service group. Put it first in the group: services stop
/// in reverse order, so it answers (`/readyz`: "draining") until the others have drained.
public struct AdminService: Service {
    public let server: AdminServer

    public init(server: AdminServer) {
        self.server = server
    }

    public func run() async throws {
        try await self.server.start()
        try? await gracefulShutdown()
        await self.server.stop()
    }
}
