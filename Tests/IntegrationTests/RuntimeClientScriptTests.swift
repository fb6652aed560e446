import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// runtime-client driven as a script author drives it (issue 42), through repeaterd to a real
/// runtime manager: what is stored is never lost, what is stored can be read back, and odd
/// input is refused in one line.
final class RuntimeClientScriptTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    /// A runtime manager and a repeater in front of it: the repeater's client port.
    private func system(_ managerOptions: [String] = []) throws -> (manager: RunningProcess, port: Int) {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort, managerOptions)
        let (_, port) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        return (manager, port)
    }

    private func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// Item 3: a file larger than the message limit of both sides is stored (in chunks) and read
    /// back whole: a get's file is streamed, so `--max-message-bytes` does not bound it.
    func testAStoredFileCanBeReadBackWhateverTheMessageLimit() throws {
        let limit = "\(9 * 1024 * 1024)"
        let (_, port) = try system(["--max-message-bytes", limit])
        let file = try deployment.makeFile("big.bin", bytes: 20 * 1024 * 1024 + 3)
        let put = try deployment.runClient(port: port, ["--max-message-bytes", limit, "put", file, "big.bin"])
        XCTAssertEqual(put.status, 0, put.stderr)
        let fetched = deployment.sandbox.temporaryFile("fetched.bin")
        let get = try deployment.runClient(port: port, ["--max-message-bytes", limit, "get", "big.bin", fetched])
        XCTAssertEqual(get.status, 0, get.stderr)
        XCTAssertEqual(contents(fetched), contents(file))
    }

    /// The command line of `runtime-client ARGS` against `port`, for a shell (single-quoted).
    private func clientCommandLine(port: Int, _ arguments: [String]) throws -> String {
        let words =
            [
                try Binaries.path("runtime-client"), "--connect", "127.0.0.1:\(port)", "--cert", Certificates.path("client.pem"),
                "--key", Certificates.path("client.key"), "--ca", Certificates.path("ca.pem"), "--quiet",
            ] + arguments
        return words.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
    }

    private func sha256(_ path: String) throws -> String {
        let result = try runProcess("/usr/bin/sha256sum", [path])
        return String(result.stdout.prefix(64))
    }

    private func remoteHash(port: Int, _ name: String) throws -> String {
        let hash = try deployment.runClient(port: port, ["hash", name])
        XCTAssertEqual(hash.status, 0, hash.stderr)
        return String(hash.stdout.prefix(64))
    }

    /// Item 1: a put interrupted in the middle (Ctrl-C, a kill) leaves the stored file as it was. The new content
    /// comes through a named pipe whose writer stops after 24 MiB (two 8 MiB chunks sent, the
    /// third held back while the client reads one ahead), and the client is interrupted there.
    func testAnInterruptedPutLeavesTheStoredVersion() throws {
        let (manager, port) = try system(["--log-level", "debug"])
        let old = try deployment.makeFile("old.bin", bytes: 3 * 1024 * 1024)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", old, "target"]).status, 0)
        let new = try deployment.makeFile("new.bin", bytes: 24 * 1024 * 1024)
        let fifo = deployment.sandbox.temporaryFile("new.fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let writer = try deployment.sandbox.start("/bin/sh", ["-c", "exec > '\(fifo)'; cat '\(new)'; exec sleep 60"], name: "writer")
        let answeredBefore = manager.stderr.text.components(separatedBy: "request answered").count
        let put = try deployment.client(port: port, ["put", fifo, "target"])
        // Two chunks (16 MiB) answered: the put is well under way.
        XCTAssertTrue(
            eventually(timeout: 30) {
                manager.stderr.text.components(separatedBy: "request answered").count - answeredBefore >= 2
            }, manager.stderr.text.suffix(2000).description)
        // SIGTERM: what Ctrl-C does (SIGINT) the test runner may have set to be ignored in the
        // processes it starts, as a shell does for background jobs.
        put.signal(SIGTERM)
        XCTAssertNotEqual(put.waitForExit(timeout: 10), 0)
        writer.signal(SIGTERM)
        XCTAssertEqual(try remoteHash(port: port, "target"), try sha256(old), "the old version is still stored")
        // A put that completes replaces it.
        XCTAssertEqual(try deployment.runClient(port: port, ["put", new, "target"]).status, 0)
        XCTAssertEqual(try remoteHash(port: port, "target"), try sha256(new))
    }

    /// Item 4: a named pipe is read once, whole, even when its writer pauses; `put -` reads stdin.
    func testAPutReadsANamedPipeOnceAndStdin() throws {
        let (_, port) = try system()
        let first = try deployment.makeFile("first.bin", bytes: 1024 * 1024)
        let rest = try deployment.makeFile("rest.bin", bytes: 9 * 1024 * 1024 + 17)
        let fifo = deployment.sandbox.temporaryFile("input.fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let put = try deployment.client(port: port, ["put", fifo, "piped"])
        let writer = try deployment.sandbox.start(
            "/bin/sh", ["-c", "{ cat '\(first)'; sleep 0.5; cat '\(rest)'; } > '\(fifo)'"], name: "writer")
        XCTAssertEqual(put.waitForExit(timeout: 60), 0, put.stderr.text)
        XCTAssertEqual(writer.waitForExit(), 0)
        let whole = deployment.sandbox.temporaryFile("whole.bin")
        XCTAssertEqual(try runProcess("/bin/sh", ["-c", "cat '\(first)' '\(rest)' > '\(whole)'"]).status, 0)
        XCTAssertEqual(try remoteHash(port: port, "piped"), try sha256(whole), "all of it, the bytes before the pause too")

        let fromStdin = try deployment.client(port: port, ["put", "-", "from-stdin"])
        fromStdin.write(try XCTUnwrap(contents(first)))
        fromStdin.closeInput()
        XCTAssertEqual(fromStdin.waitForExit(), 0, fromStdin.stderr.text)
        XCTAssertEqual(try remoteHash(port: port, "from-stdin"), try sha256(first))
    }

    /// Item 2: a remote name that is not UTF-8 is refused in one line before anything is sent
    /// (two such names would both become U+FFFD), and so is the empty name; both are usage errors.
    func testNamesThatAreNotUTF8OrEmptyAreRefused() throws {
        let (_, port) = try system()
        let file = try deployment.makeFile("one.txt", bytes: 10)
        for (name, expected) in [("\"$(printf '\\377')\"", "is not valid UTF-8"), ("''", "the remote file name is empty")] {
            let put = try runProcess("/bin/sh", ["-c", "\(try clientCommandLine(port: port, ["put", file])) \(name)"])
            XCTAssertEqual(put.status, 64, put.stderr)
            XCTAssertTrue(put.stderr.contains(expected) && put.stderr.split(separator: "\n").count == 1, put.stderr)
            let get = try runProcess("/bin/sh", ["-c", "\(try clientCommandLine(port: port, ["get"])) \(name)"])
            XCTAssertEqual(get.status, 64, get.stderr)
        }
        XCTAssertTrue(
            try runProcess("/bin/sh", ["-c", "\(try clientCommandLine(port: port, ["put", file])) \"$(printf '\\377')\""]).stderr
                .contains("\\xff"), "the name is shown with its bytes")
    }

    /// Item 11: `hash` prints `HASH  NAME` as sha256sum does, so its output checks a local copy.
    func testHashPrintsWhatSha256sumChecks() throws {
        let (_, port) = try system()
        let file = try deployment.makeFile("checked.bin", bytes: 5000)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", file, file]).status, 0)
        let hash = try deployment.runClient(port: port, ["hash", file])
        XCTAssertEqual(hash.stdout, "\(try sha256(file))  \(file)\n")
        let check = try runProcess("/bin/sh", ["-c", "\(try clientCommandLine(port: port, ["hash", file])) | sha256sum -c"])
        XCTAssertEqual(check.status, 0, check.stdout + check.stderr)
        XCTAssertTrue(check.stdout.contains("\(file): OK"), check.stdout)
    }

    /// Item 10: each class of failure has its own exit status (sysexits), so a script can tell a
    /// retry from a mistake.
    func testEachClassOfFailureHasItsOwnExitStatus() throws {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort)
        let (_, port) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        let file = try deployment.makeFile("f.bin", bytes: 100)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", file, "f"]).status, 0)

        XCTAssertEqual(
            try deployment.runClient(port: port, ["put", file + ".missing", "f"]).status, 66, "a local file missing: EX_NOINPUT")
        XCTAssertEqual(try deployment.runClient(port: port, ["get", "f", "/nonexistent/dir/f"]).status, 73, "cannot write: EX_CANTCREAT")
        XCTAssertEqual(try deployment.runClient(port: port, ["put", file, "f"], who: "reader").status, 77, "denied by policy: EX_NOPERM")
        XCTAssertEqual(try deployment.runClient(port: port, ["get", "no such file", "-"]).status, 1, "the runtime manager said no")
        XCTAssertEqual(try deployment.runClient(port: freePort(), ["policy-hash"]).status, 69, "nothing listens: EX_UNAVAILABLE")
        let wrongCA = try deployment.sandbox.start(
            try Binaries.path("runtime-client"),
            [
                "--connect", "127.0.0.1:\(port)", "--cert", Certificates.path("client.pem"), "--key", Certificates.path("client.key"),
                "--ca", TestCertificates.shared.foreignPath("ca.pem"), "policy-hash",
            ], name: "runtime-client (foreign CA)")
        XCTAssertEqual(wrongCA.waitForExit(), 78, "a TLS or identity failure: EX_CONFIG \(wrongCA.stderr.text)")
        manager.signal(SIGTERM)
        XCTAssertEqual(manager.waitForExit(), 0)
        let linkDown = try deployment.runClient(port: port, ["policy-hash"])
        XCTAssertEqual(linkDown.status, 69, "the repeater's link is down: EX_UNAVAILABLE, retry later: \(linkDown.stderr)")

        let help = try runProcess(try Binaries.path("runtime-client"), ["--help"])
        for code in ["66", "69", "73", "75", "76", "77", "78"] {
            XCTAssertTrue(help.stdout.contains("\n  \(code) "), "--help lists \(code): \(help.stdout)")
        }
    }

    /// Item 6: a peer that accepts and says nothing (nc -l) ends the client after --timeout, with
    /// the phase that timed out and EX_TEMPFAIL.
    func testASilentPeerTimesOutAndSaysWhere() throws {
        let port = freePort()
        let nc = try deployment.sandbox.start(
            try Binaries.system("nc", package: "netcat-openbsd"), ["-l", "127.0.0.1", "\(port)"], name: "nc -l")
        usleep(300_000)
        let started = Date()
        let client = try deployment.runClient(port: port, ["--timeout", "1", "policy-hash"])
        XCTAssertEqual(client.status, 75, client.stderr)
        XCTAssertTrue(client.stderr.contains("TLS handshake") && client.stderr.contains("1 s"), client.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        nc.signal(SIGTERM)
    }

    /// Item 7: a get killed mid-transfer (SIGTERM; SIGINT alike) leaves no `.NAME.part-XXXXXX`.
    func testAnInterruptedGetLeavesNoPartFile() throws {
        let linkPort = freePort()
        _ = try deployment.runtimeManager(linkPort: linkPort)
        let (repeater, port) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        let file = try deployment.makeFile("big.bin", bytes: 64 * 1024 * 1024)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", file, "big"]).status, 0)
        let directory = deployment.sandbox.temporaryFile("downloads")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let get = try deployment.client(port: port, ["get", "big", "\(directory)/big.bin"])
        func partFiles() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.contains(".part-") }
        }
        XCTAssertTrue(eventually(timeout: 30) { !partFiles().isEmpty })
        // Hold the transfer where it is, then stop the client.
        repeater.signal(SIGSTOP)
        defer { repeater.signal(SIGCONT) }
        get.signal(SIGTERM)
        // Ended by the signal itself (a shell's $? says 143); Foundation reports the signal.
        XCTAssertEqual(get.waitForExit(), SIGTERM, get.stderr.text)
        XCTAssertEqual(partFiles(), [], "the temporary file is removed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/big.bin"))
        XCTAssertTrue(get.stderr.text.contains("interrupted"), get.stderr.text)
    }

    /// Item 8: a get over an existing file keeps its mode, and a get to a symlink writes the file
    /// it points to (as cp does), leaving the link a link.
    func testAGetKeepsTheModeAndWritesThroughASymlink() throws {
        let (_, port) = try system()
        let file = try deployment.makeFile("source.bin", bytes: 3000)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", file, "f"]).status, 0)
        let existing = try deployment.makeFile("existing.bin", bytes: 10)
        XCTAssertEqual(chmod(existing, 0o600), 0)
        XCTAssertEqual(try deployment.runClient(port: port, ["get", "f", existing]).status, 0)
        XCTAssertEqual(contents(existing), contents(file))
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: existing)[.posixPermissions] as? Int)
        XCTAssertEqual(mode, 0o600)

        let target = try deployment.makeFile("target.bin", bytes: 10)
        let link = deployment.sandbox.temporaryFile("link.bin")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        XCTAssertEqual(try deployment.runClient(port: port, ["get", "f", link]).status, 0)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), target, "still a link")
        XCTAssertEqual(contents(target), contents(file))
    }

    /// Item 9: a name holding a newline and a terminal escape is written escaped: the error stays
    /// one line and sends no escape sequence to the terminal.
    func testNamesInErrorLinesAreEscaped() throws {
        let (_, port) = try system()
        let name = "bad\nname\u{1b}[31m"
        let get = try deployment.runClient(port: port, ["get", name, "-"])
        XCTAssertEqual(get.status, 1)
        XCTAssertEqual(get.stderr.split(separator: "\n").count, 1, get.stderr)
        XCTAssertFalse(get.stderr.contains("\u{1b}"), get.stderr)
        XCTAssertTrue(get.stderr.contains(#"bad\nname\e[31m"#), get.stderr)
    }
}
