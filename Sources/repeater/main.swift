import CommandLineSupport
import MuxCatCLI
import RepeaterdCLI
import RuntimeClientCLI
import RuntimeManagerCLI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The four commands in one static binary (the packages install it once, with the four names
/// as links): the Swift runtime, NIO and BoringSSL are stored once instead of four times.
let entries: [(name: String, main: ([String]) async -> Never)] = [
    (RepeaterdEntry.commandName, { await RepeaterdEntry.main(arguments: $0) }),
    (RuntimeManagerEntry.commandName, { await RuntimeManagerEntry.main(arguments: $0) }),
    (RuntimeClientEntry.commandName, { await RuntimeClientEntry.main(arguments: $0) }),
    (MuxCatEntry.commandName, { await MuxCatEntry.main(arguments: $0) }),
]
let names = entries.map(\.name)

switch MultiCall.choose(commandLine: CommandLine.arguments, commands: names) {
case .run(let command, let arguments):
    await entries.first { $0.name == command }!.main(arguments)
case .help:
    print(MultiCall.usage(program: "repeater", commands: names))
    exit(0)
case .version:
    print(RepeaterVersion.current)
    exit(0)
case .unknown(let name):
    let what = name.map { "no command '\($0)'" } ?? "no command"
    StandardError.write("repeater: \(what); one of \(names.joined(separator: ", ")) (see repeater --help)\n")
    exit(64)
}
