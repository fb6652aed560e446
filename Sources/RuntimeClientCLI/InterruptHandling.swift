import CommandLineSupport
import Dispatch
import RuntimeClient

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT (Ctrl-C) and SIGTERM: remove what a get left half written, say so in one line, and
/// end as the signal would have (exit status 130 or 143 for the shell), instead of dying with a
/// `.NAME.part-XXXXXX` beside the target (issue 42). A put needs nothing here: the runtime
/// manager drops a put that did not commit, when the connection goes.
enum InterruptHandling {
    /// Said after "interrupted": what the interrupted command left (set by the command).
    nonisolated(unsafe) static var note: String?
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    static func install() {
        for number in [SIGINT, SIGTERM] {
            let previous = signal(number, SIG_IGN)
            // Ignored by whoever started us (a shell's background job): stay ignored.
            if let previous, unsafeBitCast(previous, to: Int.self) == 1 { continue }
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let removed = PartialFiles.removeAll()
                var line = "runtime-client: interrupted by \(number == SIGINT ? "SIGINT" : "SIGTERM")"
                if removed > 0 { line += "; the partial download was removed, the target is as it was" }
                if let note { line += "; \(note)" }
                StandardError.write(line + "\n")
                signal(number, SIG_DFL)
                kill(getpid(), number)
            }
            source.resume()
            sources.append(source)
        }
    }
}
