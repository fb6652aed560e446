#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import Synchronization
import SystemErrorText
import SystemPackage
import TransportProtocol

/// Where the bytes of a downloaded file go as they arrive (``RuntimeClient/read(_:into:)``), so
/// that no process along the way holds the whole file.
public protocol DownloadSink: AnyObject, Sendable {
    /// The next bytes of the file, in order; called on the connection's event loop. A thrown
    /// error (disk full) fails the download and closes the connection.
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
        var template = Array(url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).part-XXXXXX").path.utf8CString)
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

/// Inbound handler: bytes in, `RuntimeManagerResponse`s out, with a read's file streamed to the
/// download sink of the moment (or, with none, gathered into the response as before).
///
/// A thin adapter over ``ResponseStreamDecoder``: framing and field errors are fired down the
/// pipeline as `TransportProtocolError` and end decoding; a sink's error (a full disk) too.
final class StreamingResponseDecoder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = RuntimeManagerResponse

    private var decoder: ResponseStreamDecoder
    private let slot: DownloadSlot
    private let progress: ((_ received: Int, _ expected: Int) -> Void)?
    private var sink: (any DownloadSink)?
    private var gathered: Data?
    private var failed = false
    private var reportedPartialProgress = false

    init(maximumMessageBytes: Int, slot: DownloadSlot, progress: ((_ received: Int, _ expected: Int) -> Void)?) {
        self.decoder = ResponseStreamDecoder(maximumMessageBytes: maximumMessageBytes)
        self.slot = slot
        self.progress = progress
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.failed else { return }
        self.decoder.append(self.unwrapInboundIn(data))
        do {
            while let event = try self.decoder.next() {
                switch event {
                case .fileBytes(let bytes):
                    if self.sink == nil && self.gathered == nil {
                        self.sink = self.slot.take()
                        if self.sink == nil { self.gathered = Data() }
                    }
                    if let sink = self.sink {
                        try sink.write(bytes)
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
                    self.sink = nil
                    self.gathered = nil
                    if self.reportedPartialProgress {
                        self.reportedPartialProgress = false
                        self.progress?(fileBytes, fileBytes)
                    }
                    context.fireChannelRead(self.wrapInboundOut(response))
                }
            }
        } catch {
            self.failed = true
            context.fireErrorCaught(error)
            return
        }
        if let progress = self.progress, let partial = self.decoder.progress {
            self.reportedPartialProgress = true
            progress(partial.received, partial.expected)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !self.failed, let error = self.decoder.errorAtEndOfStream {
            self.failed = true
            context.fireErrorCaught(error)
        }
        context.fireChannelInactive()
    }
}
