/// How the multi-call binary (`repeater`, installed once with the four command names as links)
/// picks what to run, as busybox does: by the name it was started under (`/usr/bin/repeaterd`
/// is a link to it), or else by its first argument (`repeater muxcat decode FILE`). A value
/// without I/O, so that every case is tested alone.
public enum MultiCall {
    public enum Choice: Equatable, Sendable {
        /// Run `command` with `arguments` (the command's own, without any program name).
        case run(command: String, arguments: [String])
        /// `repeater --help`, `repeater help`: say what it is.
        case help
        /// `repeater --version`.
        case version
        /// `repeater NAME` for a NAME it does not have, or `repeater` alone: a usage error.
        case unknown(String?)
    }

    /// `commandLine` is the whole command line, program name first (`CommandLine.arguments`).
    public static func choose(commandLine: [String], commands: [String]) -> Choice {
        guard let program = commandLine.first else { return .unknown(nil) }
        let invokedAs = program.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? program
        if commands.contains(invokedAs) {
            return .run(command: invokedAs, arguments: Array(commandLine.dropFirst()))
        }
        guard commandLine.count > 1 else { return .unknown(nil) }
        let first = commandLine[1]
        if commands.contains(first) {
            return .run(command: first, arguments: Array(commandLine.dropFirst(2)))
        }
        switch first {
        case "--help", "-h", "help": return .help
        case "--version": return .version
        default: return .unknown(first)
        }
    }

    public static func usage(program: String, commands: [String]) -> String {
        """
        \(program): one binary for \(commands.joined(separator: ", ")).
        USAGE: \(program) COMMAND [ARGUMENTS...], or run it through a link named after the command.
        COMMANDS: \(commands.joined(separator: " "))
        See COMMAND --help for each.
        """
    }
}
