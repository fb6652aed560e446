import NIOCore
import YamuxLink

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Whether another socket already listens where repeaterd is about to listen, checked once at
/// start so that a second repeaterd started by mistake says so.
///
/// Why it matters: on TCP repeaterd binds with `SO_REUSEPORT` (one listener per event loop, and
/// what a restart beside the old process needs), so a second repeaterd on
/// the same TCP port starts without an error and the kernel splits new clients between the two.
/// On a Unix socket NIO removes the existing socket file and binds anew, so the older process
/// silently stops receiving clients.
enum ExistingListenerProbe {
    /// What to log, or nil when nothing else listens there.
    static func warning(for address: LinkAddress, reusePort: Bool) -> String? {
        switch address {
        case .tcp(_, 0):
            return nil
        case .tcp:
            // Held by a socket that does not share (some other program): the bind itself fails
            // with "address already in use", which says it.
            guard reusePort, Self.tcpPortIsHeld(address), Self.tcpPortCanBeShared(address) else { return nil }
            return "another socket already listens on \(address): the port is shared (SO_REUSEPORT, which lets a new "
                + "repeaterd take over during a restart), so the kernel splits new clients between the processes; "
                + "this one listens only once its links are up (a restart then refuses nobody); "
                + "stop the other one unless this is a restart"
        case .unix(let path):
            guard Self.unixSocketAccepts(path) else { return nil }
            return "another process listens on \(address): its socket file is replaced, so it gets no new clients "
                + "(its open sessions go on); stop it unless this is a restart"
        case .vsock:
            // No port sharing on vsock: a second bind fails with "address already in use".
            return nil
        }
    }

    /// A plain bind (with `SO_REUSEADDR`, which ignores TIME_WAIT, but not `SO_REUSEPORT`) fails
    /// with EADDRINUSE only while a socket is bound there, in practice a listener.
    static func tcpPortIsHeld(_ address: LinkAddress) -> Bool {
        trialBind(address, reusePort: false) == EADDRINUSE
    }

    /// Whether the socket that holds the port lets this one share it: a bind with `SO_REUSEPORT`
    /// succeeds only beside sockets bound with `SO_REUSEPORT` by the same user — another repeaterd,
    /// the one a restart replaces — and fails beside a program that holds the port for itself
    /// (whose port repeaterd then cannot take: it says so and exits, rather than waiting beside it).
    static func tcpPortCanBeShared(_ address: LinkAddress) -> Bool {
        trialBind(address, reusePort: true) == 0
    }

    /// Binds a throw-away TCP socket to `address` (with `SO_REUSEADDR`, and `SO_REUSEPORT` when
    /// asked) and closes it: 0 if the bind succeeded, else its errno (-1: no socket to try with).
    private static func trialBind(_ address: LinkAddress, reusePort: Bool) -> CInt {
        guard case .socket(let resolved)? = try? address.resolve() else { return -1 }
        let descriptor = socket(resolved.protocol.rawValue, CInt(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return -1 }
        defer { close(descriptor) }
        var one: CInt = 1
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        if reusePort { _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<CInt>.size)) }
        return resolved.withSockAddr { bind(descriptor, $0, socklen_t($1)) } == 0 ? 0 : errno
    }

    /// A connect to the socket file succeeds only while a process accepts on it.
    private static func unixSocketAccepts(_ path: String) -> Bool {
        guard let resolved = try? SocketAddress(unixDomainSocketPath: path) else { return false }
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFSOCK else { return false }
        let descriptor = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return resolved.withSockAddr { connect(descriptor, $0, socklen_t($1)) } == 0
    }

    /// What to log when the kernel resets, rather than hands over, the clients waiting in the
    /// accept queue of a listener that closes: `net.ipv4.tcp_migrate_req` off (Linux's default).
    /// With it on, a repeaterd that stops during a restart passes them to the new one's listener.
    static func migrationWarning(for address: LinkAddress, setting path: String = "/proc/sys/net/ipv4/tcp_migrate_req") -> String? {
        guard case .tcp = address else { return nil }
        // Not Linux, or a kernel without the knob: nothing to say.
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var first: UInt8 = 0
        guard read(descriptor, &first, 1) == 1, first == UInt8(ascii: "0") else { return nil }
        return "net.ipv4.tcp_migrate_req is 0: when this repeaterd stops while a new one takes over its port, clients "
            + "still waiting to be accepted are reset; set it to 1 (sysctl -w net.ipv4.tcp_migrate_req=1) for restarts "
            + "that drop nobody (README, \"Restarting without dropping a connection\")"
    }
}
