import LegacyRelay
import NIOCore
import NIOHTTP1

/// The HTTP face of the old relay: collects one `POST /runtime_manager` body (bounded), hands it
/// to `LegacyHTTPRelay`, and writes the answer or the failure as `text/plain`.
///
/// Requests on a connection are handled one at a time (NIO's pipelining handler holds the next
/// one), which is all the lock-step protocol needs.
final class LegacyHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let path = "/runtime_manager"

    private enum State {
        case idle
        case receiving(HTTPRequestHead, ByteBuffer)
        /// Refused while the body still arrives; answered at its end.
        case refusing(HTTPRequestHead, LegacyRelayFailure)
        /// The body was too large: answered at once, the connection closes, the rest is ignored.
        case discarding
        case answering
    }

    private let relay: LegacyHTTPRelay
    private let maximumBodyBytes: Int
    private var state = State.idle

    init(relay: LegacyHTTPRelay, maximumBodyBytes: Int) {
        self.relay = relay
        self.maximumBodyBytes = maximumBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), _):
            let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
            if path != Self.path {
                state = .refusing(
                    head, LegacyRelayFailure(.notFound, "no such path \(path); the relay answers POST \(Self.path)"))
            } else if head.method != .POST {
                state = .refusing(
                    head, LegacyRelayFailure(.methodNotAllowed, "\(head.method) is not allowed; send POST \(Self.path)"))
            } else if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > maximumBodyBytes {
                tooLarge(context: context, head: head)
            } else {
                state = .receiving(head, context.channel.allocator.buffer(capacity: 0))
            }
        case (.body(var part), .receiving(let head, var body)):
            guard body.readableBytes + part.readableBytes <= maximumBodyBytes else {
                tooLarge(context: context, head: head)
                return
            }
            state = .idle  // drop the reference so `body` stays uniquely owned while it grows
            body.writeBuffer(&part)
            state = .receiving(head, body)
        case (.end, .receiving(let head, let body)):
            state = .answering
            relay.handle(body: body, on: context.eventLoop).hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let response):
                    var out = context.channel.allocator.buffer(capacity: response.encodedLength)
                    response.encode(into: &out)
                    self.respond(context: context, head: head, status: .ok, body: out)
                case .failure(let error):
                    let failure = error as? LegacyRelayFailure ?? LegacyRelayFailure(.unavailable, "\(error)")
                    self.respond(context: context, head: head, failure: failure)
                }
            }
        case (.end, .refusing(let head, let failure)):
            respond(context: context, head: head, failure: failure)
        case (.body, _), (.end, _):
            // Refusing or discarding: the rest of the body does not matter.
            break
        }
    }

    private func tooLarge(context: ChannelHandlerContext, head: HTTPRequestHead) {
        state = .discarding
        let failure = LegacyRelayFailure(
            .bodyTooLarge,
            "the request body is over \(maximumBodyBytes) bytes; send one TLS record (base64) per request")
        respond(context: context, head: head, failure: failure, close: true)
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, failure: LegacyRelayFailure, close: Bool = false) {
        var body = context.channel.allocator.buffer(capacity: failure.message.utf8.count + 1)
        body.writeString(failure.message)
        body.writeString("\n")
        respond(context: context, head: head, status: Self.status(failure.kind), body: body, close: close)
    }

    private func respond(
        context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, body: ByteBuffer,
        close: Bool = false
    ) {
        let keepAlive = head.isKeepAlive && !close
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.readableBytes))
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if case .discarding = state {} else { state = .idle }
        if !keepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    static func status(_ kind: LegacyRelayFailure.Kind) -> HTTPResponseStatus {
        switch kind {
        case .malformedBody: return .badRequest
        case .unknownSession, .notFound: return .notFound
        case .sessionGone: return .gone
        case .bodyTooLarge: return .payloadTooLarge
        case .methodNotAllowed: return .methodNotAllowed
        case .unavailable: return .serviceUnavailable
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent, case .idle = state {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
