import Foundation
import Synchronization

/// A one-line progress bar on stderr for long transfers.
///
/// Shown only when it helps and cannot hurt: stderr is a terminal (not a log
/// file or a pipe), the transfer is large enough to take a while, and the user
/// did not ask for `--quiet`. Updates are throttled so a fast transfer does not
/// spend its time printing. Safe to call from any thread.
public final class ProgressBar: Sendable {
    /// Transfers smaller than this finish too fast for a bar to be useful.
    public static let minimumBytes = 4 * 1024 * 1024

    private let label: String
    private let enabled: Bool
    /// When it last drew, and whether a line is open: updates come from NIO's threads.
    private let drawing = Mutex((lastDraw: Date.distantPast, drawn: false))
    private let started = Date()

    /// - Parameter quiet: `--quiet` was given.
    public init(label: String, quiet: Bool) {
        self.label = label
        self.enabled = !quiet && isatty(STDERR_FILENO) == 1
    }

    /// Reports progress; draws if the transfer is large and the last draw is not too recent.
    public func update(done: Int, total: Int) {
        guard self.enabled, total >= Self.minimumBytes else { return }
        self.drawing.withLock { state in
            let now = Date()
            guard done >= total || now.timeIntervalSince(state.lastDraw) >= 0.1 else { return }
            state.lastDraw = now
            state.drawn = true
            FileHandle.standardError.write(Data(Self.render(label: self.label, done: done, total: total,
                                                            elapsed: now.timeIntervalSince(self.started)).utf8))
        }
    }

    /// Ends the bar's line so later messages start on a fresh line.
    public func finish() {
        self.drawing.withLock { state in
            if state.drawn {
                FileHandle.standardError.write(Data("\n".utf8))
                state.drawn = false
            }
        }
    }

    /// `\r<label> [#####.....]  45%  14.4/32.0 MiB  12.3 MiB/s`
    static func render(label: String, done: Int, total: Int, elapsed: TimeInterval) -> String {
        let width = 30
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let mib = 1024.0 * 1024.0
        let rate = elapsed > 0 ? Double(done) / mib / elapsed : 0
        let numbers = String(
            format: "%3d%%  %.1f/%.1f MiB  %.1f MiB/s ", Int(fraction * 100), Double(done) / mib, Double(total) / mib, rate
        )
        return "\r\(label) [\(bar)] \(numbers)"
    }
}
