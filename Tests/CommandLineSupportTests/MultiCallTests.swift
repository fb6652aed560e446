import CommandLineSupport
import XCTest

/// The multi-call binary's choice, alone: by the name it runs under, else by its first argument.
final class MultiCallTests: XCTestCase {
    private let commands = ["repeaterd", "runtime-manager", "runtime-client", "muxcat"]

    private func choose(_ commandLine: [String]) -> MultiCall.Choice {
        MultiCall.choose(commandLine: commandLine, commands: commands)
    }

    func testTheNameItRunsUnderChoosesAndKeepsEveryArgument() {
        XCTAssertEqual(choose(["/usr/bin/repeaterd", "--listen", "x"]), .run(command: "repeaterd", arguments: ["--listen", "x"]))
        XCTAssertEqual(choose(["muxcat"]), .run(command: "muxcat", arguments: []))
        XCTAssertEqual(
            choose(["./runtime-client", "muxcat"]), .run(command: "runtime-client", arguments: ["muxcat"]),
            "a command's own arguments are never read as a command name")
        XCTAssertEqual(choose(["runtime-manager", "--help"]), .run(command: "runtime-manager", arguments: ["--help"]))
    }

    func testOtherwiseTheFirstArgumentChooses() {
        XCTAssertEqual(
            choose(["/usr/lib/repeater/repeater", "muxcat", "decode", "f"]),
            .run(command: "muxcat", arguments: ["decode", "f"]))
        XCTAssertEqual(choose(["repeater", "runtime-manager"]), .run(command: "runtime-manager", arguments: []))
        XCTAssertEqual(choose(["renamed-copy", "repeaterd", "--version"]), .run(command: "repeaterd", arguments: ["--version"]))
    }

    func testHelpVersionAndUsageErrors() {
        XCTAssertEqual(choose(["repeater", "--help"]), .help)
        XCTAssertEqual(choose(["repeater", "-h"]), .help)
        XCTAssertEqual(choose(["repeater", "help"]), .help)
        XCTAssertEqual(choose(["repeater", "--version"]), .version)
        XCTAssertEqual(choose(["repeater"]), .unknown(nil))
        XCTAssertEqual(choose(["repeater", "repeater"]), .unknown("repeater"))
        XCTAssertEqual(choose(["repeater", "Repeaterd"]), .unknown("Repeaterd"), "names are exact")
        XCTAssertEqual(choose(["/usr/bin/"]), .unknown(nil))
        XCTAssertEqual(choose([]), .unknown(nil))
        let usage = MultiCall.usage(program: "repeater", commands: commands)
        for name in commands { XCTAssertTrue(usage.contains(name)) }
    }
}
