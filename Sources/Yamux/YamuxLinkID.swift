/// A link's name in both ends' log lines (`link=5f3a09c2`), so that an operator can follow one
/// link from repeaterd's log into runtime-manager's.
///
/// The dialing side picks it at random for each connection and sends it as the opaque value of
/// its first ping, which it writes before anything else; the accepting side takes the first
/// frame it reads, if that is a ping, as the name. Yamux has no handshake to carry a name, and
/// a ping's opaque value is the one field a peer must echo without reading it, so any yamux
/// peer (HashiCorp's Go yamux included) answers as for any ping. Socket addresses would not do:
/// a vsock or Unix-socket link has none NIO can name.
public struct YamuxLinkID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// A fresh name for a connection (never 0: pings number from 1 on a side that names nothing).
    public static func random() -> YamuxLinkID {
        var generator = SystemRandomNumberGenerator()
        return YamuxLinkID(rawValue: UInt32.random(in: 1...UInt32.max, using: &generator))
    }

    /// Eight hex digits: the same width every time, easy to grep.
    public var description: String {
        let digits = String(rawValue, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
