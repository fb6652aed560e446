import NIOCore
import Synchronization

/// What a channel received, as text: the tests' end of a relay or a stream (read after it closed).
final class ReceivedText: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let received = Mutex("")

    var text: String { received.withLock { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        received.withLock { $0 += String(buffer: bytes) }
    }
}
