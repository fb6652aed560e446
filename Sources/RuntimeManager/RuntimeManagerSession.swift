import EventSummaries
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import ProxyProtocol
import SystemErrorText
import TransportProtocol
import Yamux
import YamuxLink

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Everything a runtime-manager session needs, shared by all sessions of a
/// server whatever carries them (a direct TCP connection or a yamux stream).
public struct RuntimeManagerSessionContext: Sendable {
    public var sslContext: NIOSSLContext
    public var requestHandler: RequestHandler
    /// Largest message accepted from a client (and sent to one).
    public var maximumMessageBytes: Int
    /// A peer that has not finished the TLS handshake by then is dropped,
    /// so half-open connections and idle streams do not pile up.
    public var handshakeTimeout: TimeAmount
    /// A message that has started must keep arriving: no new byte of it for this long
    /// and the session is answered with an error and closed (a prefix then silence).
    public var messageTimeout: TimeAmount
    /// A session with no traffic either way for this long is closed (slowloris, forgotten
    /// clients); nil never closes one for silence.
    public var idleTimeout: TimeAmount?
    public var logger: Logger
    /// Called once an authorized client's request_shutdown response has been sent.
    public var onShutdownRequest: @Sendable (ClientIdentity) -> Void
    /// Open sessions, so a graceful shutdown can close them all.
    public var sessions: SessionRegistry
    /// Requests and failed handshakes, counted (swift-metrics; `--admin` exposes them).
    public var metrics = RuntimeManagerMetrics()
    /// `--accept-proxy`: each session begins with a PROXY header (from `repeaterd --send-proxy`)
    /// ahead of TLS; its address names the client in the session's log lines.
    public var acceptsProxyHeader = false
    /// `--access-log`: one info line per session when it ends (`SessionAccessRecord`), in place of
    /// the "session started" and "session ended" pair.
    public var accessLog = false
    /// Without `--access-log`: what clients made sessions end with, one summary line per 10 s at
    /// most (nil: each is only a debug line, or the access line says it).
    var sessionEvents: SessionEvents?

    public init(
        sslContext: NIOSSLContext,
        requestHandler: RequestHandler,
        maximumMessageBytes: Int = LengthPrefixFrameDecoder.defaultMaximumMessageBytes,
        handshakeTimeout: TimeAmount = .seconds(30),
        messageTimeout: TimeAmount = .seconds(30),
        idleTimeout: TimeAmount? = .seconds(300),
        logger: Logger,
        sessions: SessionRegistry = SessionRegistry(),
        onShutdownRequest: @escaping @Sendable (ClientIdentity) -> Void = { _ in }
    ) {
        self.sslContext = sslContext
        self.requestHandler = requestHandler
        self.maximumMessageBytes = maximumMessageBytes
        self.handshakeTimeout = handshakeTimeout
        self.messageTimeout = messageTimeout
        self.idleTimeout = idleTimeout
        self.logger = logger
        self.sessions = sessions
        self.onShutdownRequest = onShutdownRequest
    }
}

/// Turns any byte channel into one runtime-manager session.
///
/// Only `channel.pipeline` is used, never the socket, so the same session runs
/// on a TCP child channel (`--direct`) and on a yamux stream child channel
/// (`--listen`) alike. The pipeline is:
///
///     bytes ⇄ IdleSessionTimer (closes a session silent both ways)
///           ⇄ NIOSSLServerHandler (TLS 1.3, client cert required)
///           ⇄ PacedWriter (large responses go to TLS in slices, paced by writability)
///           ⇄ BackPressureHandler (no reading while responses cannot be written)
///           ⇄ LengthPrefixedPayloadEncoder / LengthPrefixedMessageDecoder
///           ⇄ RuntimeManagerSessionHandler (identity, policy, file store)
///
/// The session handler serializes each response itself, inline or (for a large one) on a thread
/// pool, and writes the bytes through its own context; the payload encoder below frames them.
public enum RuntimeManagerSession {
    /// Adds the session handlers to `channel`. Call it from the channel's
    /// initializer; the returned future completes once the handlers are added.
    public static func configure(channel: any Channel, context: RuntimeManagerSessionContext) -> EventLoopFuture<Void> {
        if channel.eventLoop.inEventLoop {
            return channel.eventLoop.makeCompletedFuture { try self.addHandlers(to: channel, context: context) }
        }
        return channel.eventLoop.submit { try self.addHandlers(to: channel, context: context) }
    }

    /// The session's logger: on a yamux stream, its lines name the stream and the link it came
    /// over (`link`, the name repeaterd logs too, and the repeater's address: `link_peer`); `client` is the client's address once known
    /// (a direct connection's peer, or a PROXY header's source), `identity` its certificate's.
    static func sessionLogger(for channel: any Channel, context: RuntimeManagerSessionContext) -> Logger {
        var logger = context.logger
        if let stream = channel as? YamuxStreamChannel {
            logger[metadataKey: "stream"] = .stringConvertible(stream.streamID.rawValue)
            if let link = stream.parent?.remoteAddress { logger[metadataKey: "link_peer"] = "\(link.commandLineForm)" }
            if let link = stream.linkID { logger[metadataKey: "link"] = "\(link)" }
        } else if let client = channel.remoteAddress {
            logger[metadataKey: "client"] = "\(client.commandLineForm)"
        }
        return logger
    }

    /// A TLS alert record, fatal `access_denied` (RFC 8446 6.2), sent in plaintext before the close
    /// of a session refused for its PROXY header: the client is in its handshake and reports
    /// "alert access denied" (runtime-client says the runtime manager refused it) instead of a
    /// connection closed for no reason, which through a repeater reads as a link that is down.
    static let accessDeniedAlert = ByteBuffer(bytes: [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49])

    /// The session ended on purpose before its TLS handshake (refused, or a health check): the
    /// handshake's failure that follows is no news.
    private static func endedBeforeTLS(_ channel: any Channel, cause: String, reason: String? = nil) {
        let handler = try? channel.pipeline.syncOperations.handler(type: RuntimeManagerSessionHandler.self)
        handler?.endedBeforeTLS = true
        handler?.endedBecause(cause, reason: reason)
    }

    private static func addHandlers(to channel: any Channel, context: RuntimeManagerSessionContext) throws {
        let sync = channel.pipeline.syncOperations
        let sessionLogger = Self.sessionLogger(for: channel, context: context)
        if context.acceptsProxyHeader {
            // First: TLS must not see the header, and nothing may reach TLS without one.
            let logger = sessionLogger
            try sync.addHandler(
                ProxyHeaderReceiver(refusalReply: Self.accessDeniedAlert) { outcome, channel in
                    switch outcome {
                    case .refused(let why):
                        // A client can do this at will: a debug line, and a count or the access line.
                        logger.debug("refusing session: \(why) (--accept-proxy: is the repeater started with --send-proxy?)")
                        context.sessionEvents?.record(.refusedProxyHeader, detail: "\(why)")
                        Self.endedBeforeTLS(channel, cause: SessionEvent.refusedProxyHeader.rawValue, reason: "\(why)")
                    case .header(let header) where header.command == .local:
                        logger.debug("PROXY LOCAL header (a health check): closing session")
                        Self.endedBeforeTLS(channel, cause: "health_check")
                        channel.close(promise: nil)
                    case .header:
                        break  // the session handler takes the address from `ProxyHeaderReceived`
                    }
                })
        }
        // --access-log: the stream's bytes each way, counted where they cross it.
        let record = context.accessLog ? SessionAccessRecord() : nil
        if let record { try sync.addHandler(SessionTrafficCounter(record: record)) }
        // Silence both ways (ciphertext counts) for idleTimeout ends the session.
        if let idleTimeout = context.idleTimeout { try sync.addHandler(IdleSessionTimer(timeout: idleTimeout)) }
        try sync.addHandler(NIOSSLServerHandler(context: context.sslContext))
        // Large responses reach TLS in slices, only as fast as the stream drains.
        try sync.addHandler(PacedWriter())
        // A client that sends requests without reading the answers must not make
        // responses pile up in memory: stop reading while the channel cannot write.
        try sync.addHandler(BackPressureHandler())
        try sync.addHandler(LengthPrefixedPayloadEncoder())
        try sync.addHandler(
            LengthPrefixedMessageDecoder<RuntimeManagerRequest>(
                maximumMessageBytes: context.maximumMessageBytes, stallTimeout: context.messageTimeout)
        )
        try sync.addHandler(RuntimeManagerSessionHandler(context: context, logger: sessionLogger, accessRecord: record))
    }
}

/// The last handler of a session: learns the client's identity when the TLS
/// handshake completes, answers requests in order, reports failures.
///
/// It writes each response as its serialized protobuf bytes (``LengthPrefixedPayloadEncoder``
/// frames them), so that it alone decides where serialization happens; a large file read is
/// not serialized at all but streamed (``StreamedReadResponse``).
final class RuntimeManagerSessionHandler: ChannelInboundHandler {
    typealias InboundIn = RuntimeManagerRequest
    typealias OutboundOut = LengthPrefixedPayload

    private let sessionContext: RuntimeManagerSessionContext
    private var logger: Logger
    private var identity: ClientIdentity?
    private var handshakeTimer: Scheduled<Void>?
    private var closing = false
    /// Refused for its PROXY header, or a health check: no TLS handshake was to happen.
    var endedBeforeTLS = false
    /// What the session did, for its access line (`--access-log`; nil without).
    private let accessRecord: SessionAccessRecord?

    init(context: RuntimeManagerSessionContext, logger: Logger, accessRecord: SessionAccessRecord? = nil) {
        self.sessionContext = context
        self.logger = logger
        self.accessRecord = accessRecord
    }

    /// This side ends the session, for this reason (the access line's `cause`, and `reason` in
    /// words; the first one holds).
    func endedBecause(_ cause: String, reason: String? = nil) {
        if let accessRecord, accessRecord.cause == nil {
            accessRecord.cause = cause
            accessRecord.reason = reason
        }
    }

    /// Something the client made happen, which it can do at will: a debug line, and a count for
    /// the summary line (or, with `--access-log`, nothing more: the access line says it). If it
    /// ends the session, the access line's `cause` is the event's name and `reason` its detail.
    private func clientCaused(_ event: SessionEvent, _ message: String, detail: String? = nil, endsSession: Bool = true) {
        self.logger.debug("\(message)")
        self.sessionContext.sessionEvents?.record(event, detail: detail)
        if endsSession { self.endedBecause(event.rawValue, reason: detail) }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.sessionContext.sessions.add(context.channel)
        let timeout = self.sessionContext.handshakeTimeout
        // The timer runs on this session's event loop: it may use the handler and its context.
        self.handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard self.identity == nil else { return }
            let seconds = timeout.nanoseconds / 1_000_000_000
            self.clientCaused(
                .handshakeTimeout, "TLS handshake not finished after \(seconds) s; closing session", detail: "\(seconds) s")
            self.sessionContext.metrics.handshakeFailed(reason: "timeout")
            self.close(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A put not committed leaves the stored file as it was.
        self.stagedUploads.discardAll(store: self.sessionContext.requestHandler.store)
        self.fileBody?.done.fail(ChannelError.ioOnClosedChannel)
        self.fileBody = nil
        self.handshakeTimer?.cancel()
        self.sessionContext.sessions.remove(context.channel)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let expired = event as? IdleSessionTimer.Expired {
            let seconds = expired.timeout.nanoseconds / 1_000_000_000
            self.clientCaused(.idle, "no traffic either way for \(seconds) s; closing idle session (--idle-timeout)")
            self.close(context: context)
            return
        }
        if let announced = event as? ProxyHeaderReceived, let source = announced.header.source {
            self.logger[metadataKey: "client"] = "\(source.commandLineForm)"
        }
        if case TLSUserEvent.handshakeCompleted = event {
            self.handshakeTimer?.cancel()
            do {
                guard let certificate = try context.pipeline.syncOperations.nioSSL_peerCertificate() else {
                    self.clientCaused(
                        .handshakeFailed, "TLS handshake completed without a client certificate; closing session",
                        detail: "no client certificate")
                    self.close(context: context)
                    return
                }
                let identity = try ClientIdentity(certificate: certificate)
                self.identity = identity
                self.logger[metadataKey: "identity"] = "\(identity)"
                if let accessRecord {
                    accessRecord.tlsVersion = (try? context.pipeline.syncOperations.nioSSL_tlsVersion())?.map(SessionAccessRecord.name(of:))
                } else {
                    self.logger.info("session started")
                }
            } catch {
                self.clientCaused(
                    .handshakeFailed, "cannot read the client certificate after the handshake: \(error); closing session",
                    detail: "unreadable client certificate: \(error)")
                self.close(context: context)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = self.unwrapInboundIn(data)
        guard let identity = self.identity, !self.closing else { return }
        let started = NIODeadline.now()
        let outcome = self.answerKeepingFilesWhole(request, from: identity)
        self.sessionContext.metrics.requestAnswered(
            type: Self.kind(of: request), status: outcome.response.status,
            nanoseconds: (NIODeadline.now() - started).nanoseconds)
        self.accessRecord?.counted(request: Self.kind(of: request), refusedByPolicy: outcome.response.status == .failedInvalidRole)
        self.logger.debug(
            "request answered",
            metadata: [
                "request": "\(Self.kind(of: request))", "context": "\(request.context)",
                "status": "\(outcome.response.status.protocolName)",
            ]
        )
        if outcome.response.result.data.count >= Self.offloadedSerializationBytes || self.responsesInFlight > 0 {
            self.answerInOrder(context: context, outcome: outcome, identity: identity)
        } else {
            self.write(outcome, identity: identity, context: context)
        }
    }

    // MARK: Files without holes

    /// This session's puts in progress (stage-then-commit): given back when the session ends.
    private var stagedUploads = StagedUploads()

    /// Files whose write or append failed in this session: later appends to them are refused.
    private var filesWithAFailedChunk: Set<String> = []
    /// Names the set above keeps at most; past it every append of the session is refused, so a
    /// client cannot grow it without end with failures under ever new names.
    static let maximumFilesWithAFailedChunk = 1024

    /// Answers the request, refusing an append to a file that an earlier write or append of this
    /// session failed to change.
    ///
    /// Why: a client may send a file's chunks without waiting for each answer (runtime-client's
    /// put keeps several in flight). If one chunk fails (the store is full) and a later one were
    /// accepted, the file would have a hole and still look complete. With this rule a failed
    /// chunk ends the file where it is: what is stored is exactly the chunks before it, which
    /// its hash then tells. A new write of the file starts it afresh.
    private func answerKeepingFilesWhole(_ request: RuntimeManagerRequest, from identity: ClientIdentity) -> RequestOutcome {
        switch request.messageOneof {
        case .appendFile(let file)?
        where self.filesWithAFailedChunk.contains(file.fileName)
            || self.filesWithAFailedChunk.count >= Self.maximumFilesWithAFailedChunk:
            return RequestOutcome(
                response: .failure(
                    .failedGeneric, context: request.context,
                    message: "an earlier write or append of \"\(file.fileName)\" failed in this session, so this append is refused "
                        + "(the file would have a hole); the file holds what was stored before that failure: write it again"))
        case .writeFile(let file)?:
            let outcome = self.sessionContext.requestHandler.handle(request, from: identity, uploads: &self.stagedUploads)
            if outcome.response.status == .success {
                self.filesWithAFailedChunk.remove(file.fileName)
            } else if self.filesWithAFailedChunk.count < Self.maximumFilesWithAFailedChunk {
                self.filesWithAFailedChunk.insert(file.fileName)
            }
            return outcome
        case .appendFile(let file)?:
            let outcome = self.sessionContext.requestHandler.handle(request, from: identity, uploads: &self.stagedUploads)
            if outcome.response.status != .success && self.filesWithAFailedChunk.count < Self.maximumFilesWithAFailedChunk {
                self.filesWithAFailedChunk.insert(file.fileName)
            }
            return outcome
        default:
            return self.sessionContext.requestHandler.handle(request, from: identity, uploads: &self.stagedUploads)
        }
    }

    // MARK: Streaming a file

    /// A file read being sent: its bytes (the store's own, shared, not copied) and how far.
    private struct FileBody {
        let data: Data
        var sent: Int
        let done: EventLoopPromise<Void>
    }

    /// The file response being streamed, if any; later responses wait for it (`lastResponseWritten`).
    private var fileBody: FileBody?

    /// Piece of a file handed to TLS at once: one copy of this much from the store at a time.
    static let fileSliceBytes = 256 * 1024

    /// Writes the response's head, then the file in slices, each only once the stream can take
    /// it (writability), so that neither the whole file nor its ciphertext is ever held here
    /// beyond the store's own copy. Completes when the last slice is handed on.
    private func streamFile(_ data: Data, requestContext: UInt32, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let head = StreamedReadResponse.head(context: requestContext, fileBytes: data.count, allocator: context.channel.allocator)
        context.write(self.wrapOutboundOut(.part(head)), promise: nil)
        let done = context.eventLoop.makePromise(of: Void.self)
        self.fileBody = FileBody(data: data, sent: 0, done: done)
        self.sendFileSlices(context: context)
        return done.futureResult
    }

    /// Set while `sendFileSlices` writes: a flush can change writability and call it again
    /// from inside itself, and that call must not send what the outer one is sending.
    private var sendingFileSlices = false

    private func sendFileSlices(context: ChannelHandlerContext) {
        guard !self.sendingFileSlices else { return }
        self.sendingFileSlices = true
        defer { self.sendingFileSlices = false }
        while let body = self.fileBody, body.sent < body.data.count, context.channel.isWritable, context.channel.isActive {
            let end = min(body.sent + Self.fileSliceBytes, body.data.count)
            var slice = context.channel.allocator.buffer(capacity: end - body.sent)
            let range = (body.data.startIndex + body.sent)..<(body.data.startIndex + end)
            slice.writeBytes(body.data[range])
            self.fileBody?.sent = end
            context.write(self.wrapOutboundOut(.part(slice)), promise: nil)
            context.flush()
        }
        if let body = self.fileBody, body.sent == body.data.count {
            self.fileBody = nil
            body.done.succeed(())
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.sendFileSlices(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// The file of a successful read response large enough to stream, or nil.
    private static func streamableFile(of outcome: RequestOutcome) -> Data? {
        guard outcome.response.status == .success, case .result(let result)? = outcome.response.messageOneof,
            result.data.count >= offloadedSerializationBytes
        else { return nil }
        return result.data
    }

    /// Responses carrying at least this much file data are streamed (a read), or serialized on a thread pool.
    ///
    /// Why: serializing a large response (and faulting in its pages) takes milliseconds per
    /// megabyte, and every stream of a link shares one event loop; done inline, one 256 MiB
    /// download paused every other session of its link for hundreds of milliseconds.
    static let offloadedSerializationBytes = 1 << 20

    /// Responses not yet written because an earlier one is still being serialized.
    private var responsesInFlight = 0
    /// Completes when the last queued response has been written; responses keep request order.
    private var lastResponseWritten: EventLoopFuture<Void>?

    private func answerInOrder(context: ChannelHandlerContext, outcome: RequestOutcome, identity: ClientIdentity) {
        let loop = context.eventLoop
        let previous = self.lastResponseWritten ?? loop.makeSucceededVoidFuture()
        self.responsesInFlight += 1
        let large = outcome.response.result.data.count >= Self.offloadedSerializationBytes
        if let file = Self.streamableFile(of: outcome) {
            // Nothing to serialize: the head is a few bytes, the file goes out as it is.
            let requestContext = outcome.response.context
            self.lastResponseWritten = previous.assumeIsolated().flatMap { () -> EventLoopFuture<Void> in
                self.responsesInFlight -= 1
                guard !self.closing, context.channel.isActive else { return loop.makeSucceededVoidFuture() }
                return self.streamFile(file, requestContext: requestContext, context: context)
            }.recover { _ in }.nonisolated()
            return
        }
        // Everything but the serialization itself runs on this session's event loop (isolated),
        // so the continuations may use the handler and its context.
        let written = previous.flatMap { () -> EventLoopFuture<ByteBuffer?> in
            guard large else { return loop.makeSucceededFuture(nil) }
            // One at a time: the next large response is serialized only once this one is handed on.
            return NIOThreadPool.singleton.runIfActive(eventLoop: loop) {
                try outcome.response.serializedByteBuffer()
            }.map { Optional($0) }
        }.assumeIsolated().map { (serialized: ByteBuffer?) -> Void in
            self.responsesInFlight -= 1
            guard !self.closing, context.channel.isActive else { return }
            if let payload = serialized {
                self.writeSerialized(payload, context: context)
            } else {
                self.write(outcome, identity: identity, context: context)
            }
        }.recover { error in
            self.logger.warning("could not serialize a response: \(error); closing session")
            self.close(context: context)
        }.nonisolated()
        self.lastResponseWritten = written
    }

    /// Serializes a response here, on the event loop (small ones), and writes it.
    private func write(_ outcome: RequestOutcome, identity: ClientIdentity, context: ChannelHandlerContext) {
        let payload: ByteBuffer
        do {
            payload = try outcome.response.serializedByteBuffer()
        } catch {
            self.logger.warning("could not serialize a response: \(error); closing session")
            self.close(context: context)
            return
        }
        if outcome.shutdownRequested {
            self.logger.notice("authorized shutdown requested")
            let promise = context.eventLoop.makePromise(of: Void.self)
            let onShutdown = self.sessionContext.onShutdownRequest
            promise.futureResult.whenComplete { _ in onShutdown(identity) }
            self.writeSerialized(payload, context: context, promise: promise)
        } else {
            self.writeSerialized(payload, context: context)
        }
    }

    /// Writes a serialized response through this handler's context; the payload encoder below frames it.
    private func writeSerialized(_ payload: ByteBuffer, context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        context.writeAndFlush(self.wrapOutboundOut(.message(payload)), promise: promise)
    }

    /// Serializes a response that the session sends on its own (a framing failure) and writes it.
    private func writeResponse(
        _ response: RuntimeManagerResponse, context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil
    ) {
        do {
            self.writeSerialized(try response.serializedByteBuffer(), context: context, promise: promise)
        } catch {
            promise?.fail(error)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch error {
        case let framing as TransportProtocolError:
            switch framing {
            case .messageTooLarge:
                // Tell the client why, then close: the stream can no longer be framed.
                self.clientCaused(.badRequest, "refusing message: \(framing); closing session", detail: "\(framing)")
                self.sendFailureAndClose(context: context, message: "\(framing)")
            case .stalledMessage:
                self.clientCaused(.badRequest, "\(framing); closing session", detail: "\(framing)")
                self.sendFailureAndClose(context: context, message: "\(framing)")
            case .malformedMessage:
                self.clientCaused(.malformedMessage, "\(framing)", detail: "\(framing)", endsSession: false)
                self.writeResponse(.failure(.failedInvalidRequest, context: 0, message: "\(framing)"), context: context)
            case .truncatedMessage:
                self.clientCaused(.truncatedMessage, "\(framing)", endsSession: false)
            }
        case is NIOSSLError where self.endedBeforeTLS:
            self.close(context: context)
        case let tls as NIOSSLError where self.identity == nil:
            let why = Self.describe(tls)
            self.clientCaused(.handshakeFailed, "TLS handshake failed: \(why); closing session", detail: why)
            self.sessionContext.metrics.handshakeFailed(reason: RuntimeManagerMetrics.handshakeFailureReason(tls))
            self.close(context: context)
        case NIOSSLError.uncleanShutdown:
            self.logger.debug("client closed the connection without TLS close_notify")
            self.close(context: context)
        case let yamux as YamuxError where yamux.isPeerGone:
            // The client went away (the repeater reset its stream) or the link closed: normal,
            // and the link counts it (one summary line per link, not one per session).
            self.logger.debug("session error: \(yamux); closing session")
            self.endedBecause("reset")
            self.close(context: context)
        default:
            self.clientCaused(.error, "session error: \(error); closing session", detail: "\(error)")
            self.close(context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let accessRecord {
            let metadata = accessRecord.metadata(now: .now(), draining: self.sessionContext.sessions.isClosingAll)
            self.logger.writingInfo.info("session ended", metadata: metadata)
        } else if self.identity != nil {
            self.logger.info("session ended")
        }
        context.fireChannelInactive()
    }

    private func sendFailureAndClose(context: ChannelHandlerContext, message: String) {
        guard !self.closing else { return }
        let response = RuntimeManagerResponse.failure(.failedInvalidRequest, context: 0, message: message)
        let written = context.eventLoop.makePromise(of: Void.self)
        self.writeResponse(response, context: context, promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in
            self.close(context: context)
        }
    }

    private func close(context: ChannelHandlerContext) {
        guard !self.closing else { return }
        self.closing = true
        context.close(promise: nil)
    }

    static func kind(of request: RuntimeManagerRequest) -> String {
        switch request.messageOneof {
        case .writeFile?: return "write_file"
        case .appendFile?: return "append_file"
        case .readFile?: return "read_file"
        case .requestPiHash?: return "request_pi_hash"
        case .requestPolicyHash?: return "request_policy_hash"
        case .requestShutdown?: return "request_shutdown"
        case .requestResult?: return "request_result"
        case nil: return "unknown"
        }
    }

    /// What went wrong in a handshake, in terms of the flags an operator can change,
    /// followed by BoringSSL's reason codes.
    static func describe(_ error: NIOSSLError) -> String {
        let text: String
        switch error {
        case .handshakeFailed(let inner): text = "\(inner)"
        default: text = "\(error)"
        }
        let reasons = Self.reasonCodes(text)
        let explanation: String
        if reasons.contains("CERTIFICATE_VERIFY_FAILED") {
            explanation = "the client's certificate is not issued by the CA given with --client-ca (or is expired)"
        } else if reasons.contains(where: { $0.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || $0.contains("CERTIFICATE_REQUIRED") }) {
            explanation = "the client presented no certificate; a client certificate is required"
        } else if reasons.contains(where: { $0.contains("ALERT_UNKNOWN_CA") || $0.contains("ALERT_BAD_CERTIFICATE") }) {
            explanation = "the client does not trust this runtime manager's certificate (check the client's CA file)"
        } else if reasons.contains(where: { $0.contains("WRONG_VERSION_NUMBER") || $0.contains("HTTP_REQUEST") }) {
            explanation = "the peer does not speak TLS"
        } else if reasons.contains(where: { $0.contains("UNSUPPORTED_PROTOCOL") || $0.contains("NO_SHARED_CIPHER") }) {
            explanation = "the peer does not offer TLS 1.3"
        } else if case .uncleanShutdown = error {
            explanation = "the peer closed the connection during the handshake"
        } else {
            return text
        }
        return reasons.isEmpty ? explanation : "\(explanation) (\(reasons.joined(separator: ", ")))"
    }

    /// BoringSSL's reason codes in `text` (`TLSLibraryReasons`).
    static func reasonCodes(_ text: String) -> [String] {
        TLSLibraryReasons.codes(in: text)
    }
}
