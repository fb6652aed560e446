#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One session's puts in progress, as data (stage-then-commit, protocol extension 1: the
/// `stage` and `commit` fields of `Data`).
///
/// Why: a put of a large file is a write and appends, one chunk each. Applied to the stored file
/// as they came, a put cut short (Ctrl-C, a dropped link, a full store) left the file a prefix of
/// the new content, and the old one was gone (issue 42). Staged, the chunks gather here, the
/// stored file stays as it was until the chunk marked `commit` arrives, and then the whole new
/// content replaces it in one step (`FileStore.commit`). A session that ends before its commit
/// gives its staged bytes back (`discardAll`). Staged bytes count against the store's limit
/// (`FileStore.reserve`), so a put of N bytes over a file of M needs N + M until it is committed.
public struct StagedUploads: Sendable {
    /// Puts one session may have in progress at once (runtime-client has one): a bound on what a
    /// client can make the runtime manager keep besides bytes, which the store limit bounds.
    public static let maximumUploads = 16

    private var uploads: [String: Data] = [:]

    public init() {}

    /// Names with a put in progress.
    public var names: Set<String> { Set(uploads.keys) }

    /// Why a staged chunk was refused (the description is what the client sees).
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case tooManyUploads(name: String)
        case noUploadInProgress(name: String)
        case store(FileStoreError)

        public var description: String {
            switch self {
            case .tooManyUploads(let name):
                return "cannot start a put of \"\(name)\": \(StagedUploads.maximumUploads) puts are in progress in this session already"
            case .noUploadInProgress(let name):
                return "no put of \"\(name)\" is in progress in this session (an earlier chunk of it failed, or it was committed): "
                    + "the stored file is unchanged; put it again"
            case .store(let error):
                return "\(error); the put is abandoned and the stored file is unchanged"
            }
        }
    }

    /// A chunk of a put: the first (`starting`: write_file) begins it afresh, dropping what an
    /// earlier unfinished put of the name staged; later ones (append_file) add to it. With
    /// `commit` the content then replaces the stored file. A refused chunk abandons the put:
    /// its later chunks are refused too, and the stored file stays as it was.
    public mutating func add(
        _ chunk: Data, to name: String, starting: Bool, commit: Bool, store: FileStore
    ) throws(Refusal) {
        if starting {
            if let earlier = uploads.removeValue(forKey: name) { store.release(earlier.count) }
            guard uploads.count < Self.maximumUploads else { throw .tooManyUploads(name: name) }
            uploads[name] = Data()
        }
        guard uploads[name] != nil else { throw .noUploadInProgress(name: name) }
        do {
            try store.reserve(chunk.count, for: name)
        } catch {
            let abandoned = uploads.removeValue(forKey: name)!
            store.release(abandoned.count)
            throw .store(error)
        }
        uploads[name]!.append(chunk)
        if commit {
            store.commit(name, data: uploads.removeValue(forKey: name)!)
        }
    }

    /// The session ended: every put not committed is dropped and its bytes given back.
    public mutating func discardAll(store: FileStore) {
        for data in uploads.values { store.release(data.count) }
        uploads.removeAll()
    }
}
