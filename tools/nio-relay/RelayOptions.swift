import NIOCore

/// The command line, parsed by hand: the relay needs no dependency beyond NIO.
struct RelayOptions {
    var listenHost = ""
    var listenPort = 0
    var target: SocketAddress
    var threads = 1

    static let usage = "usage: nio-relay --listen HOST:PORT --target HOST:PORT [--threads N]"

    /// What went wrong with the command line, said so that the user can fix it.
    struct UsageError: Error, CustomStringConvertible {
        let description: String
    }

    init(arguments: [String]) throws {
        var listen: (String, Int)?
        var target: (String, Int)?
        var threads = 1
        var rest = arguments[...]
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else {
                throw UsageError(description: "\(flag) needs a value\n\(Self.usage)")
            }
            switch flag {
            case "--listen": listen = try Self.hostAndPort(value, flag: flag)
            case "--target": target = try Self.hostAndPort(value, flag: flag)
            case "--threads":
                guard let n = Int(value), n >= 1 else {
                    throw UsageError(description: "--threads wants a whole number ≥ 1, got '\(value)'")
                }
                threads = n
            default:
                throw UsageError(description: "unknown option '\(flag)'\n\(Self.usage)")
            }
        }
        guard let listen, let target else {
            throw UsageError(description: "both --listen and --target are required\n\(Self.usage)")
        }
        (listenHost, listenPort) = listen
        do {
            self.target = try SocketAddress.makeAddressResolvingHost(target.0, port: target.1)
        } catch {
            throw UsageError(description: "cannot resolve --target \(target.0):\(target.1): \(error)")
        }
        self.threads = threads
    }

    /// `HOST:PORT`, `[IPv6]:PORT`.
    static func hostAndPort(_ text: String, flag: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw UsageError(description: "\(flag) wants HOST:PORT (e.g. 127.0.0.1:9000), got '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }
}
