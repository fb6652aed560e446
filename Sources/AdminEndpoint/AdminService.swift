import Logging
import ServiceLifecycle
import YamuxLink

/// Runs an ``AdminServer`` in a daemon's service group. Put it first in the group: services stop
/// in reverse order, so it answers (`/readyz`: "draining") until the others have drained.
///
/// The server is started (bound) by the daemon before the group runs, like every listener it
/// needs: a port that is taken is one line and exit 1 before anything is served or READY is said,
/// never a failure that surfaces later while other services run on. The one exception is a
/// repeaterd restarted beside the one it replaces (`init(bindingOnceFree:)`): that one holds the
/// admin port until its drain ends, and the new one takes it then.
public struct AdminService: Service {
    public let server: AdminServer
    private let bindsOnceFree: Bool
    private let logger: Logger

    /// `server` must already be started (``AdminServer/start()``).
    public init(started server: AdminServer) {
        self.server = server
        self.bindsOnceFree = false
        self.logger = Logger(label: "admin")
    }

    /// `server`'s address is held by the process this one replaces: bind once it lets go,
    /// retrying every second, while the daemon serves its clients.
    public init(bindingOnceFree server: AdminServer, logger: Logger) {
        self.server = server
        self.bindsOnceFree = true
        self.logger = logger
    }

    public func run() async throws {
        if bindsOnceFree {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                do {
                    try await self.server.start()
                    break
                } catch let error as LinkListenError where error.isAddressInUse {
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
                } catch {
                    self.logger.error("--admin: \(error); the admin endpoint stays off")
                    break
                }
            }
        }
        try? await gracefulShutdown()
        await self.server.stop()
    }
}
