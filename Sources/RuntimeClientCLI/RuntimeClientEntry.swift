import CommandLineSupport

/// runtime-client's command line (the client) as a library, so that two executables run the same code:
/// `runtime-client` alone (static, by itself: what an image copies) and the multi-call `repeater`
/// that the packages install once under all four names.
public enum RuntimeClientEntry {
    /// The name it answers to as a link to the multi-call binary, and in its messages.
    public static let commandName = "runtime-client"

    /// Parses `arguments` (without the program name), runs, and exits: usage errors in one line,
    /// exit 64 (`CommandLineEntry`).
    public static func main(arguments: [String] = Array(CommandLine.arguments.dropFirst())) async -> Never {
        InterruptHandling.install()
        await CommandLineEntry.main(RuntimeClientCommand.self, arguments: arguments)
    }
}
