#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What `fstat(2)` says of an open file, as a value: for a reader that must know whether it
/// reads a directory, a regular file (whose size and modification time can be watched) or a
/// pipe. Here rather than beside its users: modules that import Foundation see `stat` through
/// CoreFoundation and cannot use its members.
public struct OpenFileStatus: Equatable, Sendable {
    public var isDirectory: Bool
    public var isRegularFile: Bool
    public var size: Int
    /// Modification time, nanoseconds since the epoch.
    public var modifiedNanoseconds: Int
    /// The permission bits (and setuid, setgid, sticky): `st_mode & 0o7777`.
    public var permissions: UInt32

    /// The status of `descriptor`, or nil if fstat fails.
    public init?(descriptor: CInt) {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        self.init(status)
    }

    /// The status of the file at `path` (links followed), or nil if there is none.
    public init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        self.init(status)
    }

    private init(_ status: stat) {
        let type = status.st_mode & S_IFMT
        isDirectory = type == S_IFDIR
        isRegularFile = type == S_IFREG
        size = Int(status.st_size)
        modifiedNanoseconds = Int(status.st_mtim.tv_sec) * 1_000_000_000 + Int(status.st_mtim.tv_nsec)
        permissions = UInt32(status.st_mode & 0o7777)
    }
}
