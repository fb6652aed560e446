import Foundation

/// The runtime manager's files: in memory, shared by all sessions, with a
/// limit on the total size.
///
/// Why a class behind a lock and not an actor: sessions run on different event
/// loops and handle one request at a time synchronously; an actor would make
/// every request hop executors for operations that take microseconds (or a
/// memcpy). The lock is held only for dictionary updates and the copy of an
/// appended chunk. Reads return the stored `Data` by reference (copy-on-write),
/// so readers never hold the lock while sending.
///
/// File names are opaque keys: "a/../b" is just a name, there is no directory
/// tree to escape from.
public final class FileStore: @unchecked Sendable {
    /// The largest total of all file sizes, in bytes.
    public let maximumTotalBytes: Int

    private let lock = NSLock()
    private var files: [String: Data] = [:]
    private var usedBytes = 0

    public init(maximumTotalBytes: Int) {
        precondition(maximumTotalBytes >= 0)
        self.maximumTotalBytes = maximumTotalBytes
    }

    /// Creates or replaces a file.
    public func write(_ name: String, data: Data) throws {
        try self.lock.withLock {
            let old = self.files[name]?.count ?? 0
            let newTotal = self.usedBytes - old + data.count
            guard newTotal <= self.maximumTotalBytes else {
                throw FileStoreError.storeFull(
                    name: name, requested: data.count, used: self.usedBytes - old, limit: self.maximumTotalBytes
                )
            }
            self.files[name] = data
            self.usedBytes = newTotal
        }
    }

    /// Appends to an existing file. Appending to a missing file is an error:
    /// it usually means the write that should have created it failed.
    public func append(_ name: String, data: Data) throws {
        try self.lock.withLock {
            guard self.files[name] != nil else { throw FileStoreError.appendToMissingFile(name: name) }
            guard self.usedBytes + data.count <= self.maximumTotalBytes else {
                throw FileStoreError.storeFull(
                    name: name, requested: data.count, used: self.usedBytes, limit: self.maximumTotalBytes
                )
            }
            self.files[name]!.append(data)
            self.usedBytes += data.count
        }
    }

    /// The contents of a file.
    public func read(_ name: String) throws -> Data {
        try self.lock.withLock {
            guard let data = self.files[name] else { throw FileStoreError.noSuchFile(name: name) }
            return data
        }
    }

    /// The total size of all files, in bytes.
    public var totalBytes: Int {
        self.lock.withLock { self.usedBytes }
    }
}

/// Why the file store refused an operation; the description is what the client sees.
public enum FileStoreError: Error, Equatable, CustomStringConvertible, Sendable {
    case noSuchFile(name: String)
    case appendToMissingFile(name: String)
    case storeFull(name: String, requested: Int, used: Int, limit: Int)

    public var description: String {
        switch self {
        case let .noSuchFile(name):
            return "no file named \"\(name)\" in the runtime manager"
        case let .appendToMissingFile(name):
            return "cannot append to \"\(name)\": no such file in the runtime manager; write (put) it first"
        case let .storeFull(name, requested, used, limit):
            return "storing \(requested) more bytes for \"\(name)\" would exceed the runtime manager's store limit "
                + "(\(used) of \(limit) bytes in use); free space or start it with a larger --max-store-bytes"
        }
    }
}
