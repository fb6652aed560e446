import Foundation
import ProcessTestSupport
import XCTest

/// Every numeric option of every executable refuses nonsense with one line naming the option
/// and its range, exit 64; help works with no other arguments (issue 22).
final class UsageErrorTests: XCTestCase {
    /// The arguments runtime-manager requires before its numbers are looked at (never opened:
    /// validation runs before the files are read).
    private let managerFiles = ["--cert", "c.pem", "--key", "k.pem", "--client-ca", "ca.pem", "--policy", "p.json"]

    private func expectUsageError(
        _ binary: String, _ arguments: [String], _ line: String, file: StaticString = #filePath, lineNumber: UInt = #line
    ) throws {
        let result = try runProcess(try Binaries.path(binary), arguments)
        XCTAssertEqual(result.status, 64, "\(binary) \(arguments): \(result.stderr)", file: file, line: lineNumber)
        XCTAssertEqual(result.stderr, "\(binary): \(line) (see \(binary) --help)\n", "\(binary) \(arguments)", file: file, line: lineNumber)
    }

    func testRepeaterdRefusesOutOfRangeNumbersInOneLine() throws {
        let cases: [([String], String)] = [
            (["--max-sessions", "-1"], "--max-sessions must be at least 1, got -1"),
            (["--max-sessions=-1"], "--max-sessions must be at least 1, got -1"),
            (["--max-sessions", "0"], "--max-sessions must be at least 1, got 0"),
            (["--threads", "0"], "--threads must be at least 1, got 0"),
            (["--keepalive-timeout", "0"], "--keepalive-timeout must be a number of seconds above 0, got 0"),
            (
                ["--keepalive-interval", "-1"],
                "--keepalive-interval must be a number of seconds from 0 on (0 turns pings off), got -1"
            ),
            (["--idle-timeout", "-0.5"], "--idle-timeout must be a number of seconds from 0 on (0 turns it off), got -0.5"),
            (["--drain-timeout", "-1"], "--drain-timeout must be a number of seconds from 0 on, got -1"),
            (
                ["--max-stream-window", "1000"],
                "--max-stream-window must be at least 262144 (yamux's initial window, 256 KiB), got 1000"
            ),
            (
                ["--max-stream-window", "-1"],
                "--max-stream-window must be at least 262144 (yamux's initial window, 256 KiB), got -1"
            ),
            (["--keepalive-timeout", "nan"], "--keepalive-timeout must be a number of seconds above 0, got nan"),
            (["--no-such-option"], "Unknown option '--no-such-option'"),
        ]
        for (arguments, line) in cases { try self.expectUsageError("repeaterd", arguments, line) }
    }

    func testRuntimeManagerRefusesOutOfRangeNumbersInOneLine() throws {
        let cases: [([String], String)] = [
            (["--max-streams", "0"], "--max-streams must be at least 1, got 0"),
            (
                ["--keepalive-interval", "-2"],
                "--keepalive-interval must be a number of seconds from 0 on (0 turns pings off), got -2"
            ),
            (["--keepalive-timeout", "0"], "--keepalive-timeout must be a number of seconds above 0, got 0"),
            (["--max-store-bytes", "-1"], "--max-store-bytes must be at least 0, got -1"),
            (["--max-message-bytes", "0"], "--max-message-bytes must be at least 1, got 0"),
            (["--message-timeout", "0"], "--message-timeout must be a number of seconds above 0, got 0"),
            (["--idle-timeout", "-1"], "--idle-timeout must be a number of seconds from 0 on (0 turns it off), got -1"),
        ]
        for (arguments, line) in cases { try self.expectUsageError("runtime-manager", self.managerFiles + arguments, line) }
    }

    func testRuntimeClientAndMuxcatRefuseOutOfRangeNumbersInOneLine() throws {
        try self.expectUsageError(
            "runtime-client", ["policy-hash", "--cert", "c", "--key", "k", "--ca", "a", "--max-message-bytes", "-5"],
            "--max-message-bytes must be at least 1, got -5")
        try self.expectUsageError(
            "runtime-client", ["policy-hash", "--key", "k"],
            "missing --cert, --ca: every command needs this client's certificate, key and the CA (tools/gen-certs.sh makes them)")
        try self.expectUsageError("muxcat", ["connect", "127.0.0.1:1", "--streams", "0"], "--streams must be at least 1, got 0")
    }

    /// `runtime-client put --help` printed the top-level help, and `help put` failed for want of --cert.
    func testSubcommandHelpWorksWithNoOtherArguments() throws {
        for arguments in [["put", "--help"], ["help", "put"]] {
            let result = try runProcess(try Binaries.path("runtime-client"), arguments)
            XCTAssertEqual(result.status, 0, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stdout.contains("USAGE: runtime-client put <local> <remote>"), "\(arguments): \(result.stdout)")
            XCTAssertTrue(result.stdout.contains("Every command also needs --cert FILE --key FILE --ca FILE"), result.stdout)
        }
    }

    /// Its overview had hard line breaks inside a paragraph, which argument-parser then wrapped again.
    func testRuntimeManagerHelpOverviewIsOneParagraph() throws {
        let result = try runProcess(try Binaries.path("runtime-manager"), ["--help"])
        XCTAssertEqual(result.status, 0)
        let flattened = result.stdout.replacingOccurrences(of: "\n", with: " ")
        XCTAssertTrue(flattened.contains("--policy says which client may write, append, read which files"), result.stdout)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let paragraph = lines.drop { !$0.hasPrefix("Every session") }.prefix { !$0.isEmpty }
        XCTAssertGreaterThanOrEqual(paragraph.dropLast().map(\.count).min() ?? 0, 60, "a short line mid-paragraph: \(paragraph)")
    }
}
