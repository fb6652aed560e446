import Yamux

/// What a decoded capture or frame stream amounts to: streams opened, closed and reset, bytes
/// per stream, window updates, pings, Go Away. Fed one frame at a time, so it works on inputs
/// of any size.
///
/// A capture has both directions, so "closed" means FIN seen both ways. A raw frame stream has
/// one direction only, so a stream counts as finished when FIN was seen in it.
public struct TrafficSummary: Sendable {
    /// Streams are per link: two links both have a stream 1.
    public struct StreamKey: Hashable, Comparable, Sendable {
        public var link: UInt32?
        public var stream: YamuxStreamID
        public static func < (a: StreamKey, b: StreamKey) -> Bool {
            (a.link ?? 0, a.stream.rawValue) < (b.link ?? 0, b.stream.rawValue)
        }
    }

    public struct StreamStats: Hashable, Sendable {
        /// Who sent SYN: nil for a raw stream, or when the stream started before the capture.
        public var openedBy: CaptureDirection?
        public var sawSYN = false
        public var bytesIn = 0
        public var bytesOut = 0
        /// Data bytes of a raw (directionless) stream.
        public var bytes = 0
        public var finIn = false
        public var finOut = false
        public var fin = false
        public var resetBy: [String] = []
    }

    public private(set) var frames = 0
    public private(set) var framesByType: [YamuxFrameType: Int] = [:]
    public private(set) var streams: [StreamKey: StreamStats] = [:]
    public private(set) var windowUpdates = 0
    public private(set) var windowUpdatesByDirection: [CaptureDirection: Int] = [:]
    public private(set) var pingRequests = 0
    public private(set) var pingReplies = 0
    public private(set) var goAways: [String] = []
    public private(set) var links: Set<UInt32> = []
    public private(set) var firstTimestamp: UInt64?
    public private(set) var lastTimestamp: UInt64?
    /// Whether the input had directions (a capture) or not (a raw frame stream).
    public private(set) var directional = false

    public init() {}

    public mutating func add(_ frame: DecodedFrame) {
        let header = frame.header
        frames += 1
        framesByType[header.type, default: 0] += 1
        if let link = frame.link { links.insert(link) }
        if let timestamp = frame.timestamp {
            firstTimestamp = firstTimestamp ?? timestamp
            lastTimestamp = timestamp
        }
        if frame.direction != nil { directional = true }
        let from = frame.direction.map { " \($0)" } ?? ""
        switch header.type {
        case .ping:
            if header.flags.contains(.ack) { pingReplies += 1 } else { pingRequests += 1 }
            return
        case .goAway:
            let linkText = frame.link.map { "link \($0) " } ?? ""
            goAways.append(
                "\(linkText)\(frame.direction.map { "\($0): " } ?? "")code \(header.length) (\(FrameLine.goAwayName(header.length)))")
            return
        case .windowUpdate:
            windowUpdates += 1
            if let direction = frame.direction { windowUpdatesByDirection[direction, default: 0] += 1 }
        case .data:
            break
        }
        guard header.streamID != .session else { return }
        let key = StreamKey(link: frame.link, stream: header.streamID)
        var stats = streams[key] ?? StreamStats()
        if header.flags.contains(.syn) && !stats.sawSYN {
            stats.sawSYN = true
            stats.openedBy = frame.direction
        }
        if header.type == .data {
            switch frame.direction {
            case .received?: stats.bytesIn += Int(header.length)
            case .sent?: stats.bytesOut += Int(header.length)
            case nil: stats.bytes += Int(header.length)
            }
        }
        if header.flags.contains(.fin) {
            switch frame.direction {
            case .received?: stats.finIn = true
            case .sent?: stats.finOut = true
            case nil: stats.fin = true
            }
        }
        if header.flags.contains(.rst) { stats.resetBy.append(from.isEmpty ? "RST" : "RST\(from)") }
        streams[key] = stats
    }

    private func isClosed(_ stats: StreamStats) -> Bool {
        directional ? stats.finIn && stats.finOut : stats.fin
    }

    public var lines: [String] {
        var out: [String] = ["-- summary"]
        let types: [YamuxFrameType] = [.data, .windowUpdate, .ping, .goAway]
        out.append("frames: \(frames) (" + types.map { "\(framesByType[$0] ?? 0) \($0)" }.joined(separator: ", ") + ")")
        if let first = firstTimestamp, let last = lastTimestamp {
            let span = Double(last - first) / 1_000_000
            out.append("time: \(FrameLine.dateTime(first)) to \(FrameLine.dateTime(last)) (\(span) s)")
        }
        if !links.isEmpty { out.append("links: \(links.count)") }
        let opened = streams.values.filter { $0.sawSYN }.count
        let reset = streams.values.filter { !$0.resetBy.isEmpty }.count
        let closed = streams.values.filter { $0.resetBy.isEmpty && isClosed($0) }.count
        let open = streams.count - reset - closed
        if directional {
            out.append("streams: \(opened) opened, \(closed) closed (FIN both ways), \(reset) reset, \(open) still open")
        } else {
            out.append("streams: \(opened) opened, \(closed) finished (FIN), \(reset) reset, \(open) without FIN (one direction only)")
        }
        for key in streams.keys.sorted() {
            out.append("  " + describe(key, streams[key]!))
        }
        if directional {
            let inbound = windowUpdatesByDirection[.received] ?? 0
            let outbound = windowUpdatesByDirection[.sent] ?? 0
            out.append("window updates: \(windowUpdates) (\(inbound) in, \(outbound) out)")
        } else {
            out.append("window updates: \(windowUpdates)")
        }
        out.append("pings: \(pingRequests) requests, \(pingReplies) replies")
        out.append("go away: " + (goAways.isEmpty ? "none" : goAways.joined(separator: "; ")))
        return out
    }

    private func describe(_ key: StreamKey, _ stats: StreamStats) -> String {
        var parts: [String] = []
        let name = (key.link.map { "link \($0) " } ?? "") + "stream \(key.stream)"
        if directional {
            parts.append("\(stats.bytesIn) bytes in, \(stats.bytesOut) bytes out")
        } else {
            parts.append("\(stats.bytes) bytes")
        }
        if stats.sawSYN {
            parts.append(stats.openedBy.map { "opened \($0)" } ?? "opened")
        } else {
            parts.append("opened before the input starts")
        }
        if !stats.resetBy.isEmpty {
            parts.append("reset (\(stats.resetBy.joined(separator: ", ")))")
        } else if directional {
            let fins = [stats.finIn ? "FIN in" : nil, stats.finOut ? "FIN out" : nil].compactMap { $0 }
            parts.append(isClosed(stats) ? "closed (FIN both ways)" : (fins.isEmpty ? "open" : "half-closed (\(fins.joined()))"))
        } else {
            parts.append(stats.fin ? "finished (FIN)" : "no FIN")
        }
        return "\(name): " + parts.joined(separator: "; ")
    }
}
