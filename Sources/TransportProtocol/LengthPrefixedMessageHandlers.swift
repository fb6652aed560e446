import NIOCore
import SwiftProtobuf

/// Inbound handler: bytes in, complete protobuf messages of type `Message` out.
///
/// A thin adapter over ``LengthPrefixFrameDecoder``: each payload is parsed
/// exactly once, when complete. Framing errors (a prefix over the limit) are
/// fired down the pipeline as ``TransportProtocolError`` and the handler then
/// discards all further input, so the handler after it can still answer the
/// peer with an error status before closing. A malformed payload is also
/// reported, but framing stays intact, so the session may go on.
public final class LengthPrefixedMessageDecoder<Message: SwiftProtobuf.Message>: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Message

    /// Parses one complete payload. Replaceable so tests can count parses.
    public typealias Parse = (ByteBuffer) throws -> Message

    private var frames: LengthPrefixFrameDecoder
    private let parse: Parse
    private var failed = false
    /// Whether progress was reported for the message being received, so its completion is reported too.
    private var reportedPartialProgress = false
    private let progress: ((_ received: Int, _ expected: Int) -> Void)?
    /// How long a started message may go without a new byte (nil: forever).
    private let stallTimeout: TimeAmount?
    /// When the message being received last grew.
    private var lastProgress: NIODeadline = .now()
    /// One timer per stalled stretch, re-armed for the remainder rather than per read.
    private var stallCheck: Scheduled<Void>?

    /// - Parameters:
    ///   - maximumMessageBytes: largest accepted payload; larger prefixes are refused.
    ///   - progress: called after each read while a message is partly received
    ///     (payload bytes so far, announced size), and once more when it is
    ///     complete; for download progress bars.
    ///   - stallTimeout: once part of a message is here, the longest wait for its next byte;
    ///     then ``TransportProtocolError/stalledMessage(received:expected:seconds:)`` is fired
    ///     down the pipeline and further input is discarded. A peer that sends a prefix and then
    ///     nothing must not hold a session (and its partial buffer) forever. nil: no limit.
    ///   - parse: turns a payload into a message; defaults to protobuf binary decoding.
    public init(
        maximumMessageBytes: Int = LengthPrefixFrameDecoder.defaultMaximumMessageBytes,
        stallTimeout: TimeAmount? = nil,
        progress: ((_ received: Int, _ expected: Int) -> Void)? = nil,
        parse: @escaping Parse = { try Message(payload: $0) }
    ) {
        self.frames = LengthPrefixFrameDecoder(maximumMessageBytes: maximumMessageBytes)
        self.parse = parse
        self.progress = progress
        self.stallTimeout = stallTimeout
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.stallCheck?.cancel()
        self.stallCheck = nil
    }

    private func armStallCheck(context: ChannelHandlerContext) {
        guard let timeout = self.stallTimeout, !self.failed, self.frames.isMidMessage else { return }
        self.lastProgress = context.eventLoop.now
        guard self.stallCheck == nil else { return }
        self.scheduleStallCheck(context: context, in: timeout)
    }

    private func scheduleStallCheck(context: ChannelHandlerContext, in delay: TimeAmount) {
        // The timer runs on this handler's own event loop, so it may use the handler and its context.
        self.stallCheck = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.stallCheck = nil
            guard let timeout = self.stallTimeout, !self.failed, self.frames.isMidMessage else { return }
            let waited = context.eventLoop.now - self.lastProgress
            if waited < timeout {
                self.scheduleStallCheck(context: context, in: timeout - waited)
                return
            }
            self.failed = true
            let partial = self.frames.errorAtEndOfStream
            var received = 0
            var expected: Int?
            if case .truncatedMessage(let r, let e)? = partial { (received, expected) = (r, e) }
            context.fireErrorCaught(
                TransportProtocolError.stalledMessage(
                    received: received, expected: expected, seconds: Int(timeout.nanoseconds / 1_000_000_000)))
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.failed else { return }
        self.frames.append(self.unwrapInboundIn(data))
        while true {
            let payload: ByteBuffer?
            do {
                payload = try self.frames.nextPayload()
            } catch {
                self.failed = true
                context.fireErrorCaught(error)
                return
            }
            guard let payload else { break }
            if self.reportedPartialProgress {
                self.reportedPartialProgress = false
                self.progress?(payload.readableBytes, payload.readableBytes)
            }
            let message: Message
            do {
                message = try self.parse(payload)
            } catch {
                context.fireErrorCaught(
                    TransportProtocolError.malformedMessage(type: Message.protoMessageName, reason: "\(error)")
                )
                continue
            }
            context.fireChannelRead(self.wrapInboundOut(message))
        }
        if let progress = self.progress, let partial = self.frames.partialPayloadProgress {
            self.reportedPartialProgress = true
            progress(partial.received, partial.expected)
        }
        self.armStallCheck(context: context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.stallCheck?.cancel()
        self.stallCheck = nil
        if !self.failed, let error = self.frames.errorAtEndOfStream {
            self.failed = true
            context.fireErrorCaught(error)
        }
        context.fireChannelInactive()
    }
}

/// Outbound handler: protobuf messages in, length-prefixed bytes out.
///
/// Writes the 8-byte prefix and the serialized message as two buffers, so the
/// message bytes are not copied again to make room for the prefix.
public final class LengthPrefixedMessageEncoder<Message: SwiftProtobuf.Message>: ChannelOutboundHandler {
    public typealias OutboundIn = Message
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let message = self.unwrapOutboundIn(data)
        let payload: ByteBuffer
        do {
            payload = try message.serializedByteBuffer()
        } catch {
            promise?.fail(error)
            return
        }
        context.write(self.wrapOutboundOut(lengthPrefix(for: payload, allocator: context.channel.allocator)), promise: nil)
        context.write(self.wrapOutboundOut(payload), promise: promise)
    }
}

/// What ``LengthPrefixedPayloadEncoder`` is given: a whole serialized message to frame, or the
/// next bytes of a message streamed in parts, whose prefix (with the whole length) came first.
public enum LengthPrefixedPayload: Sendable {
    /// A whole serialized message: the encoder writes its prefix, then it.
    case message(ByteBuffer)
    /// Bytes of a streamed message, prefix included in its first part, passed on as they are
    /// (``StreamedReadResponse``: a file is sent in slices, never serialized whole).
    case part(ByteBuffer)
}

/// Outbound handler: payloads that are already serialized in, length-prefixed bytes out.
///
/// Why it exists beside ``LengthPrefixedMessageEncoder``: a handler that chooses *where* a
/// message is serialized (the runtime manager serializes a large response on a thread pool,
/// away from the event loop every stream of its link shares) writes the serialized bytes, and
/// this handler frames them exactly as the message encoder frames a message: the prefix, then
/// the payload as its own buffer, uncopied. A message streamed in parts
/// (``LengthPrefixedPayload/part(_:)``) is framed by its writer and passes through.
public final class LengthPrefixedPayloadEncoder: ChannelOutboundHandler {
    public typealias OutboundIn = LengthPrefixedPayload
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .message(let payload):
            context.write(self.wrapOutboundOut(lengthPrefix(for: payload, allocator: context.channel.allocator)), promise: nil)
            context.write(self.wrapOutboundOut(payload), promise: promise)
        case .part(let bytes):
            context.write(self.wrapOutboundOut(bytes), promise: promise)
        }
    }
}
