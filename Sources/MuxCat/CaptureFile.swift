import NIOCore
import Synchronization
import SystemErrorText
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The capture file being written: shared by every link (each on its own event loop), so
/// records from all links land in one file in the order they happened.
///
/// Records are stamped and appended under one lock, buffered, and written with plain blocking
/// `write(2)` when the buffer passes 64 KiB or when a link finishes a read or flushes — so a
/// capture costs one system call per burst rather than per frame, and little is lost if
/// muxcat is killed. (A local file write is short; a debugging tool may pay for it on the loop.)
public final class CaptureFile: Sendable {
    public let path: String
    private let state: Mutex<State>

    private struct State {
        var descriptor: CInt
        var buffer = ByteBuffer()
        var failure: String?

        mutating func write() {
            guard descriptor >= 0, buffer.readableBytes > 0 else { return }
            defer { buffer.clear() }
            guard failure == nil else { return }
            let descriptor = self.descriptor
            failure = buffer.withUnsafeReadableBytes { bytes -> String? in
                do {
                    _ = try FileDescriptor(rawValue: descriptor).writeAll(bytes)
                    return nil
                } catch {
                    return SystemErrorText.describe(error)
                }
            }
        }
    }

    /// Creates (or truncates) the file and writes the file header.
    public init(path: String, role: CaptureRole) throws {
        self.path = path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CaptureFileError(path: path, reason: SystemErrorText.errnoText(errno))
        }
        var state = State(descriptor: descriptor)
        CaptureFormat.writeFileHeader(role: role, into: &state.buffer)
        self.state = Mutex(state)
        flush()
    }

    /// Appends one record, stamped now.
    public func record(_ direction: CaptureDirection, link: Int, bytes: ByteBuffer, unframed: Bool = false) {
        state.withLock { state in
            let record = CaptureRecord(
                direction: direction, unframed: unframed, link: UInt32(truncatingIfNeeded: link),
                timestamp: CaptureFile.now(), bytes: bytes)
            CaptureFormat.writeRecord(record, into: &state.buffer)
            if state.buffer.readableBytes >= 64 * 1024 { state.write() }
        }
    }

    public func flush() {
        state.withLock { $0.write() }
    }

    /// Writes what is buffered and closes the file. Returns the first write error, if any.
    @discardableResult
    public func close() -> String? {
        state.withLock { state in
            state.write()
            if state.descriptor >= 0 {
                _ = systemClose(state.descriptor)
                state.descriptor = -1
            }
            return state.failure.map { "cannot write the capture file \(path): \($0)" }
        }
    }

    /// Microseconds since the Unix epoch.
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec / 1000)
    }
}

/// The capture file could not be created.
public struct CaptureFileError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "cannot create the capture file \(path): \(reason)" }
}

#if canImport(Glibc)
private let systemClose = Glibc.close
#endif
