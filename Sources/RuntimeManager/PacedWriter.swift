import NIOCore

/// Hands large plaintext writes to the TLS handler a slice at a time, and only while the
/// channel is writable.
///
/// Why: a 256 MiB read response written in one piece is encrypted by the TLS handler in one
/// event-loop turn (and held twice, as plaintext and ciphertext). Every stream of a link shares
/// that event loop, so one big download would stall every other session on the link for
/// hundreds of milliseconds, and a client that stops reading would make the runtime manager
/// hold the whole ciphertext. Sliced and paced by writability, encryption happens only as
/// fast as the stream drains, a few slices per turn, interleaved with everyone else's work.
final class PacedWriter: ChannelDuplexHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Largest piece handed to TLS at once (16 TLS records).
    static let sliceBytes = 256 * 1024
    /// Slices per event-loop turn before yielding to other channels on the loop.
    static let slicesPerTurn = 4

    private var pending = CircularBuffer<(buffer: ByteBuffer, promise: EventLoopPromise<Void>?)>()
    private var drainScheduled = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let buffer = self.unwrapOutboundIn(data)
        if self.pending.isEmpty && buffer.readableBytes <= Self.sliceBytes {
            context.write(data, promise: promise)
        } else {
            self.pending.append((buffer, promise))
        }
    }

    func flush(context: ChannelHandlerContext) {
        // What went straight through (ahead of anything pending) leaves now, even while the
        // pending slices wait for writability.
        context.flush()
        self.drain(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { self.drain(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.failPending(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.failPending(ChannelError.ioOnClosedChannel)
    }

    private func drain(context: ChannelHandlerContext) {
        var slices = 0
        while !self.pending.isEmpty && context.channel.isWritable && context.channel.isActive {
            if slices == Self.slicesPerTurn {
                self.scheduleDrain(context: context)
                return
            }
            var (buffer, promise) = self.pending.removeFirst()
            if buffer.readableBytes <= Self.sliceBytes {
                context.write(self.wrapOutboundOut(buffer), promise: promise)
            } else {
                let slice = buffer.readSlice(length: Self.sliceBytes)!
                context.write(self.wrapOutboundOut(slice), promise: nil)
                self.pending.prepend((buffer, promise))
            }
            slices += 1
            context.flush()
        }
    }

    private func scheduleDrain(context: ChannelHandlerContext) {
        guard !self.drainScheduled else { return }
        self.drainScheduled = true
        // Runs on this handler's own event loop, on a later turn: it may use the handler and its context.
        context.eventLoop.assumeIsolated().execute {
            self.drainScheduled = false
            self.drain(context: context)
        }
    }

    private func failPending(_ error: Error) {
        while let (_, promise) = self.pending.popFirst() { promise?.fail(error) }
    }
}
