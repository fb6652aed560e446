import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The runtime manager's files: in memory, shared by all sessions, with a
/// limit on the total size.
///
/// Why a class behind a mutex and not an actor: sessions run on different event
/// loops and handle one request at a time synchronously; an actor would make
/// every request hop executors for operations that take microseconds (or a
/// memcpy). The mutex is held only for dictionary updates and the copy of an
/// appended chunk. Reads return the stored `Data` by reference (copy-on-write),
/// so readers never hold the mutex while sending.
///
/// File names are opaque keys: "a/../b" is just a name, there is no directory
/// tree to escape from.
public final class FileStore: Sendable {
    /// The largest total of all file sizes, in bytes.
    public let maximumTotalBytes: Int

    private struct Contents {
        var files: [String: Data] = [:]
        var usedBytes = 0
    }

    private let contents = Mutex(Contents())

    public init(maximumTotalBytes: Int) {
        precondition(maximumTotalBytes >= 0)
        self.maximumTotalBytes = maximumTotalBytes
    }

    /// Creates or replaces a file.
    public func write(_ name: String, data: Data) throws(FileStoreError) {
        let limit = self.maximumTotalBytes
        try self.contents.withLock { (contents) throws(FileStoreError) in
            let old = contents.files[name]?.count ?? 0
            let newTotal = contents.usedBytes - old + data.count
            guard newTotal <= limit else {
                throw .storeFull(name: name, requested: data.count, used: contents.usedBytes - old, limit: limit)
            }
            contents.files[name] = data
            contents.usedBytes = newTotal
        }
    }

    /// Appends to an existing file. Appending to a missing file is an error:
    /// it usually means the write that should have created it failed.
    public func append(_ name: String, data: Data) throws(FileStoreError) {
        let limit = self.maximumTotalBytes
        try self.contents.withLock { (contents) throws(FileStoreError) in
            guard contents.files[name] != nil else { throw .appendToMissingFile(name: name) }
            guard contents.usedBytes + data.count <= limit else {
                throw .storeFull(name: name, requested: data.count, used: contents.usedBytes, limit: limit)
            }
            contents.files[name]!.append(data)
            contents.usedBytes += data.count
        }
    }

    // MARK: Staged puts (`StagedUploads`)

    /// Holds `count` more bytes of the limit for a put in progress of `name`, not yet a file:
    /// staged content counts against the limit like stored content, so that puts in progress
    /// cannot hold more memory than the store may.
    public func reserve(_ count: Int, for name: String) throws(FileStoreError) {
        let limit = self.maximumTotalBytes
        try self.contents.withLock { (contents) throws(FileStoreError) in
            guard contents.usedBytes + count <= limit else {
                throw .storeFull(name: name, requested: count, used: contents.usedBytes, limit: limit)
            }
            contents.usedBytes += count
        }
    }

    /// Gives back what `reserve` held for a put that will not be committed.
    public func release(_ count: Int) {
        self.contents.withLock { $0.usedBytes -= count }
    }

    /// Makes a staged put the file `name`, replacing any old one in one step: a reader sees the
    /// old file or the new one, never a part. Its `data.count` bytes were reserved already.
    public func commit(_ name: String, data: Data) {
        self.contents.withLock { contents in
            contents.usedBytes -= contents.files[name]?.count ?? 0
            contents.files[name] = data
        }
    }

    /// The contents of a file.
    public func read(_ name: String) throws(FileStoreError) -> Data {
        let data = self.contents.withLock { $0.files[name] }
        guard let data else { throw .noSuchFile(name: name) }
        return data
    }

    /// The total size of all files, in bytes.
    public var totalBytes: Int {
        self.contents.withLock { $0.usedBytes }
    }
}

/// Why the file store refused an operation; the description is what the client sees.
public enum FileStoreError: Error, Equatable, CustomStringConvertible, Sendable {
    case noSuchFile(name: String)
    case appendToMissingFile(name: String)
    case storeFull(name: String, requested: Int, used: Int, limit: Int)

    public var description: String {
        switch self {
        case .noSuchFile(let name):
            return "no file named \"\(name)\" in the runtime manager"
        case .appendToMissingFile(let name):
            return "cannot append to \"\(name)\": no such file in the runtime manager; write (put) it first"
        case .storeFull(let name, let requested, let used, let limit):
            return "storing \(requested) more bytes for \"\(name)\" would exceed the runtime manager's store limit "
                + "(\(used) of \(limit) bytes in use); free space or start it with a larger --max-store-bytes"
        }
    }
}
