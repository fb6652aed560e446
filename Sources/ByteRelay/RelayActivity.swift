import NIOCore
import Synchronization

/// What a relayed session carried: whether bytes moved lately (the relay, `YamuxSocketRelay` or
/// `ChannelRelay`, sets it on every read either way; an idle sweep, repeaterd's `IdleSweeper`,
/// reads and clears it) and how many each way. Plain stored values, because they change per
/// message; confined to the session's event loop.
public final class RelayActivity {
    /// Set on every read since the sweeper last looked.
    public var sawTraffic = true
    /// Where the session's relayed bytes are totalled (its event loop's counts), if anywhere.
    public let byteCounts: RelayByteCounts?
    /// Bytes read from the session's socket (the client) and handed to it: repeaterd's access log.
    /// Plain integers, one add per socket read or delivered frame, on the session's loop.
    public private(set) var bytesFromSocket = 0
    public private(set) var bytesToSocket = 0
    /// When the peer acknowledged the session's stream (repeaterd's access log, `connect_ms`).
    public var acknowledgedAt: NIODeadline?

    public init(byteCounts: RelayByteCounts? = nil) {
        self.byteCounts = byteCounts
    }

    /// `bytes` were read from the socket, bound for the link.
    @inline(__always)
    public func readFromSocket(_ bytes: Int) {
        sawTraffic = true
        bytesFromSocket &+= bytes
        byteCounts?.addFromSocket(bytes)
    }

    /// `bytes` from the link were handed to the socket.
    @inline(__always)
    public func deliveredToSocket(_ bytes: Int) {
        sawTraffic = true
        bytesToSocket &+= bytes
        byteCounts?.addToSocket(bytes)
    }
}

/// Bytes relayed between sockets and a link, totalled for one event loop's sessions (one
/// instance per loop), read from any thread (repeaterd's `repeater_bytes_total`, summed over the
/// loops at scrape time).
///
/// Why per loop and relaxed: the add sits on the data path, once per socket read or delivered
/// frame. Only its own loop writes an instance, so the atomic add never contends across cores and
/// orders nothing (the bench's REPEATER_ADMIN path measures what it costs).
public final class RelayByteCounts: Sendable {
    private let fromSocket = Atomic<Int>(0)
    private let toSocket = Atomic<Int>(0)

    public init() {}

    /// Bytes read from the socket (the client), bound for the link.
    public func addFromSocket(_ bytes: Int) { fromSocket.wrappingAdd(bytes, ordering: .relaxed) }
    /// Bytes from the link, bound for the socket (the client).
    public func addToSocket(_ bytes: Int) { toSocket.wrappingAdd(bytes, ordering: .relaxed) }

    public var totals: (fromSocket: Int, toSocket: Int) {
        (fromSocket.load(ordering: .relaxed), toSocket.load(ordering: .relaxed))
    }
}

/// Why a relayed session ended, for the log and the metrics.
public enum RelayEndReason: Sendable, CustomStringConvertible {
    /// Both directions ended cleanly; `side` finished first (sent its FIN or closed).
    case closed(side: String)
    case error(side: String, Error)

    public var description: String {
        switch self {
        case .closed(let side): return "\(side) closed"
        case .error(let side, let error): return "\(side) failed: \(error)"
        }
    }
}
