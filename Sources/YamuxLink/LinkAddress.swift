import NIOCore
import NIOPosix
import SystemErrorText

#if canImport(Glibc)
import Glibc
#endif

/// Where a link or listener lives: `HOST:PORT` for TCP, `unix:PATH` for a Unix socket, or
/// `vsock:CID:PORT` for a virtio socket (an enclave or VM and its host: AWS Nitro Enclaves, …).
public enum LinkAddress: Hashable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)
    /// `cid`: the context id of the machine (`VMADDR_CID_ANY`, 0xFFFFFFFF, to listen on any).
    case vsock(cid: UInt32, port: UInt32)

    /// What a `vsock:` address may look like, for the errors that refuse one.
    public static let vsockForms =
        "vsock:CID:PORT with CID a number, any, host, local or hypervisor and PORT from 0 to 4294967294, e.g. vsock:16:5000 or vsock:any:5000"

    /// Parses `HOST:PORT`, `[IPv6]:PORT`, `unix:PATH` or `vsock:CID:PORT`.
    public init(parsing text: String) throws {
        if text.hasPrefix("vsock:") {
            self = try Self.parseVsock(text)
            return
        }
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw LinkAddressError(text: text, reason: "the Unix socket path is empty") }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":") else {
            throw LinkAddressError(text: text, reason: "expected HOST:PORT, unix:PATH or vsock:CID:PORT")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw LinkAddressError(text: text, reason: "the host is empty") }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw LinkAddressError(text: text, reason: "the port must be a number from 0 to 65535")
        }
        self = .tcp(host: host, port: port)
    }

    private static func parseVsock(_ text: String) throws -> LinkAddress {
        let parts = text.dropFirst("vsock:".count).split(separator: ":", omittingEmptySubsequences: false)
        func refuse(_ reason: String) -> LinkAddressError {
            LinkAddressError(text: text, reason: "\(reason); accepted: \(vsockForms)")
        }
        guard parts.count == 2 else {
            throw refuse(parts.count < 2 ? "the port is missing" : "too many ':'")
        }
        let cid: UInt32
        switch parts[0] {
        case "any": cid = VsockAddress.ContextID.any.rawValue
        case "host": cid = VsockAddress.ContextID.host.rawValue
        case "local": cid = VsockAddress.ContextID.local.rawValue
        case "hypervisor": cid = VsockAddress.ContextID.hypervisor.rawValue
        default:
            guard let number = UInt32(parts[0]) else {
                throw refuse(parts[0].isEmpty ? "the CID is missing" : "'\(parts[0])' is not a CID")
            }
            cid = number
        }
        guard !parts[1].isEmpty else { throw refuse("the port is missing") }
        // VMADDR_PORT_ANY (0xFFFFFFFF) is the kernel's "pick one", not a port to dial or to tell a peer.
        guard let port = UInt32(parts[1]), port < UInt32.max else {
            throw refuse("the port '\(parts[1])' is out of range")
        }
        return .vsock(cid: cid, port: port)
    }

    /// Resolves the address once (name resolution on every dial costs connection rate).
    public func resolve() throws -> LinkTarget {
        switch self {
        case .tcp(let host, let port):
            return .socket(try SocketAddress.makeAddressResolvingHost(host, port: port))
        case .unix(let path):
            return .socket(try SocketAddress(unixDomainSocketPath: path))
        case .vsock(let cid, let port):
            return .vsock(VsockAddress(cid: .init(rawValue: cid), port: .init(rawValue: port)))
        }
    }

    public var isUnix: Bool {
        if case .unix = self { return true }
        return false
    }

    /// TCP: the options that only TCP sockets take (TCP_NODELAY, TCP_NOTSENT_LOWAT) apply.
    public var isTCP: Bool {
        if case .tcp = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        case .vsock(let cid, let port): return "vsock:\(cid == VsockAddress.ContextID.any.rawValue ? "any" : "\(cid)"):\(port)"
        }
    }
}

/// A resolved link address, what a bootstrap connects to: NIO's `SocketAddress` (TCP, Unix) or
/// `VsockAddress` (which `SocketAddress` cannot hold).
public enum LinkTarget: Sendable, CustomStringConvertible {
    case socket(SocketAddress)
    case vsock(VsockAddress)

    public var description: String {
        switch self {
        case .socket(let address): return "\(address)"
        case .vsock(let address): return "\(address)"
        }
    }
}

extension ClientBootstrap {
    /// Connects to a TCP, Unix-socket or vsock target.
    public func connect(to target: LinkTarget) -> EventLoopFuture<Channel> {
        switch target {
        case .socket(let address): return self.connect(to: address)
        case .vsock(let address): return self.connect(to: address)
        }
    }
}

extension SocketAddress {
    /// The address as a user writes it on a command line (`127.0.0.1:3011`, `[::1]:3011`,
    /// `unix:/run/x.sock`; `unix:` for an unnamed peer) rather than NIO's
    /// `[IPv4]127.0.0.1/127.0.0.1:3011`: for log lines and status lines.
    public var commandLineForm: String {
        switch self {
        case .v4: return "\(ipAddress ?? "?"):\(port ?? 0)"
        case .v6: return "[\(ipAddress ?? "?")]:\(port ?? 0)"
        case .unixDomainSocket: return "unix:\(pathname ?? "?")"
        }
    }
}

/// A listener that could not be opened: says where, and why in words (`SystemErrorText`).
public struct LinkListenError: Error, CustomStringConvertible {
    public var address: LinkAddress
    public var underlying: any Error
    /// Another socket holds the address (EADDRINUSE).
    public var isAddressInUse: Bool { (underlying as? IOError)?.errnoCode == EADDRINUSE }
    public var description: String {
        let unixPath: String? = if case .unix(let path) = address { path } else { nil }
        return "cannot listen on \(address): \(SystemErrorText.describeBind(underlying, unixPath: unixPath))"
    }
}

/// An address on a command line that could not be understood.
public struct LinkAddressError: Error, CustomStringConvertible {
    public var text: String
    public var reason: String
    public var description: String { "invalid address '\(text)': \(reason)" }
}

extension ServerBootstrap {
    /// Binds to a TCP, Unix-socket or vsock address; TCP children get TCP_NODELAY (every listener of
    /// this project relays small messages, where Nagle's algorithm costs ~40 ms). A failure is a
    /// `LinkListenError`, which names the address.
    public func bind(to address: LinkAddress) -> EventLoopFuture<Channel> {
        let bound: EventLoopFuture<Channel>
        switch address {
        case .unix(let path):
            bound = self.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
        case .tcp(let host, let port):
            bound = self.childChannelOption(.tcpOption(.tcp_nodelay), value: 1).bind(host: host, port: port)
        case .vsock(let cid, let port):
            bound = self.bind(to: VsockAddress(cid: .init(rawValue: cid), port: .init(rawValue: port)))
        }
        return bound.flatMapErrorThrowing { error in throw LinkListenError(address: address, underlying: error) }
    }
}
