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
        let words = [
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
        XCTAssertTrue(eventually(timeout: 30) {
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
        XCTAssertTrue(try runProcess("/bin/sh", ["-c", "\(try clientCommandLine(port: port, ["put", file])) \"$(printf '\\377')\""]).stderr
            .contains("\\xff"), "the name is shown with its bytes")
    }
}
