import NIOCore

/// Sits on a link channel in front of the multiplexer and copies every frame that crosses it,
/// both ways, into a capture file. It passes bytes through untouched; the re-framing is
/// `FrameReassembler`'s and the file is `CaptureFile`'s.
public final class CaptureTap: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let file: CaptureFile
    private let link: Int
    private var inbound = FrameReassembler()
    private var outbound = FrameReassembler()

    public init(file: CaptureFile, link: Int) {
        self.file = file
        self.link = link
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        record(inbound.append(unwrapInboundIn(data)), .received)
        context.fireChannelRead(data)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        file.flush()
        context.fireChannelReadComplete()
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        record(outbound.append(unwrapOutboundIn(data)), .sent)
        context.write(data, promise: promise)
    }

    public func flush(context: ChannelHandlerContext) {
        context.flush()
        file.flush()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if let rest = inbound.finish() { record([rest], .received) }
        if let rest = outbound.finish() { record([rest], .sent) }
        file.flush()
        context.fireChannelInactive()
    }

    private func record(_ pieces: [FrameReassembler.Piece], _ direction: CaptureDirection) {
        for piece in pieces {
            switch piece {
            case .frame(let bytes): file.record(direction, link: link, bytes: bytes)
            case .unframed(let bytes): file.record(direction, link: link, bytes: bytes, unframed: true)
            }
        }
    }
}
