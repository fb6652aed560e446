import Logging
import Synchronization
import SystemErrorText

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where systemd (or another service manager) listens for a daemon's state: `$NOTIFY_SOCKET`,
/// a Unix datagram socket named by a path (`/run/systemd/notify`) or in the abstract namespace
/// (`@name`, whose first byte becomes NUL on the wire). See sd_notify(3).
public struct NotifySocketAddress: Equatable, Sendable {
    /// The bytes of `sun_path`, as the kernel takes them (no terminating NUL).
    public let pathBytes: [UInt8]

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    /// From `$NOTIFY_SOCKET`'s value.
    public init(parsing text: String) throws {
        var bytes = Array(text.utf8)
        guard let first = bytes.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@") else {
            throw ParseError(
                description: "NOTIFY_SOCKET '\(text)' is neither an absolute path nor '@name' (abstract); not notifying the service manager"
            )
        }
        if first == UInt8(ascii: "@") { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        // A path needs its NUL; an abstract name fills the field exactly.
        guard bytes.count <= capacity - (first == UInt8(ascii: "/") ? 1 : 0), bytes.count > 1 else {
            throw ParseError(
                description: "NOTIFY_SOCKET '\(text)' is too long or empty for a Unix socket address; not notifying the service manager")
        }
        pathBytes = bytes
    }

    /// Sends `message` as one datagram. Never blocks (`MSG_DONTWAIT`): it may be called on an event
    /// loop. Returns nil, or what went wrong (errno text).
    public func send(_ message: String) -> String? {
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return SystemErrorText.errnoText(errno) }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { field in
            field.copyBytes(from: pathBytes)
        }
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + pathBytes.count)
        let payload = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                payload.withUnsafeBytes { bytes in
                    sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), socketAddress, length)
                }
            }
        }
        return sent < 0 ? SystemErrorText.errnoText(errno) : nil
    }
}

/// Tells the service manager when the daemon is ready and when it begins to stop: systemd's
/// `Type=notify` protocol (sd_notify(3)), one datagram per state, with no library. Inert when
/// `$NOTIFY_SOCKET` is not set (not started by systemd).
///
/// `READY=1` is sent once, and never after `STOPPING=1`: a daemon asked to stop before it was
/// ready says it is stopping and nothing else. Safe to call from any thread.
public final class ServiceManagerNotifier: Sendable {
    private let address: NotifySocketAddress?
    private let logger: Logger
    private let state = Mutex((ready: false, stopping: false, failed: false))

    /// From `environment["NOTIFY_SOCKET"]`; a malformed value is logged once and ignored.
    public init(environment: [String: String], logger: Logger) {
        self.logger = logger
        guard let value = environment["NOTIFY_SOCKET"], !value.isEmpty else {
            address = nil
            return
        }
        do {
            address = try NotifySocketAddress(parsing: value)
        } catch {
            logger.warning("\(error)")
            address = nil
        }
    }

    /// The process's own environment.
    public convenience init(logger: Logger) {
        var environment: [String: String] = [:]
        if let value = getenv("NOTIFY_SOCKET") { environment["NOTIFY_SOCKET"] = String(cString: value) }
        self.init(environment: environment, logger: logger)
    }

    /// Whether a service manager is listening (`$NOTIFY_SOCKET` set and well formed).
    public var isActive: Bool { address != nil }

    /// `READY=1` with a status line, the first time only.
    public func ready(status: String) {
        let send = state.withLock { state -> Bool in
            guard !state.ready, !state.stopping else { return false }
            state.ready = true
            return true
        }
        if send { notify("READY=1\nSTATUS=\(Self.oneLine(status))") }
    }

    /// `STOPPING=1` with a status line, the first time only. `expectedDuration`, when given, asks
    /// systemd for that much more time (`EXTEND_TIMEOUT_USEC`): a drain longer than the unit's
    /// `TimeoutStopSec` is then not cut short by SIGKILL.
    public func stopping(status: String, expectedDuration microseconds: Int64? = nil) {
        let send = state.withLock { state -> Bool in
            guard !state.stopping else { return false }
            state.stopping = true
            return true
        }
        guard send else { return }
        var message = "STOPPING=1\nSTATUS=\(Self.oneLine(status))"
        if let microseconds { message += "\nEXTEND_TIMEOUT_USEC=\(microseconds)" }
        notify(message)
    }

    /// A free-form `STATUS=` line (shown by `systemctl status`).
    public func status(_ text: String) {
        notify("STATUS=\(Self.oneLine(text))")
    }

    /// The protocol is newline-separated assignments: a status (which may quote an address
    /// holding anything) must stay on its line.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }

    private func notify(_ message: String) {
        guard let address else { return }
        if let failure = address.send(message) {
            let first = state.withLock { state -> Bool in
                defer { state.failed = true }
                return !state.failed
            }
            if first { logger.warning("cannot notify the service manager at NOTIFY_SOCKET: \(failure)") }
        }
    }
}
