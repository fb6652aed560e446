#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The listening sockets a service manager passed at start (socket activation, sd_listen_fds(3)):
/// `$LISTEN_FDS` descriptors from 3 on, meant for this process if `$LISTEN_PID` is its pid, named
/// by `$LISTEN_FDNAMES` (colon-separated). No library: three variables and a descriptor range.
///
/// Why: systemd holds the socket across a `systemctl restart` (stop, then start), so clients that
/// connect while no repeaterd runs wait in its accept queue instead of being refused.
public struct SocketActivation: Equatable, Sendable {
    public struct Listener: Equatable, Sendable {
        public var descriptor: CInt
        /// `FileDescriptorName=` of the socket unit (systemd's default: the unit's name).
        public var name: String

        public init(descriptor: CInt, name: String) {
            self.descriptor = descriptor
            self.name = name
        }
    }

    public var listeners: [Listener]

    /// The first descriptor passed (sd_listen_fds' SD_LISTEN_FDS_START).
    public static let firstDescriptor: CInt = 3

    /// Reads the variables as sd_listen_fds(3) does: nil unless `LISTEN_PID` is `pid` and
    /// `LISTEN_FDS` a positive count. Pure (tests pass the variables).
    public static func parse(environment: [String: String], pid: pid_t) -> SocketActivation? {
        guard let owner = environment["LISTEN_PID"].flatMap({ pid_t($0) }), owner == pid,
            let count = environment["LISTEN_FDS"].flatMap({ Int($0) }), count > 0, count < 4096
        else { return nil }
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) } ?? []
        let listeners = (0..<count).map { index in
            Listener(descriptor: firstDescriptor + CInt(index), name: index < names.count ? names[index] : "unknown")
        }
        return SocketActivation(listeners: listeners)
    }

    /// This process's activation, read once: the variables are then removed (children must not
    /// take them for theirs) and the descriptors marked close-on-exec, as sd_listen_fds does.
    public static func takeFromEnvironment() -> SocketActivation? {
        var environment: [String: String] = [:]
        for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        guard let activation = parse(environment: environment, pid: getpid()) else { return nil }
        for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(key) }
        for listener in activation.listeners {
            let flags = fcntl(listener.descriptor, F_GETFD)
            if flags >= 0 { _ = fcntl(listener.descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
        return activation
    }

    /// Whether `listener` is a listening stream socket (what repeaterd can accept on).
    public static func isListeningStreamSocket(_ descriptor: CInt) -> Bool {
        var type: CInt = 0
        var accepting: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else { return false }
        length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) == 0 else { return false }
        return type == CInt(SOCK_STREAM.rawValue) && accepting != 0
    }
}
