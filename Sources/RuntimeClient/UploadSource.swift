import SystemErrorText
import SystemPackage

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a put reads: a file opened once (a named pipe can be read only once), or stdin.
///
/// A regular file is watched: its size and modification time when opened are compared with
/// what was read and with the file at its end, so that a file that changed while it was read is
/// not stored silently (as tar says "file changed as we read it"); with a staged put the change
/// is found before the commit, and the stored file stays as it was.
public final class UploadSource: @unchecked Sendable {  // used by one put at a time
    /// For messages: the path, or "stdin".
    public let name: String
    /// The open file (or stdin's descriptor), read with `read(2)`: no Foundation `FileHandle`.
    let descriptor: Int32
    private let closesDescriptor: Bool
    /// Size and modification time at open, for a regular file (nil for a pipe, a socket, stdin
    /// from a terminal).
    private let opened: OpenFileStatus?

    /// Opens `path` once; "-" is stdin.
    public init(path: String) throws {
        if path == "-" {
            name = "stdin"
            descriptor = STDIN_FILENO
            closesDescriptor = false
        } else {
            name = path
            let opened = open(path, O_RDONLY | O_CLOEXEC)
            guard opened >= 0 else {
                let code = errno
                // Asked only now: asking first would open the file twice, and a named pipe's
                // writer loses what it wrote when its first reader goes (issue 42).
                throw RuntimeClientError.localFile(
                    path: path, reason: SystemErrorText.whyUnreadable(path) ?? SystemErrorText.errnoText(code))
            }
            descriptor = opened
            closesDescriptor = true
        }
        let status = OpenFileStatus(descriptor: descriptor)
        if status?.isDirectory == true {
            if closesDescriptor { close(descriptor) }
            throw RuntimeClientError.localFile(path: path, reason: "is a directory, not a file")
        }
        opened = status?.isRegularFile == true ? status : nil
    }

    /// The size announced for progress (0 when unknown: a pipe).
    public var expectedSize: Int { opened?.size ?? 0 }

    /// Up to `count` bytes: fewer only at the end of the input (a pipe's short reads are
    /// gathered).
    func read(upTo count: Int) throws -> Data {
        var chunk = Data(count: count)
        var filled = 0
        while filled < count {
            let got: Int
            do {
                got = try chunk.withUnsafeMutableBytes { bytes in
                    try FileDescriptor(rawValue: descriptor).read(into: UnsafeMutableRawBufferPointer(rebasing: bytes[filled..<count]))
                }
            } catch {
                throw RuntimeClientError.localFile(path: name, reason: "read failed: \(SystemErrorText.describe(error))")
            }
            if got == 0 { break }
            filled += got
        }
        chunk.count = filled
        return chunk
    }

    /// Why what was read (`bytesRead`, to the end) is not the file as it was opened, or nil.
    func changeWhileRead(bytesRead: Int) -> String? {
        guard let opened, let now = OpenFileStatus(descriptor: descriptor) else { return nil }
        if bytesRead != opened.size || now != opened {
            return "file changed as we read it (\(opened.size) bytes when opened, \(bytesRead) read, \(now.size) now)"
        }
        return nil
    }

    deinit {
        if closesDescriptor { close(descriptor) }
    }
}
