import NIOCore
import Yamux

/// Echoes every byte of a stream back to its sender, and sends FIN once the echo is complete
/// after the peer's FIN (the stream channel puts FIN behind every byte already written).
///
/// It reads only while the stream can take the echo: a peer that sends faster than it reads
/// its echo is slowed down by flow control instead of growing muxcat's memory.
public final class StreamEchoHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer

    private var readHeldBack = false

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        context.fireChannelReadComplete()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            context.flush()
            context.close(mode: .output, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readHeldBack = true
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && readHeldBack {
            readHeldBack = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }
}

/// Counts a stream's bytes and reports its open and close on stderr (`-v`). It sits first in
/// the stream's pipeline, so it sees every byte the peer sent and every byte written back.
public final class StreamReporter: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var tally: StreamTally
    private let sink: OutputSink
    private let onClose: ((StreamTally) -> Void)?

    public init(tally: StreamTally, sink: OutputSink, onClose: ((StreamTally) -> Void)? = nil) {
        self.tally = tally
        self.sink = sink
        self.onClose = onClose
    }

    public func channelActive(context: ChannelHandlerContext) {
        sink.line("muxcat: \(tally.openedLine)")
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        tally.bytesIn += unwrapInboundIn(data).readableBytes
        context.fireChannelRead(data)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { tally.peerFinished = true }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        tally.failed(error)
        context.fireErrorCaught(error)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if (context.channel as? YamuxStreamChannel)?.peerFinished == true { tally.peerFinished = true }
        sink.line("muxcat: \(tally.closedLine)")
        onClose?(tally)
        context.fireChannelInactive()
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        tally.bytesOut += unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // Both an output close and a full close of a stream send FIN.
        if mode != .input { tally.finishedLocally = true }
        context.close(mode: mode, promise: promise)
    }
}

/// `muxcat listen`'s default mode: prints what arrives on a stream (see `ChunkFormatter`) and
/// answers the peer's FIN with FIN, so the stream ends cleanly.
public final class StreamPrintHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer

    private var formatter: ChunkFormatter
    private let sink: OutputSink

    public init(formatter: ChunkFormatter, sink: OutputSink) {
        self.formatter = formatter
        self.sink = sink
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A blocking write: a slow terminal slows this stream's reads, hence its sender.
        sink.write(formatter.format(unwrapInboundIn(data)))
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            context.close(mode: .output, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
