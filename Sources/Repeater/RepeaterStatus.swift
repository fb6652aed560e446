import JSONText
import NIOCore
import YamuxLink

/// One event loop's part of repeaterd's `/status.json`: its link and its sessions, read on the
/// loop; `document` puts the loops together.
struct LoopStatus: Sendable {
    var link: LinkStatus
    var now: NIODeadline
    var sessionCount: Int
    /// The loop's busiest sessions (already cut to the page's limit).
    var sessions: [SessionStatus]
    /// The loop's relayed bytes (the link carries them: from clients is out on the link), when
    /// counted (`--admin` counts them), and their rates since the page last looked.
    var bytesFromClients: Int?
    var bytesToClients: Int?
    var rateFromClients: Double?
    var rateToClients: Double?

    /// How many events the page gets, newest last, over all links.
    static let eventsShown = 50

    /// The link as the page shows it: "in" is what the runtime manager sent, "out" what the clients did.
    var linkJSON: JSONValue {
        .object([
            "index": .int(link.index), "state": .string(link.state.rawValue), "peer": .string(link.peer),
            "link_id": .optional(link.linkID, JSONValue.string),
            "up_seconds": .optional(link.upSince, { .double(Double((now - $0).nanoseconds) / 1e9) }),
            "rtt_ms": .optional(link.roundTripTime, { .double(Double($0.nanoseconds) / 1e6) }),
            "redials": .int(link.redials), "streams_open": .int(link.streamsOpen),
            "bytes_in": .optional(bytesToClients, JSONValue.int), "bytes_out": .optional(bytesFromClients, JSONValue.int),
            "bytes_in_per_second": .optional(rateToClients, JSONValue.double),
            "bytes_out_per_second": .optional(rateFromClients, JSONValue.double),
            "queued_bytes": .optional(link.queuedBytes, JSONValue.int), "go_away": .string(link.goAway),
            "last_failure": .optional(link.lastFailure, JSONValue.string),
        ])
    }

    static func document(
        daemon: String, version: String, draining: Bool, sessions: Int, maximumSessions: Int, loops: [LoopStatus], busiest: Int
    ) -> JSONValue {
        let shown = SessionStatus.busiest(loops.flatMap(\.sessions), limit: busiest)
        let events = loops.flatMap(\.link.events).sorted { $0.time < $1.time }.suffix(eventsShown)
        return .object([
            "daemon": .string(daemon), "version": .string(version), "draining": .bool(draining),
            "limits": .object(["sessions": .int(sessions), "max_sessions": .int(maximumSessions)]),
            "links": .array(loops.map(\.linkJSON)),
            "sessions_total": .int(loops.reduce(0) { $0 + $1.sessionCount }),
            "sessions": .array(shown.map(\.json)),
            "events": .array(events.map(\.json)),
        ])
    }
}

extension RecentLinkEvents.Event {
    var json: JSONValue {
        let seconds = Int(time.rounded(.down))
        return .object([
            "time": .string(JSONText.rfc3339(secondsSinceEpoch: seconds, microseconds: Int((time - Double(seconds)) * 1e6))),
            "link": .int(link), "event": .string(kind), "detail": .optional(detail, JSONValue.string),
        ])
    }
}
