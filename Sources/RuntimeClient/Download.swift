import NIOCore
import NIOPosix
import Synchronization
import SystemErrorText
import SystemPackage
import TransportProtocol

#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Where the bytes of a downloaded file go as they arrive (``RuntimeClient/read(_:into:)``), so
/// that no process along the way holds the whole file.
public protocol DownloadSink: AnyObject, Sendable {
    /// The next bytes of the file, in order; called on a thread of NIO's blocking-I/O pool, one
    /// call at a time (never on the event loop: it may block). A thrown error (disk full) fails
    /// the download and closes the connection.
    func write(_ bytes: ByteBuffer) throws
}

/// A download into a file: written to a temporary file beside it, which becomes the file only
/// when the whole response has arrived (``commit()``). A download cut short leaves nothing under
/// the file's name (``discard()``), and an existing file there stays as it was until then.
public final class FileDownload: DownloadSink {
    public let path: String
    /// The temporary file, in the same directory so that the rename is atomic.
    public let temporaryPath: String
    private let descriptor: CInt
    /// Whether the descriptor was closed (committed or discarded).
    private let closed = Mutex(false)

    /// Creates the temporary file; fails with what the user can act on (no such directory, no permission).
    ///
    /// As `cp` does: a `path` that is a symbolic link is written through (the file it points to
    /// is replaced, the link stays), and a file that exists keeps its mode (issue 42: 0600
    /// became 0644, a link became a file).
    public init(path requested: String) throws {
        let path = Self.followingLinks(requested)
        self.path = path
        let url = URL(fileURLWithPath: path)
        var template = Array(
            url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).part-XXXXXX").path.utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            throw RuntimeClientError.cannotWrite(path: path, reason: SystemErrorText.errnoText(errno))
        }
        self.descriptor = descriptor
        self.temporaryPath = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        PartialFiles.add(self.temporaryPath)
        // mkstemp makes it 0600; a downloaded file gets the mode of the file it replaces, or the
        // usual one (0666 less the umask).
        if let existing = OpenFileStatus(path: path) {
            fchmod(descriptor, mode_t(existing.permissions))
        } else {
            let mask = umask(0)
            umask(mask)
            fchmod(descriptor, 0o666 & ~mask)
        }
    }

    /// Where writing `path` lands: the end of its chain of symbolic links (a relative link is
    /// read from the link's directory), at most 40 links deep as the kernel's own limit.
    static func followingLinks(_ path: String) -> String {
        var current = path
        for _ in 0..<40 {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = readlink(current, &buffer, buffer.count - 1)
            guard count > 0 else { return current }
            let target = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if target.hasPrefix("/") {
                current = target
            } else {
                let directory = current.lastIndex(of: "/").map { String(current[...$0]) } ?? ""
                current = directory + target
            }
        }
        return current
    }

    deinit {
        if !self.closed.withLock({ $0 }) {
            close(self.descriptor)
            unlink(self.temporaryPath)
            PartialFiles.remove(self.temporaryPath)
        }
    }

    public func write(_ bytes: ByteBuffer) throws {
        do {
            _ = try bytes.withUnsafeReadableBytes { try FileDescriptor(rawValue: self.descriptor).writeAll($0) }
        } catch {
            throw RuntimeClientError.cannotWrite(path: self.path, reason: SystemErrorText.describe(error))
        }
    }

    /// The whole file arrived: it replaces whatever was at `path`.
    public func commit() throws {
        let failure: String? = self.closed.withLock { closed in
            guard !closed else { return "already closed" }
            closed = true
            PartialFiles.remove(self.temporaryPath)
            let closed = close(self.descriptor) == 0 ? nil : SystemErrorText.errnoText(errno)
            if let closed {
                unlink(self.temporaryPath)
                return closed
            }
            guard rename(self.temporaryPath, self.path) == 0 else {
                let why = SystemErrorText.errnoText(errno)
                unlink(self.temporaryPath)
                return why
            }
            return nil
        }
        if let failure { throw RuntimeClientError.cannotWrite(path: self.path, reason: failure) }
    }

    /// The download failed: the temporary file goes, `path` is left as it was.
    public func discard() {
        self.closed.withLock { closed in
            guard !closed else { return }
            closed = true
            PartialFiles.remove(self.temporaryPath)
            close(self.descriptor)
            unlink(self.temporaryPath)
        }
    }
}

/// A download to standard output, written as it arrives.
public final class StandardOutputDownload: DownloadSink {
    public init() {}

    public func write(_ bytes: ByteBuffer) throws {
        do {
            _ = try bytes.withUnsafeReadableBytes { try FileDescriptor.standardOutput.writeAll($0) }
        } catch {
            throw RuntimeClientError.cannotWrite(path: "standard output", reason: SystemErrorText.describe(error))
        }
    }
}

/// The sink the next read response's file goes to, set by ``RuntimeClient/read(_:into:)`` before
/// it sends the request and taken by ``StreamingResponseDecoder`` at the file's first bytes.
final class DownloadSlot: Sendable {
    private let sink = Mutex<(any DownloadSink)?>(nil)

    func set(_ sink: (any DownloadSink)?) { self.sink.withLock { $0 = sink } }

    func take() -> (any DownloadSink)? {
        self.sink.withLock { sink in
            defer { sink = nil }
            return sink
        }
    }
}

/// Runs a download sink's writes, which block (a disk, a pipe to a slow reader), away from the
/// event loop; the future completes on `eventLoop`. A protocol so that tests can hold writes.
protocol DownloadWriter: Sendable {
    func write(_ bytes: ByteBuffer, to sink: any DownloadSink, eventLoop: any EventLoop) -> EventLoopFuture<Void>
}

/// NIO's shared blocking-I/O thread pool (what `NonBlockingFileIO` uses).
struct ThreadPoolDownloadWriter: DownloadWriter {
    var pool: NIOThreadPool = .singleton

    func write(_ bytes: ByteBuffer, to sink: any DownloadSink, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        pool.runIfActive(eventLoop: eventLoop) { try sink.write(bytes) }
    }
}

/// Inbound handler: bytes in, `RuntimeManagerResponse`s out, with a read's file streamed to the
/// download sink of the moment (or, with none, gathered into the response as before).
///
/// A thin adapter over ``ResponseStreamDecoder``: framing and field errors are fired down the
/// pipeline as `TransportProtocolError` and end decoding; a sink's error (a full disk) too.
///
/// The sink's writes block, so they run on a ``DownloadWriter``'s thread, one at a time and in
/// order: bytes that arrive meanwhile are copied into the next write's buffer. Copied, since
/// holding the buffers they came in would keep NIOSSL from reusing its own (a fresh allocation
/// and page faults per record, measured: 57 % more CPU for a 256 MiB get); the two buffers are
/// reused from write to write. While more than
/// ``holdReadsAbove`` bytes wait to be written, the handler holds the channel's reads (TCP's
/// window then slows the sender), so that a slow disk does not make the client hold the file.
/// A read's response goes on only when all of its file is written (the caller commits the
/// file then), and so does the end of the connection, if it comes first.
final class StreamingResponseDecoder: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = RuntimeManagerResponse
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    /// Reads are held while more than this waits for the sink, and resumed at a quarter of it.
    static let holdReadsAbove = 4 << 20

    private var decoder: ResponseStreamDecoder
    private let slot: DownloadSlot
    private let progress: ((_ received: Int, _ expected: Int) -> Void)?
    private let writer: any DownloadWriter
    private var sink: (any DownloadSink)?
    private var gathered: Data?
    private var failed = false
    private var reportedPartialProgress = false

    /// Bytes for the sink not written yet: `nextWrite` plus the write in flight.
    private var unwritten = 0
    private var nextWrite: ByteBuffer?
    private var writeInFlight = false
    /// The last write's buffer, cleared, for the next one.
    private var spareBuffer: ByteBuffer?
    /// A response (or the connection's end) waiting for its file's last write.
    private var responseAfterWrites: RuntimeManagerResponse?
    private var inactiveAfterWrites = false
    private var readHeld = false

    init(
        maximumMessageBytes: Int, slot: DownloadSlot, progress: ((_ received: Int, _ expected: Int) -> Void)?,
        writer: any DownloadWriter = ThreadPoolDownloadWriter()
    ) {
        self.decoder = ResponseStreamDecoder(maximumMessageBytes: maximumMessageBytes)
        self.slot = slot
        self.progress = progress
        self.writer = writer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.failed else { return }
        self.decoder.append(self.unwrapInboundIn(data))
        self.decodeAvailable(context: context)
    }

    /// Decodes what has arrived, until a response must wait for its file's writes.
    private func decodeAvailable(context: ChannelHandlerContext) {
        do {
            while self.responseAfterWrites == nil, !self.failed, let event = try self.decoder.next() {
                switch event {
                case .fileBytes(let bytes):
                    if self.sink == nil && self.gathered == nil {
                        self.sink = self.slot.take()
                        if self.sink == nil { self.gathered = Data() }
                    }
                    if self.sink != nil {
                        self.enqueueWrite(bytes, context: context)
                    } else {
                        // A read into memory (not a get into a file) holds the file: bounded.
                        guard self.gathered!.count + bytes.readableBytes <= self.decoder.maximumMessageBytes else {
                            throw RuntimeClientError.unexpectedResponse(
                                "the file is larger than \(self.decoder.maximumMessageBytes) bytes, the most read into memory "
                                    + "(--max-message-bytes); a get into a file or to stdout has no such limit")
                        }
                        self.gathered!.append(contentsOf: bytes.readableBytesView)
                    }
                case .response(var response, let fileBytes):
                    if let gathered = self.gathered { response.result.data = gathered }
                    self.gathered = nil
                    if self.reportedPartialProgress {
                        self.reportedPartialProgress = false
                        self.progress?(fileBytes, fileBytes)
                    }
                    if self.unwritten > 0 {
                        self.responseAfterWrites = response
                    } else {
                        self.sink = nil
                        context.fireChannelRead(self.wrapInboundOut(response))
                    }
                }
            }
        } catch {
            self.fail(error, context: context)
            return
        }
        if let progress = self.progress, let partial = self.decoder.progress {
            self.reportedPartialProgress = true
            progress(partial.received, partial.expected)
        }
    }

    private func enqueueWrite(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        self.unwritten += bytes.readableBytes
        if self.nextWrite == nil {
            self.nextWrite = self.spareBuffer.take() ?? context.channel.allocator.buffer(capacity: max(1 << 20, bytes.readableBytes))
        }
        self.nextWrite!.writeImmutableBuffer(bytes)
        self.startNextWrite(context: context)
    }

    private func startNextWrite(context: ChannelHandlerContext) {
        guard !self.writeInFlight, !self.failed, var bytes = self.nextWrite, let sink = self.sink else { return }
        self.nextWrite = nil
        self.writeInFlight = true
        self.writer.write(bytes, to: sink, eventLoop: context.eventLoop).assumeIsolated().whenComplete { result in
            self.writeInFlight = false
            self.unwritten -= bytes.readableBytes
            guard !self.failed else { return }
            bytes.clear()
            self.spareBuffer = bytes
            if case .failure(let error) = result {
                self.fail(error, context: context)
                return
            }
            self.startNextWrite(context: context)
            if self.unwritten == 0 { self.writesDone(context: context) }
            if self.readHeld, self.unwritten <= Self.holdReadsAbove / 4, self.responseAfterWrites == nil {
                self.readHeld = false
                context.read()
            }
        }
    }

    /// Every byte of the file is written: what waited for that goes on.
    private func writesDone(context: ChannelHandlerContext) {
        if let response = self.responseAfterWrites {
            self.responseAfterWrites = nil
            self.sink = nil
            context.fireChannelRead(self.wrapInboundOut(response))
            self.decodeAvailable(context: context)
        }
        if self.inactiveAfterWrites, self.unwritten == 0, self.responseAfterWrites == nil {
            self.inactiveAfterWrites = false
            self.channelInactive(context: context)
        }
    }

    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        guard !self.failed else { return }
        self.failed = true
        self.nextWrite = nil
        self.responseAfterWrites = nil
        context.fireErrorCaught(error)
        if self.inactiveAfterWrites {
            self.inactiveAfterWrites = false
            context.fireChannelInactive()
        }
    }

    func read(context: ChannelHandlerContext) {
        if !self.failed, self.unwritten > Self.holdReadsAbove || self.responseAfterWrites != nil {
            self.readHeld = true
        } else {
            context.read()
        }
    }

    /// A closed channel's handlers are removed on the next loop tick, maybe before the file's
    /// last write is done: an end held back for it would then reach nobody, and the read would
    /// wait forever. So it goes on now, while the handlers behind this one are still linked (they
    /// fail the read, whose file is not committed), and later completions change nothing.
    func handlerRemoved(context: ChannelHandlerContext) {
        guard self.inactiveAfterWrites, !self.failed else { return }
        self.failed = true
        self.inactiveAfterWrites = false
        self.responseAfterWrites = nil
        self.nextWrite = nil
        context.fireChannelInactive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.failed, self.unwritten > 0 {
            self.inactiveAfterWrites = true
            return
        }
        if !self.failed, let error = self.decoder.errorAtEndOfStream {
            self.failed = true
            context.fireErrorCaught(error)
        }
        context.fireChannelInactive()
    }
}
