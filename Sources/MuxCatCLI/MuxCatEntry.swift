import CommandLineSupport

/// muxcat's command line (netcat for the link) as a library, so that two executables run the same code:
/// `muxcat` alone (static, by itself: what an image copies) and the multi-call `repeater`
/// that the packages install once under all four names.
public enum MuxCatEntry {
    /// The name it answers to as a link to the multi-call binary, and in its messages.
    public static let commandName = "muxcat"

    /// Parses `arguments` (without the program name), runs, and exits: usage errors in one line,
    /// exit 64 (`CommandLineEntry`).
    public static func main(arguments: [String] = Array(CommandLine.arguments.dropFirst())) async -> Never {
        await CommandLineEntry.main(MuxCatCommand.self, arguments: arguments)
    }
}
