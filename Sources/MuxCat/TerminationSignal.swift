import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ctrl-C (SIGINT) and SIGTERM as a blocking wait, so the command line can shut down cleanly
/// (Go Away on the links, capture file flushed) instead of dying mid-write.
public enum TerminationSignal {
    private static let queue = DispatchQueue(label: "muxcat.signals")
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    /// Installs the handlers; `handler` runs once per signal, on a private queue.
    public static func install(_ handler: @escaping @Sendable (CInt) -> Void) {
        for number in [SIGINT, SIGTERM] {
            // Ignored by default so that only the dispatch source sees it.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { handler(number) }
            source.resume()
            sources.append(source)
        }
    }
}
