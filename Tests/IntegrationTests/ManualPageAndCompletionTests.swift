import Foundation
import ProcessTestSupport
import XCTest

/// The manual pages and shell completions the packages ship (tools/manpage.py,
/// tools/completions.sh), made from the binaries just built, say what the binaries do (issue 41):
/// no subcommand a binary does not have, the defaults `--help` shows, exit status 64 for a usage
/// error, and bash completing `--log-format=` with a format rather than with every option.
final class ManualPageAndCompletionTests: XCTestCase {
    private static let products = ["repeaterd", "runtime-manager", "runtime-client", "muxcat"]
    private var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "manual-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    private func tool(_ name: String) -> String { repositoryRoot.appendingPathComponent("tools/\(name)").path }

    /// The page of `product` as `man` renders it (250 columns: a phrase is not wrapped apart), and what man said on stderr.
    private func renderedPage(_ product: String) throws -> (text: String, warnings: String) {
        let written = try runProcess(
            "/usr/bin/python3", [tool("manpage.py"), try Binaries.path(product), "--output-directory", directory, "--date", "2026-12-07"])
        XCTAssertEqual(written.status, 0, written.stderr)
        let man = try Binaries.system("man", package: "man-db")
        let rendered = try runProcess(
            "/usr/bin/env", ["MANWIDTH=250", "MANPAGER=cat", "LC_ALL=C.UTF-8", man, "--warnings", "-l", "\(directory!)/\(product).1"])
        XCTAssertEqual(rendered.status, 0, rendered.stderr)
        // man renders hyphens and quotes as typographic ones in UTF-8; compare as typed.
        let text = rendered.stdout.replacingOccurrences(of: "\u{2010}", with: "-").replacingOccurrences(of: "\u{2212}", with: "-")
        return (text, rendered.stderr)
    }

    private func section(_ name: String, of page: String) -> String {
        let lines = page.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0 == name }) else { return "" }
        let rest = lines[(start + 1)...]
        let end = rest.firstIndex { !$0.isEmpty && !$0.hasPrefix(" ") } ?? rest.endIndex
        return rest[..<end].joined(separator: "\n")
    }

    func testEveryPageRendersWithoutWarningsAndListsExitStatus64() throws {
        for product in Self.products {
            let page = try renderedPage(product)
            XCTAssertEqual(page.warnings, "", "\(product): man --warnings")
            let exitStatus = section("EXIT STATUS", of: page.text)
            for code in ["0", "1", "64"] {
                XCTAssertNotNil(exitStatus.range(of: "(?m)^ +\(code) ", options: .regularExpression), "\(product): \(exitStatus)")
            }
        }
    }

    /// repeaterd has no subcommands: its synopsis names none (generate-manual's said
    /// `repeaterd subcommand ... help`, and `repeaterd help x` is a usage error); a default
    /// --help shows is in the page; one that depends on the machine (--threads) is said in words.
    func testASynopsisNamesOnlyWhatTheBinaryTakesAndOptionsShowTheirDefaults() throws {
        let repeaterd = try renderedPage("repeaterd").text
        let synopsis = section("SYNOPSIS", of: repeaterd)
        XCTAssertTrue(synopsis.contains("repeaterd [--listen listen]"), synopsis)
        XCTAssertFalse(synopsis.contains("subcommand") || synopsis.contains(" help"), synopsis)
        let options = section("OPTIONS", of: repeaterd)
        XCTAssertTrue(options.contains("(default: 16384)"), "--max-sessions' default, as --help shows it: \(options)")
        XCTAssertTrue(options.contains("(values: human, json) (default: human)"), options)
        XCTAssertTrue(options.contains("Default: one per CPU."), options)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        XCTAssertFalse(options.contains("one per CPU. (default: \(cores))"), "the machine that wrote the page is not the reader's")

        let client = section("SYNOPSIS", of: try renderedPage("runtime-client").text)
        for line in [
            "runtime-client [options] put local remote", "runtime-client [options] get remote [local]", "runtime-client help [subcommand]",
        ] {
            XCTAssertTrue(client.contains(line), client)
        }
        // Where the page names `help`, it works.
        let help = try runProcess(try Binaries.path("runtime-client"), ["help", "put"])
        XCTAssertEqual(help.status, 0, help.stderr)
        XCTAssertTrue(help.stdout.contains("USAGE: runtime-client put"), help.stdout)
    }

    /// The completions offer `help` to every command; `repeaterd help` does what it offers.
    func testHelpAloneWorksInACommandWithoutSubcommands() throws {
        for product in ["repeaterd", "runtime-manager"] {
            let help = try runProcess(try Binaries.path(product), ["help"])
            XCTAssertEqual(help.status, 0, "\(product) help: \(help.stderr)")
            XCTAssertTrue(help.stdout.contains("USAGE: \(product)"), help.stdout)
        }
        let extra = try runProcess(try Binaries.repeaterd, ["help", "listen"])
        XCTAssertEqual(extra.status, 64, "still a usage error with more after it: \(extra.stderr)")
    }

    /// What bash offers for the word at the end of `words`, as bash itself splits a command line
    /// (`--log-format=` is three words: `--log-format`, `=`, and what follows).
    private func bashCompletions(_ product: String, _ words: [String]) throws -> [String] {
        let script = "\(directory!)/bash/\(product)"
        let quoted = words.map { "'\($0)'" }.joined(separator: " ")
        let program = """
            source '\(script)'
            COMP_WORDS=(\(quoted)); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
            function=$(complete -p '\(product)' | sed 's/.*-F \\([^ ]*\\) .*/\\1/')
            "$function" '\(product)' "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let result = try runProcess("/bin/bash", ["-c", program])
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.stdout.split(separator: "\n").map(String.init).sorted()
    }

    func testBashCompletesOptionValuesWithOrWithoutAnEqualsSign() throws {
        for product in Self.products {
            let made = try runProcess("/bin/bash", [tool("completions.sh"), try Binaries.path(product), directory])
            XCTAssertEqual(made.status, 0, made.stderr)
            for path in ["bash/\(product)", "zsh/_\(product)", "fish/\(product).fish"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory!)/\(path)"), path)
            }
        }
        XCTAssertEqual(try bashCompletions("repeaterd", ["repeaterd", "--log-format", ""]), ["human", "json"])
        XCTAssertEqual(try bashCompletions("repeaterd", ["repeaterd", "--log-format", "="]), ["human", "json"], "right after '='")
        XCTAssertEqual(try bashCompletions("repeaterd", ["repeaterd", "--log-format", "=", "j"]), ["json"])
        XCTAssertEqual(
            try bashCompletions("muxcat", ["muxcat", "listen", "127.0.0.1:6000", "--log-level", "=", "w"]), ["warning"])
        // After `--listen=X` the next word is an option again, not the listen address's value.
        let next = try bashCompletions("repeaterd", ["repeaterd", "--listen", "=", "127.0.0.1:3011", "--thr"])
        XCTAssertEqual(next, ["--threads"])
        let commands = try bashCompletions("runtime-client", ["runtime-client", "--connect", "=", "127.0.0.1:3011", "p"])
        XCTAssertEqual(commands, ["policy-hash", "put"])
    }
}
