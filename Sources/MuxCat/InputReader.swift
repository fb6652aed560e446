import NIOCore
import NIOPosix
import Synchronization
import SystemErrorText

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads `muxcat connect`'s stdin on its event loop and hands each chunk to `feed`, one at a
/// time: the next chunk is read only once `feed`'s future for the last one has completed, so a
/// slow peer slows the reader down. `feed` failing (no stream is left to take the bytes) stops
/// the reading; at the end of the input `finished` is called once.
///
/// How depends on what stdin is:
/// - a pipe, a socket or a terminal: a `NIOPipeBootstrap` channel, read when epoll says so, and
///   closed (so the read ends) when every stream is done before stdin is;
/// - anything else — a regular file (`muxcat connect < file`), which epoll refuses (and NIO's pipe
///   bootstrap with it), or a device such as `/dev/null` or `/dev/zero` — `NonBlockingFileIO` on
///   NIO's thread pool: reading such a descriptor never waits for anybody, so a read in flight
///   when muxcat finishes ends by itself.
///
/// The channel reads a duplicate of the descriptor, so the descriptor itself stays open, and gets
/// its flags back at the end: NIO makes its descriptor non-blocking, a flag of the open file that
/// a terminal shares with the shell and with stdout and stderr.
final class InputReader: Sendable {
    private enum Source {
        case channel(Channel, restoringFlagsOf: CInt, flags: CInt)
        case file(NIOFileHandle, done: EventLoopFuture<Void>)
        case none
    }

    private let source: Mutex<Source>
    private let stopped = Mutex(false)

    private init(source: Source) {
        self.source = Mutex(source)
    }

    /// Starts reading `descriptor` (which stays open; it is read through a duplicate).
    static func start(
        descriptor: CInt, eventLoop: EventLoop,
        feed: @escaping @Sendable (ByteBuffer) -> EventLoopFuture<Void>,
        finished: @escaping @Sendable () -> Void
    ) async throws -> InputReader {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            // No stdin at all (`<&-`): an empty input.
            finished()
            return InputReader(source: .none)
        }
        let duplicate = dup(descriptor)
        guard duplicate >= 0 else { throw MuxCatError("cannot read stdin: dup: \(SystemErrorText.errnoText(errno))") }
        _ = fcntl(duplicate, F_SETFD, FD_CLOEXEC)

        let type = status.st_mode & S_IFMT
        if type == S_IFIFO || type == S_IFSOCK || isatty(descriptor) == 1 {
            let flags = fcntl(descriptor, F_GETFL)
            let channel: Channel
            do {
                channel = try await NIOPipeBootstrap(group: eventLoop)
                    .channelOption(.allowRemoteHalfClosure, value: true)
                    .channelOption(.autoRead, value: false)
                    .channelOption(.maxMessagesPerRead, value: 1)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(PumpHandler(feed: feed, finished: finished))
                        }
                    }
                    .takingOwnershipOfDescriptor(input: duplicate)
                    .get()
            } catch {
                close(duplicate)
                throw MuxCatError("cannot read stdin: \(error)")
            }
            return InputReader(source: .channel(channel, restoringFlagsOf: descriptor, flags: flags))
        }

        let file = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: duplicate)
        let reader = InputReader(source: .none)
        let done = NonBlockingFileIO(threadPool: .singleton).readChunked(
            fileHandle: file, byteCount: Int.max, chunkSize: 64 * 1024, allocator: ByteBufferAllocator(),
            eventLoop: eventLoop
        ) { chunk in
            // An empty chunk is the end of the file.
            guard chunk.readableBytes > 0 else { return eventLoop.makeSucceededVoidFuture() }
            guard !reader.stopped.withLock({ $0 }) else { return eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
            return feed(chunk)
        }
        done.whenSuccess { finished() }
        reader.source.withLock { $0 = .file(file, done: done) }
        return reader
    }

    /// Stops reading (every stream is done), waits until no read is in flight, and puts the
    /// descriptor's flags back.
    func stop() async {
        stopped.withLock { $0 = true }
        switch source.withLock({ $0 }) {
        case .channel(let channel, let descriptor, let flags):
            try? await channel.close()
            if flags >= 0 { _ = fcntl(descriptor, F_SETFL, flags) }
        case .file(let file, let done):
            try? await done.get()
            try? file.close()
        case .none:
            break
        }
    }
}

/// Reads one chunk at a time (`autoRead` off, one message per read) and asks for the next only
/// once the last one was fed.
private final class PumpHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let feed: @Sendable (ByteBuffer) -> EventLoopFuture<Void>
    private let finished: @Sendable () -> Void
    private var ended = false

    init(feed: @escaping @Sendable (ByteBuffer) -> EventLoopFuture<Void>, finished: @escaping @Sendable () -> Void) {
        self.feed = feed
        self.finished = finished
    }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let fed = feed(unwrapInboundIn(data))
        let context = NIOLoopBound(context, eventLoop: context.eventLoop)
        fed.hop(to: context.eventLoop).whenComplete { result in
            switch result {
            case .success: context.value.read()
            case .failure: context.value.close(promise: nil)  // no stream left to feed
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            end()
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A read error closes the channel without an end of input: treat it as the end too.
        end()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func end() {
        guard !ended else { return }
        ended = true
        finished()
    }
}
