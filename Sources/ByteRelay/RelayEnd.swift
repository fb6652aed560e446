import NIOCore

/// What kind of channel a relay writes to, which decides how it ends: the far end as a value the
/// relay holds, rather than a type check on the channel.
public struct RelayEnd: Sendable {
    private enum Finish: Sendable {
        /// Wait for an empty write, then `close(mode: .output)`.
        case afterEmptyWrite
        /// Flush, then `close(mode: .output)`: the channel itself orders it after every earlier write.
        case inOrder
    }

    private let finish: Finish
    /// The outbound user event that ends the channel abruptly before it is closed (a stream's
    /// reset), if closing alone would look like a clean end.
    private let abortEvent: (any Sendable)?

    /// A socket or a pipe. A socket whose peer already half-closed turns `close(mode: .output)`
    /// into a full close that drops queued writes; so its output is closed only once an empty
    /// write has completed, which happens after every earlier one.
    public static let socket = RelayEnd(finish: .afterEmptyWrite, abortEvent: nil)

    /// A multiplexed stream channel: its FIN goes after every byte written before it, and
    /// `abortEvent` (for yamux, `YamuxStreamEvent.reset`) ends it abruptly, so that the far side
    /// does not mistake a failure for a complete message.
    public static func stream(abortEvent: any Sendable) -> RelayEnd {
        RelayEnd(finish: .inOrder, abortEvent: abortEvent)
    }

    /// Closes the output after every byte already written to it (the relay passes a FIN on).
    public func finishOutput(_ context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        switch finish {
        case .inOrder:
            // Written but not yet flushed bytes go first (a read's bytes are flushed at its read
            // complete, which an end of input need not wait for).
            context.flush()
            return context.close(mode: .output)
        case .afterEmptyWrite:
            let channel = context.channel
            return context.writeAndFlush(NIOAny(ByteBuffer())).flatMap { channel.close(mode: .output) }
        }
    }

    /// Ends the channel abruptly: the other end failed.
    public func abort(_ context: ChannelHandlerContext) {
        if let abortEvent { context.triggerUserOutboundEvent(abortEvent, promise: nil) }
        context.close(promise: nil)
    }
}
