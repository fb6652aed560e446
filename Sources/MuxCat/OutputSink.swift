import NIOCore
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A file descriptor (stdout, stderr) that many event loops write to.
///
/// Writes are whole (a chunk from one stream is never interleaved with another's) and blocking:
/// muxcat is a debugging tool, and a terminal or pipe that reads slowly should slow the streams
/// down rather than make muxcat buffer without bound. Regular files work too, which is why this
/// is a plain `write(2)` loop and not a NIO pipe channel (epoll refuses regular files).
public final class OutputSink: Sendable {
    public static let standardOutput = OutputSink(descriptor: 1)
    public static let standardError = OutputSink(descriptor: 2)

    private let descriptor: CInt
    /// Set for a sink of lines (`init(lines:)`): each line goes there instead of to a descriptor.
    private let lineHandler: (@Sendable (String) -> Void)?
    /// Held across each whole write. True once a write failed (e.g. EPIPE: the reader went away);
    /// later writes are dropped.
    private let broken = Mutex(false)

    public init(descriptor: CInt) {
        self.descriptor = descriptor
        self.lineHandler = nil
    }

    /// A sink that hands every line to `handler` (without its newline): muxcat's diagnostics as
    /// log lines, under `--log-format json`.
    public init(lines handler: @escaping @Sendable (String) -> Void) {
        self.descriptor = -1
        self.lineHandler = handler
    }

    /// Writes the readable bytes of `buffer`. Returns false when the descriptor cannot take them.
    @discardableResult
    public func write(_ buffer: ByteBuffer) -> Bool {
        if lineHandler != nil { return write(String(decoding: buffer.readableBytesView, as: UTF8.self)) }
        return buffer.withUnsafeReadableBytes { bytes in
            broken.withLock { writeLocked(bytes, broken: &$0) }
        }
    }

    @discardableResult
    public func write(_ text: String) -> Bool {
        if let lineHandler {
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) { lineHandler(String(line)) }
            return true
        }
        var text = text
        return text.withUTF8 { bytes in
            broken.withLock { writeLocked(UnsafeRawBufferPointer(bytes), broken: &$0) }
        }
    }

    /// Writes `text` and a newline as one write.
    @discardableResult
    public func line(_ text: String) -> Bool { write(text + "\n") }

    private func writeLocked(_ bytes: UnsafeRawBufferPointer, broken: inout Bool) -> Bool {
        guard !broken else { return false }
        // Not `writeAll`: a non-blocking descriptor (a terminal shares its flags with stdin, which
        // `muxcat connect` reads through NIO) is waited on and resumed where it stopped.
        var offset = 0
        while offset < bytes.count {
            do {
                offset += try FileDescriptor(rawValue: descriptor).write(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            } catch Errno.wouldBlock {
                var waiter = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                _ = poll(&waiter, 1, -1)
            } catch {
                broken = true
                return false
            }
        }
        return true
    }
}
