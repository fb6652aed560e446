import NIOCore
import NIOPosix
import SystemErrorText

/// Where a link or listener lives: `HOST:PORT` for TCP or `unix:PATH` for a Unix socket.
public enum LinkAddress: Hashable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    /// Parses `HOST:PORT`, `[IPv6]:PORT` or `unix:PATH`.
    public init(parsing text: String) throws {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw LinkAddressError(text: text, reason: "the Unix socket path is empty") }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":") else {
            throw LinkAddressError(text: text, reason: "expected HOST:PORT or unix:PATH")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw LinkAddressError(text: text, reason: "the host is empty") }
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw LinkAddressError(text: text, reason: "the port must be a number from 0 to 65535")
        }
        self = .tcp(host: host, port: port)
    }

    /// Resolves the address once (name resolution on every dial costs connection rate).
    public func resolve() throws -> SocketAddress {
        switch self {
        case .tcp(let host, let port):
            return try SocketAddress.makeAddressResolvingHost(host, port: port)
        case .unix(let path):
            return try SocketAddress(unixDomainSocketPath: path)
        }
    }

    public var isUnix: Bool {
        if case .unix = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }
}

/// A listener that could not be opened: says where, and why in words (`SystemErrorText`).
public struct LinkListenError: Error, CustomStringConvertible {
    public var address: LinkAddress
    public var underlying: any Error
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
    /// Binds to a TCP or Unix-socket address; TCP children get TCP_NODELAY (every listener of
    /// this project relays small messages, where Nagle's algorithm costs ~40 ms). A failure is a
    /// `LinkListenError`, which names the address.
    public func bind(to address: LinkAddress) -> EventLoopFuture<Channel> {
        let bound: EventLoopFuture<Channel>
        switch address {
        case .unix(let path):
            bound = self.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
        case .tcp(let host, let port):
            bound = self.childChannelOption(.tcpOption(.tcp_nodelay), value: 1).bind(host: host, port: port)
        }
        return bound.flatMapErrorThrowing { error in throw LinkListenError(address: address, underlying: error) }
    }
}
