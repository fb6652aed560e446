import CommandLineSupport

/// repeaterd's command line (the relay daemon) as a library, so that two executables run the same code:
/// `repeaterd` alone (static, by itself: what an image copies) and the multi-call `repeater`
/// that the packages install once under all four names.
public enum RepeaterdEntry {
    /// The name it answers to as a link to the multi-call binary, and in its messages.
    public static let commandName = "repeaterd"

    /// Parses `arguments` (without the program name), runs, and exits: usage errors in one line,
    /// exit 64 (`CommandLineEntry`).
    public static func main(arguments: [String] = Array(CommandLine.arguments.dropFirst())) async -> Never {
        await CommandLineEntry.main(RepeaterDaemon.self, arguments: arguments)
    }
}
