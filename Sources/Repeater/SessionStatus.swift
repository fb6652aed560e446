import JSONText

/// One client session as repeaterd's `/status.json` shows it: read on the session's event loop
/// when the page asks, from what the session keeps anyway (its `RelayActivity`, its log
/// identity, its stream's windows).
struct SessionStatus: Sendable, Equatable {
    var session: UInt64
    /// The client: the socket's peer, or the address its PROXY header announced.
    var client: String?
    /// The balancer it came through (`--accept-proxy`).
    var via: String?
    /// The link (event loop) serving it, filled in by the caller.
    var link: Int?
    var stream: UInt32?
    var ageSeconds: Double
    /// Bytes from the client (to the runtime manager) and to it.
    var bytesIn: Int
    var bytesOut: Int
    /// Both ways, since the page last looked (0 at the first look).
    var bytesPerSecond: Double
    var sendWindow: Int?
    var receiveWindow: Int?
    /// Bytes from the link not yet taken by the client's socket.
    var queuedToClient: Int?

    /// The `limit` busiest sessions, by bytes per second, then by bytes moved, then oldest first:
    /// a page of them, whatever the number of sessions.
    static func busiest(_ sessions: [SessionStatus], limit: Int) -> [SessionStatus] {
        let ordered = sessions.sorted {
            if $0.bytesPerSecond != $1.bytesPerSecond { return $0.bytesPerSecond > $1.bytesPerSecond }
            if $0.bytesIn + $0.bytesOut != $1.bytesIn + $1.bytesOut { return $0.bytesIn + $0.bytesOut > $1.bytesIn + $1.bytesOut }
            return $0.session < $1.session
        }
        return Array(ordered.prefix(limit))
    }

    var json: JSONValue {
        .object([
            "session": .int(Int(truncatingIfNeeded: session)), "client": .optional(client, JSONValue.string),
            "via": .optional(via, JSONValue.string), "link": .optional(link, JSONValue.int),
            "stream": .optional(stream.map(Int.init), JSONValue.int), "age_seconds": .double(ageSeconds),
            "bytes_in": .int(bytesIn), "bytes_out": .int(bytesOut), "bytes_per_second": .double(bytesPerSecond),
            "send_window": .optional(sendWindow, JSONValue.int), "receive_window": .optional(receiveWindow, JSONValue.int),
            "queued_to_client": .optional(queuedToClient, JSONValue.int),
        ])
    }
}
