import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How the socket of a yamux link is tuned, the same on both ends (the repeater dials, a
/// `YamuxLinkListener` accepts).
///
/// Why: the multiplexer chooses which stream's frame goes next (round-robin, one frame per turn)
/// only among frames it has not yet handed to the link channel. Whatever sits below it — NIO's
/// pending writes and the kernel's send buffer, which autotunes to several MB on loopback — is
/// one FIFO, and a small session's frame waits behind every bulk byte already in it (measured:
/// 18 ms p99 for a ping-pong beside a bulk session). So both queues are kept shallow:
/// - `TCP_NOTSENT_LOWAT`: the kernel takes more bytes, and reports the socket writable, only while
///   fewer than this many are queued unsent; bytes sent but not yet acknowledged do not count, so
///   a fast path still fills the pipe.
/// - a small write watermark: the multiplexer stops writing Data once that much is pending in
///   NIO, and the rest waits in the streams, where round-robin still decides the order.
public enum LinkSocketTuning {
    /// Unsent bytes the kernel queues on a link socket before it stops taking more.
    public static let notSentLowWatermark = 64 * 1024

    /// The link channel's outbound buffer in NIO: a few frames, enough to batch a write system call.
    public static let writeBufferWaterMark = ChannelOptions.Types.WriteBufferWaterMark(
        low: 32 * 1024, high: 64 * 1024)

    /// Reads of the link per event-loop turn (of up to 64 KiB each), as for repeaterd's clients
    /// and muxcat's targets: a bulk stream's bytes then hold the shared loop for shorter turns
    /// while a small message on another socket waits for its own. NIO's default is 4. Same-run
    /// head-of-line p99 beside bulk, 3 rounds: 1.1–1.4 ms with one read per turn against
    /// 1.8–1.9 ms with four (docs/bench/NOTES.md, issue 21).
    public static let maxMessagesPerRead: UInt = 2

    /// `TCP_NOTSENT_LOWAT` as a NIO channel option (NIO has no name for it).
    public static var notSentLowWatermarkOption: ChannelOptions.Types.SocketOption {
        ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: CInt(TCP_NOTSENT_LOWAT)))
    }
}

extension ClientBootstrap {
    /// The options of a link socket dialed to `address` (TCP_NODELAY and TCP_NOTSENT_LOWAT on TCP;
    /// the write watermark on every kind: TCP, Unix and vsock sockets).
    public func linkSocketOptions(
        for address: LinkAddress,
        writeBufferWaterMark: ChannelOptions.Types.WriteBufferWaterMark = LinkSocketTuning.writeBufferWaterMark
    ) -> ClientBootstrap {
        let bootstrap = self.channelOption(.writeBufferWaterMark, value: writeBufferWaterMark)
            .channelOption(.maxMessagesPerRead, value: LinkSocketTuning.maxMessagesPerRead)
        guard address.isTCP else { return bootstrap }
        return
            bootstrap
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(LinkSocketTuning.notSentLowWatermarkOption, value: LinkSocketTuning.notSentLowWatermark)
    }
}

extension ServerBootstrap {
    /// The options of every link socket accepted on `address` (see `LinkSocketTuning`).
    func linkSocketOptions(for address: LinkAddress) -> ServerBootstrap {
        let bootstrap = self.childChannelOption(.writeBufferWaterMark, value: LinkSocketTuning.writeBufferWaterMark)
            .childChannelOption(.maxMessagesPerRead, value: LinkSocketTuning.maxMessagesPerRead)
        guard address.isTCP else { return bootstrap }
        // TCP_NODELAY is set by `bind(to:)`.
        return bootstrap.childChannelOption(
            LinkSocketTuning.notSentLowWatermarkOption, value: LinkSocketTuning.notSentLowWatermark)
    }
}
