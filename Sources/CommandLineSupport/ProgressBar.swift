import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A one-line progress bar on stderr for long transfers.
///
/// Shown only when it helps and cannot hurt: stderr is a terminal (not a log
/// file or a pipe), the transfer is large enough to take a while, and the user
/// did not ask for `--quiet`. Updates are throttled so a fast transfer does not
/// spend its time printing. Safe to call from any thread. No Foundation: this module is in every
/// binary, and Foundation's formatting would link its ICU data (32 MiB) into each.
public final class ProgressBar: Sendable {
    /// Transfers smaller than this finish too fast for a bar to be useful.
    public static let minimumBytes = 4 * 1024 * 1024

    private let label: String
    private let enabled: Bool
    /// When it last drew, and whether a line is open: updates come from NIO's threads.
    private let drawing = Mutex((lastDraw: ContinuousClock.Instant?.none, drawn: false))
    private let started = ContinuousClock.now

    /// - Parameter quiet: `--quiet` was given.
    public init(label: String, quiet: Bool) {
        self.label = label
        self.enabled = !quiet && isatty(STDERR_FILENO) == 1
    }

    /// Reports progress; draws if the transfer is large and the last draw is not too recent.
    public func update(done: Int, total: Int) {
        guard self.enabled, total >= Self.minimumBytes else { return }
        self.drawing.withLock { state in
            let now = ContinuousClock.now
            guard done >= total || state.lastDraw.map({ now - $0 >= .milliseconds(100) }) ?? true else { return }
            state.lastDraw = now
            state.drawn = true
            StandardError.write(Self.render(label: self.label, done: done, total: total, elapsed: Self.seconds(now - self.started)))
        }
    }

    /// Ends the bar's line so later messages start on a fresh line.
    public func finish() {
        self.drawing.withLock { state in
            if state.drawn {
                StandardError.write("\n")
                state.drawn = false
            }
        }
    }

    /// `\r<label> [#####.....]  45%  14.4/32.0 MiB  12.3 MiB/s`
    static func render(label: String, done: Int, total: Int, elapsed: Double) -> String {
        let width = 30
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let mib = 1024.0 * 1024.0
        let rate = elapsed > 0 ? Double(done) / mib / elapsed : 0
        let percent = String(Int(fraction * 100))
        let numbers =
            String(repeating: " ", count: max(0, 3 - percent.count)) + percent
            + "%  \(Self.oneDecimal(Double(done) / mib))/\(Self.oneDecimal(Double(total) / mib)) MiB  \(Self.oneDecimal(rate)) MiB/s "
        return "\r\(label) [\(bar)] \(numbers)"
    }

    /// `12.3`: one decimal, rounded (what `%.1f` printed), for the non-negative numbers of the bar.
    static func oneDecimal(_ value: Double) -> String {
        let tenths = Int((max(0, value) * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
