import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The temporary files of downloads in progress (`FileDownload`'s `.NAME.part-XXXXXX`), so that
/// a process stopped by a signal can remove them before it goes (runtime-client's SIGINT and
/// SIGTERM handling): a network error already removes them, a Ctrl-C must too (issue 42).
public enum PartialFiles {
    private static let paths = Mutex<Set<String>>([])

    static func add(_ path: String) { _ = paths.withLock { $0.insert(path) } }
    static func remove(_ path: String) { _ = paths.withLock { $0.remove(path) } }

    /// Unlinks every temporary file still registered (call once, as the process ends); returns
    /// how many there were.
    @discardableResult
    public static func removeAll() -> Int {
        let all = paths.withLock { paths in
            defer { paths.removeAll() }
            return paths
        }
        for path in all { unlink(path) }
        return all.count
    }
}
