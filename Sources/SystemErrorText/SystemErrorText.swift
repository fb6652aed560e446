import NIOCore
import NIOPosix
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// System errors as a user should read them: what happened, in words, without NIO's internals.
///
/// Why: NIO's `IOError` prints the syscall wrapper and a reason string meant for NIO's own
/// developers — a refused connect reads `connection reset (error set): Connection refused)
/// (errno: 111)`, a bind into a missing directory `bind(descriptor:ptr:bytes:): No such file or
/// directory) (errno: 2)`, without the path. Every binary of the project prints these through
/// here, so they read `connection refused` and `no such directory /run/x`.
public enum SystemErrorText {
    /// One phrase for `error`: the errno's text for an `IOError` or swift-system's `Errno`, the attempts of a
    /// `NIOConnectionError`, a timeout with its length; anything else as it describes itself.
    public static func describe(_ error: any Error) -> String {
        switch error {
        case let error as IOError:
            return Self.errnoText(error.errnoCode)
        case let error as Errno:
            return Self.errnoText(error.rawValue)
        case let error as NIOConnectionError:
            if let dns = error.dnsAError ?? error.dnsAAAAError {
                return "cannot resolve the host name (\(Self.describe(dns)))"
            }
            let reasons = Set(error.connectionErrors.map { Self.describe($0.error) })
            if reasons.count == 1 { return reasons.first! }
            let each = error.connectionErrors.map { "\($0.target): \(Self.describe($0.error))" }
            return each.isEmpty ? "\(error)" : each.joined(separator: "; ")
        case ChannelError.connectTimeout(let amount):
            return "timed out after \(Self.seconds(amount))"
        case let error as SocketAddressError.UnknownHost:
            return "cannot resolve the host name \(error.host) (\(error.errorDescription.lowercased()))"
        default:
            return "\(error)"
        }
    }

    /// Why binding a listener at `unixPath` (if it is a Unix socket) failed with `error`: a
    /// missing directory is named, since NIO's message does not say which path it tried.
    public static func describeBind(_ error: any Error, unixPath: String?) -> String {
        guard let io = error as? IOError else { return Self.describe(error) }
        switch io.errnoCode {
        case ENOENT where unixPath != nil:
            return "no such directory \(Self.directory(of: unixPath!))"
        case EACCES where unixPath != nil:
            return "permission denied in \(Self.directory(of: unixPath!))"
        case EADDRINUSE:
            return "address already in use (another process listens there)"
        default:
            return Self.errnoText(io.errnoCode)
        }
    }

    /// Why the file at `path` cannot be read, or nil if it can: `no such file`, `no such
    /// directory /x`, `is a directory, not a file`, `permission denied`.
    public static func whyUnreadable(_ path: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0 else {
            let code = errno
            if code == ENOENT {
                var parent = stat()
                let directory = Self.directory(of: path)
                if stat(directory, &parent) != 0 { return "no such directory \(directory)" }
                return "no such file"
            }
            return Self.errnoText(code)
        }
        if (status.st_mode & S_IFMT) == S_IFDIR { return "is a directory, not a file" }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return Self.errnoText(errno) }
        close(descriptor)
        return nil
    }

    /// `strerror`, starting in lower case as it sits mid-sentence: "connection refused".
    public static func errnoText(_ code: CInt) -> String {
        let text = String(cString: strerror(code))
        return text.prefix(1).lowercased() + text.dropFirst()
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func seconds(_ amount: TimeAmount) -> String {
        let nanoseconds = amount.nanoseconds
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000) s" }
        return "\(Double(nanoseconds) / 1e9) s"
    }
}
