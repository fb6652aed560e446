import NIOCore
import NIOHTTP1
import NIOTLS
import TransportProtocol

/// Tells `LegacyHTTPTransportHandler` whether the layers above await bytes from the runtime
/// manager, so it polls only then, as the old clients did.
public enum LegacyHTTPTransportEvent: Sendable, Equatable {
    case awaitingReply(Bool)
}

/// A relay answered with an HTTP error, or with something that is not the old relay's format.
public struct LegacyHTTPRelayError: Error, CustomStringConvertible, Sendable {
    public var status: HTTPResponseStatus?
    public var message: String

    public var description: String {
        if let status { return "the HTTP relay answered \(status.code) \(status.reasonPhrase): \(message)" }
        return "the HTTP relay's answer is not understood: \(message)"
    }
}

/// TLS over the old HTTP relay: sits *under* the TLS handler, on an HTTP/1 client connection,
/// and turns every TLS record written into one `POST /runtime_manager` (base64), waiting for the
/// answer before the next — the lock-step of the old clients. The answer's chunks are read
/// upward as TLS bytes. With nothing to send while a reply is awaited, it posts an empty poll.
///
/// Above it the pipeline is the same as over a socket, so `RuntimeClient`'s request code does not
/// know which transport it runs on. The logic is `LegacyHTTPClientState`.
public final class LegacyHTTPTransportHandler: ChannelDuplexHandler {
    public typealias InboundIn = HTTPClientResponsePart
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = HTTPClientRequestPart

    /// The relay's answers are bounded by what it holds per session (1 MiB of TLS bytes, in base64).
    static let maximumResponseBytes = 16 * 1024 * 1024

    private var state = LegacyHTTPClientState()
    private var writePromises = CircularBuffer<(end: Int, promise: EventLoopPromise<Void>)>()
    private var responseHead: HTTPResponseHead?
    private var responseBody = ByteBuffer()
    private var failure: Error?
    private let host: String

    /// - Parameter host: the relay's address, for the Host header.
    public init(host: String) { self.host = host }

    /// Makes `pipeline` an HTTP/1 client of the old relay carrying the layers added after it:
    /// the HTTP codec, then this handler. Here, so that the client module need not know HTTP.
    public static func addToPipeline(_ pipeline: ChannelPipeline.SynchronousOperations, host: String) throws {
        try pipeline.addHTTPClientHandlers()
        try pipeline.addHandler(LegacyHTTPTransportHandler(host: host))
    }

    // MARK: Outbound: ciphertext from TLS

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if let failure {
            promise?.fail(failure)
            return
        }
        let end = state.write(unwrapOutboundIn(data))
        guard let promise else { return }
        if end <= state.bytesAcknowledged {
            promise.succeed(())
        } else {
            writePromises.append((end, promise))
        }
    }

    public func flush(context: ChannelHandlerContext) {
        pump(context: context)
    }

    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard case .awaitingReply(let awaiting)? = event as? LegacyHTTPTransportEvent else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        state.awaitingReply = awaiting
        promise?.succeed(())
        pump(context: context)
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode == .all { failWrites(ChannelError.ioOnClosedChannel) }
        context.close(mode: mode, promise: promise)
    }

    private func pump(context: ChannelHandlerContext) {
        guard failure == nil, context.channel.isActive else { return }
        let payload: ByteBuffer
        switch state.next() {
        case .none: return
        case .send(let record): payload = record
        case .poll: payload = ByteBuffer()
        }
        let request = LegacyRelayRequest(sessionID: state.sessionID, payload: payload)
        var body = context.channel.allocator.buffer(capacity: 12 + Base64.encodedLength(of: payload.readableBytes))
        request.encode(into: &body)
        var headers = HTTPHeaders()
        headers.add(name: "host", value: host)
        headers.add(name: "content-type", value: "text/plain")
        headers.add(name: "content-length", value: String(body.readableBytes))
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/runtime_manager", headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    // MARK: Inbound: the relay's answers

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            responseHead = head
            responseBody.clear()
        case .body(var part):
            guard responseBody.readableBytes + part.readableBytes <= Self.maximumResponseBytes else {
                fail(context: context, LegacyHTTPRelayError(message: "an answer over \(Self.maximumResponseBytes) bytes"))
                return
            }
            responseBody.writeBuffer(&part)
        case .end:
            answered(context: context)
        }
    }

    private func answered(context: ChannelHandlerContext) {
        guard failure == nil, let head = responseHead else { return }
        responseHead = nil
        guard state.inFlight else {
            fail(context: context, LegacyHTTPRelayError(message: "an answer to no request"))
            return
        }
        guard head.status == .ok else {
            let body = String(buffer: responseBody)
            let text = String(body.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
            fail(context: context, LegacyHTTPRelayError(status: head.status, message: text.isEmpty ? "no message" : text))
            return
        }
        let chunks: [ByteBuffer]
        do {
            chunks = try state.answered(LegacyRelayResponse(parsing: responseBody))
        } catch let error as LegacyHTTPClientState.SessionMismatch {
            fail(
                context: context,
                LegacyHTTPRelayError(message: "answer for session \(error.got) while this is session \(error.expected)"))
            return
        } catch {
            fail(context: context, LegacyHTTPRelayError(message: "\(error)"))
            return
        }
        while let first = writePromises.first, first.end <= state.bytesAcknowledged {
            writePromises.removeFirst().promise.succeed(())
        }
        if !chunks.isEmpty {
            for chunk in chunks { context.fireChannelRead(wrapInboundOut(chunk)) }
            context.fireChannelReadComplete()
        }
        pump(context: context)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is HTTPParserError {
            fail(context: context, LegacyHTTPRelayError(message: "the peer does not answer in HTTP (\(error))"))
        } else {
            context.fireErrorCaught(error)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        failWrites(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    private func fail(context: ChannelHandlerContext, _ error: Error) {
        guard failure == nil else { return }
        failure = error
        failWrites(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    private func failWrites(_ error: Error) {
        while let pending = writePromises.popFirst() { pending.promise.fail(error) }
    }
}

/// Watches requests and responses above the TLS handler and tells the legacy transport whether a
/// reply is awaited: during the handshake, while a request has no response yet, and after a
/// close (TLS waits for the peer's close_notify; TLS 1.3 encrypts alerts, so the transport
/// cannot see one go by).
///
/// The signal goes down after the flush (or close) that carries the bytes, so their first
/// record is already in flight when polling starts, rather than queued behind a poll.
public final class LegacyExchangeTracker: ChannelDuplexHandler {
    public typealias InboundIn = RuntimeManagerResponse
    public typealias OutboundIn = RuntimeManagerRequest

    private var handshaking = true
    private var outstanding = 0
    private var closing = false
    private var signalled = true

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        outstanding += 1
        context.write(data, promise: promise)
    }

    public func flush(context: ChannelHandlerContext) {
        context.flush()
        signal(context: context)
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        context.close(mode: mode, promise: promise)
        closing = true
        signal(context: context)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        outstanding = max(0, outstanding - 1)
        signal(context: context)
        context.fireChannelRead(data)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            handshaking = false
            signal(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func signal(context: ChannelHandlerContext) {
        let awaiting = handshaking || outstanding > 0 || closing
        guard awaiting != signalled else { return }
        signalled = awaiting
        context.triggerUserOutboundEvent(LegacyHTTPTransportEvent.awaitingReply(awaiting), promise: nil)
    }
}
