import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `--log-format json` in a real run of every daemon: each line of stderr is one JSON object
/// with ts, level, msg and the line's metadata, whatever the message holds.
final class JSONLogTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    private static let levels: Set<String> = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// Every line of `text` as a JSON object with the fields every line has.
    private func parsedLines(_ text: String, of name: String, file: StaticString = #filePath, line: UInt = #line) -> [[String: Any]] {
        var objects: [[String: Any]] = []
        for (index, logLine) in text.split(separator: "\n").enumerated() {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(logLine.utf8))) as? [String: Any] else {
                XCTFail("\(name) line \(index + 1) is not a JSON object: \(logLine)", file: file, line: line)
                continue
            }
            let ts = object["ts"] as? String ?? ""
            XCTAssertNotNil(
                ts.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"#, options: .regularExpression), "\(name): ts \(ts)",
                file: file, line: line)
            XCTAssertTrue(Self.levels.contains(object["level"] as? String ?? ""), "\(name): \(logLine)", file: file, line: line)
            XCTAssertNotNil(object["msg"] as? String, "\(name): \(logLine)", file: file, line: line)
            objects.append(object)
        }
        XCTAssertFalse(objects.isEmpty, "\(name) logged something", file: file, line: line)
        return objects
    }

    /// The runtime manager listens on a Unix socket whose name holds a quote, a newline and
    /// non-ASCII; repeaterd's link goes there; a TLS session runs through both; both stop on
    /// SIGTERM. The address comes back from the JSON exactly, in a message and in metadata.
    func testRepeaterdAndRuntimeManagerWriteOnlyJSONLinesWhateverTheMessageHolds() throws {
        let socketPath = deployment.sandbox.temporaryFile("link \"é漢\"\nx")
        let link = "unix:\(socketPath)"
        let clientPort = freePort()
        let manager = try deployment.sandbox.start(
            try Binaries.path("runtime-manager"),
            [
                "--listen", link, "--cert", Certificates.path("runtime-manager.pem"), "--key", Certificates.path("runtime-manager.key"),
                "--client-ca", Certificates.path("ca.pem"), "--policy", Certificates.path("policy.json"), "--log-format", "json",
            ], name: "runtime-manager")
        manager.waitFor("accepting repeater links", onStderr: true)
        let repeater = try deployment.sandbox.start(
            try Binaries.repeaterd, ["--listen", "127.0.0.1:\(clientPort)", "--backend", link, "--log-format", "json", "--threads", "2"],
            name: "repeaterd")
        repeater.waitFor("link up", onStderr: true)
        let file = try deployment.makeFile("input.bin", bytes: 5000)
        XCTAssertEqual(try deployment.runClient(port: clientPort, ["put", file, "json/input.bin"]).status, 0)
        XCTAssertEqual(try deployment.runClient(port: clientPort, ["hash", "json/input.bin"]).status, 0)
        repeater.signal(SIGTERM)
        XCTAssertEqual(repeater.waitForExit(), 0)
        manager.signal(SIGTERM)
        XCTAssertEqual(manager.waitForExit(), 0)

        let repeaterLines = parsedLines(repeater.stderr.text, of: "repeaterd")
        let linkUp = try XCTUnwrap(repeaterLines.first { $0["msg"] as? String == "link up" }, repeater.stderr.text)
        XCTAssertEqual(linkUp["backend"] as? String, link, "metadata with a quote, a newline and non-ASCII comes back exactly")
        XCTAssertEqual(linkUp["logger"] as? String, "repeaterd")
        XCTAssertTrue(repeaterLines.contains { ($0["msg"] as? String)?.hasPrefix("shutting down") == true })

        let managerLines = parsedLines(manager.stderr.text, of: "runtime-manager")
        XCTAssertTrue(
            managerLines.contains { $0["msg"] as? String == "accepting repeater links on unix:\(socketPath)" },
            "a message with a quote, a newline and non-ASCII comes back exactly: \(manager.stderr.text)")
        let started = managerLines.filter { $0["msg"] as? String == "session started" }
        XCTAssertEqual(started.count, 2, manager.stderr.text)
        XCTAssertTrue(
            started.allSatisfy {
                ($0["identity"] as? String)?.hasPrefix("CN=client") == true && $0["stream"] is Int && $0["link_peer"] != nil
            },
            "each session line carries its identity, its stream (a number) and its link: \(started)")

        // The two ends name each link alike: repeaterd's "link up" and runtime-manager's
        // "link accepted" and session lines carry the same `link`.
        let upIDs = Set(repeaterLines.filter { $0["msg"] as? String == "link up" }.compactMap { $0["link"] as? String })
        XCTAssertEqual(upIDs.count, 2, "two links, two names: \(repeater.stderr.text)")
        XCTAssertTrue(upIDs.allSatisfy { $0.range(of: "^[0-9a-f]{8}$", options: .regularExpression) != nil }, "\(upIDs)")
        let acceptedIDs = Set(managerLines.filter { $0["msg"] as? String == "link accepted" }.compactMap { $0["link"] as? String })
        XCTAssertEqual(acceptedIDs, upIDs, manager.stderr.text)
        XCTAssertTrue(started.allSatisfy { upIDs.contains($0["link"] as? String ?? "") }, "\(started)")
        XCTAssertTrue(repeaterLines.filter { $0["msg"] as? String == "link up" }.allSatisfy { $0["link_slot"] is Int })
    }

    /// muxcat listen and connect, with -v: their own lines (listening, link and stream open and
    /// close) are JSON log lines too; a failure at start is a `critical` JSON line.
    func testMuxcatListenAndConnectWriteOnlyJSONLines() throws {
        let port = freePort()
        let listener = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(port)", "--echo", "-v", "--log-format", "json"], name: "muxcat listen")
        listener.waitFor("listening on", onStderr: true)
        let connect = try deployment.sandbox.start(
            try Binaries.muxcat, ["connect", "127.0.0.1:\(port)", "-v", "--log-format", "json"], name: "muxcat connect")
        connect.write("say \"hello\"\n")
        connect.closeInput()
        XCTAssertEqual(connect.waitForExit(), 0, connect.stderr.text)
        XCTAssertEqual(connect.stdout.text, "say \"hello\"\n")
        listener.waitFor("closed", onStderr: true)
        listener.signal(SIGTERM)
        XCTAssertEqual(listener.waitForExit(), 0)

        let listenLines = parsedLines(listener.stderr.text, of: "muxcat listen")
        XCTAssertTrue(
            listenLines.contains { ($0["msg"] as? String)?.hasPrefix("listening on 127.0.0.1:\(port)") == true }, listener.stderr.text)
        XCTAssertTrue(listenLines.contains { ($0["msg"] as? String)?.hasPrefix("link 1 accepted") == true }, listener.stderr.text)
        let connectLines = parsedLines(connect.stderr.text, of: "muxcat connect")
        XCTAssertTrue(connectLines.contains { ($0["msg"] as? String)?.contains("connected to") == true }, connect.stderr.text)

        // 192.0.2.1 (TEST-NET-1) is no address of this machine: the listen fails at start.
        let failing = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "192.0.2.1:\(port)", "--log-format", "json"], name: "muxcat listen (no such address)")
        XCTAssertEqual(failing.waitForExit(), 1)
        let failure = parsedLines(failing.stderr.text, of: "muxcat listen (no such address)")
        XCTAssertTrue(
            failure.contains { $0["level"] as? String == "critical" && ($0["msg"] as? String)?.contains("192.0.2.1") == true },
            failing.stderr.text)
    }
}
