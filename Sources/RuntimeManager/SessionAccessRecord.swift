import Logging
import NIOCore
import NIOSSL

/// What one session did, for runtime-manager's access line (`--access-log`): counted on the
/// session's event loop, written once when it ends, in place of the "session started" and
/// "session ended" pair.
final class SessionAccessRecord {
    let startedAt = NIODeadline.now()
    /// Bytes of the session's stream each way (TLS records: what the repeater relays).
    var bytesFromClient = 0
    var bytesToClient = 0
    /// Requests answered, by type (`write_file`, `read_file`, …).
    var requests: [String: Int] = [:]
    /// Requests the policy refused.
    var refusedByPolicy = 0
    /// The TLS version negotiated (nil: the handshake did not finish).
    var tlsVersion: String?
    /// Why the session ended, when this side ended it (nil: the client, or its stream, did).
    var cause: String?
    /// What happened, in words, when this side ended it for something the client did ("certificate
    /// verify failed", "message of 80000000 bytes exceeds …").
    var reason: String?

    func counted(request kind: String, refusedByPolicy refused: Bool) {
        requests[kind, default: 0] += 1
        if refused { refusedByPolicy += 1 }
    }

    /// The line's keys beside the session logger's own (client or link_peer, link, stream, identity).
    func metadata(now: NIODeadline, draining: Bool) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "bytes_from_client": .stringConvertible(bytesFromClient),
            "bytes_to_client": .stringConvertible(bytesToClient),
            "duration_ms": .stringConvertible(max(0, (now - startedAt).nanoseconds / 1_000_000)),
            "requests": .dictionary(requests.mapValues { .stringConvertible($0) }),
            "refused": .stringConvertible(refusedByPolicy),
            "cause": "\(cause ?? (draining ? "shutdown" : "client"))",
        ]
        if let tlsVersion { metadata["tls_version"] = "\(tlsVersion)" }
        if let reason { metadata["reason"] = "\(reason)" }
        return metadata
    }

    static func name(of version: TLSVersion) -> String {
        switch version {
        case .tlsv1: return "TLSv1"
        case .tlsv11: return "TLSv1.1"
        case .tlsv12: return "TLSv1.2"
        case .tlsv13: return "TLSv1.3"
        }
    }
}

/// Counts a session's bytes each way for its access line; in the pipeline only under
/// `--access-log`, first (after a PROXY header receiver), so it sees the TLS records as they
/// cross the stream.
final class SessionTrafficCounter: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let record: SessionAccessRecord

    init(record: SessionAccessRecord) {
        self.record = record
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        record.bytesFromClient &+= unwrapInboundIn(data).readableBytes
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        record.bytesToClient &+= unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
    }
}
