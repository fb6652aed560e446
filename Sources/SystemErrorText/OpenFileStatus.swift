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

    /// The status of `descriptor`, or nil if fstat fails.
    public init?(descriptor: CInt) {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return nil }
        let type = status.st_mode & S_IFMT
        isDirectory = type == S_IFDIR
        isRegularFile = type == S_IFREG
        size = Int(status.st_size)
        modifiedNanoseconds = Int(status.st_mtim.tv_sec) * 1_000_000_000 + Int(status.st_mtim.tv_nsec)
    }
}
