import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The capture file being written: shared by every link (each on its own event loop), so
/// records from all links land in one file in the order they happened.
///
/// Records are stamped and appended under one lock, buffered, and written with plain blocking
/// `write(2)` when the buffer passes 64 KiB or when a link finishes a read or flushes — so a
/// capture costs one system call per burst rather than per frame, and little is lost if
/// muxcat is killed. (A local file write is short; a debugging tool may pay for it on the loop.)
public final class CaptureFile: @unchecked Sendable {
    public let path: String
    private let lock = NIOLock()
    private var descriptor: CInt
    private var buffer = ByteBuffer()
    private var failure: String?

    /// Creates (or truncates) the file and writes the file header.
    public init(path: String, role: CaptureRole) throws {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw CaptureFileError(path: path, reason: String(cString: strerror(errno)))
        }
        CaptureFormat.writeFileHeader(role: role, into: &buffer)
        flush()
    }

    /// Appends one record, stamped now.
    public func record(_ direction: CaptureDirection, link: Int, bytes: ByteBuffer, unframed: Bool = false) {
        lock.withLock {
            let record = CaptureRecord(
                direction: direction, unframed: unframed, link: UInt32(truncatingIfNeeded: link),
                timestamp: CaptureFile.now(), bytes: bytes)
            CaptureFormat.writeRecord(record, into: &buffer)
            if buffer.readableBytes >= 64 * 1024 { writeLocked() }
        }
    }

    public func flush() {
        lock.withLock { writeLocked() }
    }

    /// Writes what is buffered and closes the file. Returns the first write error, if any.
    @discardableResult
    public func close() -> String? {
        lock.withLock {
            writeLocked()
            if descriptor >= 0 {
                _ = systemClose(descriptor)
                descriptor = -1
            }
            return failure.map { "cannot write the capture file \(path): \($0)" }
        }
    }

    private func writeLocked() {
        guard descriptor >= 0, buffer.readableBytes > 0 else { return }
        defer { buffer.clear() }
        guard failure == nil else { return }
        let ok: Bool = buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = systemWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if n > 0 {
                    offset += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    failure = String(cString: strerror(errno))
                    return false
                }
            }
            return true
        }
        _ = ok
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
private let systemWrite = Glibc.write
private let systemClose = Glibc.close
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
private let systemClose = Darwin.close
#endif
