import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `repeaterd --access-log` on the real processes: one JSON line per session with who, how much,
/// how long and why it ended; refusals as lines of their own cause; and without the flag, what
/// clients cause at will is one summary line, not a line per client.
final class AccessLogTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    /// The parsed lines of repeaterd's JSON log whose `msg` is `message`.
    private func lines(_ text: String, _ message: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { line in
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                object["msg"] as? String == message
            else { return nil }
            return object
        }
    }

    /// Waits until `count` lines with `message` were logged.
    private func waitForLines(
        _ process: RunningProcess, _ message: String, count: Int, file: StaticString = #filePath, line: UInt = #line
    ) -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(20)
        var found: [[String: Any]] = []
        while Date() < deadline {
            found = lines(process.stderr.text, message)
            if found.count >= count { return found }
            usleep(20_000)
        }
        XCTFail("\(found.count) of \(count) '\(message)' lines\n\(process.stderr.text.suffix(3000))", file: file, line: line)
        return found
    }

    private func line(for port: Int, in lines: [[String: Any]]) -> [String: Any]? {
        lines.first { $0["client"] as? String == "127.0.0.1:\(port)" }
    }

    /// The counts a summary phrase gives over all the summary lines (`pattern` starts with `\d+`).
    private func summedCounts(_ summaries: [Substring], _ pattern: String) -> Int {
        summaries.compactMap { line -> Int? in
            guard let range = line.range(of: pattern, options: .regularExpression) else { return nil }
            return Int(line[range].split(separator: " ")[0])
        }.reduce(0, +)
    }

    private func startEcho() throws -> (RunningProcess, port: Int) {
        let port = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(port)", "--echo", "--log-level", "warning"], name: "muxcat --echo")
        return (echo, port)
    }

    private func startRepeater(backend: Int, _ extra: [String]) throws -> (RunningProcess, port: Int) {
        let port = freePort()
        let repeater = try deployment.sandbox.start(
            try Binaries.repeaterd,
            ["--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backend)", "--log-format", "json"] + extra, name: "repeaterd")
        repeater.waitFor("repeater listening", onStderr: true)
        return (repeater, port)
    }

    /// 100 sessions of different sizes: 100 lines, each with its session's exact bytes each way.
    func testEverySessionIsOneLineWithExactByteCountsEachWay() throws {
        let (_, echoPort) = try startEcho()
        let (repeater, port) = try startRepeater(backend: echoPort, ["--access-log", "--threads", "2"])
        // Both loops' links up: every session is served on its own loop (connect_ms is measured there).
        _ = waitForLines(repeater, "link up", count: 2)
        var sent: [Int: Int] = [:]
        for index in 0..<100 {
            let client = try RawSocket.connect(port: port)
            let size = 1 + index * 331
            client.send([UInt8](repeating: UInt8(truncatingIfNeeded: index), count: size))
            client.read(timeout: 10) { $0.count >= size }
            XCTAssertEqual(client.received.count, size, "session \(index): the echo")
            sent[client.localPort] = size
            client.close()
        }
        let ended = waitForLines(repeater, "session ended", count: 100)
        XCTAssertEqual(ended.count, 100)
        for entry in ended {
            let client = try XCTUnwrap(entry["client"] as? String)
            let size = try XCTUnwrap(sent[Int(client.split(separator: ":").last!)!], "a line for a client that never came: \(entry)")
            XCTAssertEqual(entry["bytes_from_client"] as? Int, size, "\(entry)")
            XCTAssertEqual(entry["bytes_to_client"] as? Int, size, "\(entry)")
            XCTAssertEqual(entry["cause"] as? String, "client")
            XCTAssertEqual(entry["ended_by"] as? String, "client")
            XCTAssertEqual(entry["listener"] as? String, "127.0.0.1:\(port)")
            XCTAssertEqual(entry["level"] as? String, "info")
            XCTAssertNotNil((entry["link"] as? String)?.range(of: "^[0-9a-f]{8}$", options: .regularExpression), "\(entry)")
            XCTAssertTrue(entry["stream"] is Int && entry["duration_ms"] is Int && entry["connect_ms"] is Int, "\(entry)")
            XCTAssertLessThanOrEqual(entry["connect_ms"] as? Int ?? .max, entry["duration_ms"] as? Int ?? 0, "\(entry)")
        }
        XCTAssertEqual(Set(ended.compactMap { $0["client"] as? String }).count, 100, "one line per session")
    }

    /// Each way a session can end or be refused has its cause and who ended it.
    func testEachEndHasItsCause() throws {
        let target = try RawListener()
        let muxPort = freePort()
        let mux = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(muxPort)", "--forward", "127.0.0.1:\(target.port)", "--log-level", "warning"],
            name: "muxcat --forward")
        let (repeater, port) = try startRepeater(
            backend: muxPort, ["--access-log", "--threads", "1", "--idle-timeout", "1", "--max-sessions", "2"])
        repeater.waitFor("link up", onStderr: true)

        // The runtime manager's side closes first.
        let closedByFar = try RawSocket.connect(port: port)
        let closedByFarPort = closedByFar.localPort
        closedByFar.send(Array("ping".utf8))
        let far = try target.accept(timeout: 10)
        far.read(timeout: 10) { $0.count >= 4 }
        XCTAssertEqual(far.received.count, 4)
        far.close()
        XCTAssertTrue(closedByFar.readUntilClosed(timeout: 10), "the far side's close reaches the client")
        closedByFar.close()
        _ = waitForLines(repeater, "session ended", count: 1)  // its slot under --max-sessions is free again

        // Over --max-sessions: two sessions held open, a third refused at once.
        let held = [try RawSocket.connect(port: port), try RawSocket.connect(port: port)]
        let heldPorts = held.map(\.localPort)
        for client in held { client.send([1]) }
        let heldTargets = [try target.accept(timeout: 10), try target.accept(timeout: 10)]
        let overLimit = try RawSocket.connect(port: port)
        let overLimitPort = overLimit.localPort
        XCTAssertTrue(overLimit.readUntilClosed(timeout: 10), "refused at once")
        // Silent for the idle timeout: both held sessions are closed by the repeater.
        for client in held { XCTAssertTrue(client.readUntilClosed(timeout: 10), "closed for silence") }

        // The link goes down under an open session, and a client arriving then is refused.
        let cut = try RawSocket.connect(port: port)
        let cutPort = cut.localPort
        cut.send(Array("x".utf8))
        let cutTarget = try target.accept(timeout: 10)
        cutTarget.read(timeout: 10) { $0.count >= 1 }
        XCTAssertEqual(cutTarget.received.count, 1)
        mux.signal(SIGKILL)
        XCTAssertTrue(cut.readUntilClosed(timeout: 10), "the link's loss closes the session")
        repeater.waitFor("went down", onStderr: true)
        let whileDown = try RawSocket.connect(port: port)
        let whileDownPort = whileDown.localPort
        XCTAssertTrue(whileDown.readUntilClosed(timeout: 10))

        let ended = waitForLines(repeater, "session ended", count: 4)
        let refused = waitForLines(repeater, "session refused", count: 2)
        func check(
            _ port: Int, in lines: [[String: Any]], cause: String, endedBy: String, file: StaticString = #filePath, line: UInt = #line
        ) {
            guard let entry = self.line(for: port, in: lines) else {
                return XCTFail("no line for 127.0.0.1:\(port): \(lines)", file: file, line: line)
            }
            XCTAssertEqual(entry["cause"] as? String, cause, "\(entry)", file: file, line: line)
            XCTAssertEqual(entry["ended_by"] as? String, endedBy, "\(entry)", file: file, line: line)
        }
        check(closedByFarPort, in: ended, cause: "runtime_manager", endedBy: "runtime_manager")
        XCTAssertEqual(line(for: closedByFarPort, in: ended)?["bytes_from_client"] as? Int, 4)
        for heldPort in heldPorts { check(heldPort, in: ended, cause: "idle", endedBy: "repeater") }
        check(cutPort, in: ended, cause: "link_down", endedBy: "runtime_manager")
        check(overLimitPort, in: refused, cause: "refused_limit", endedBy: "repeater")
        check(whileDownPort, in: refused, cause: "refused_link_down", endedBy: "repeater")
        XCTAssertTrue(refused.allSatisfy { $0["reason"] is String && $0["bytes_from_client"] as? Int == 0 }, "\(refused)")
        XCTAssertFalse(
            repeater.stderr.text.contains("refusing client") || repeater.stderr.text.contains("closing idle"),
            "no warning per client beside the access lines:\n\(repeater.stderr.text)")
        _ = heldTargets
        target.close()
    }

    /// The access lines are written under `--log-level warning` too: the flag asks for them.
    func testAccessLinesAreWrittenWhateverTheLogLevel() throws {
        let (_, echoPort) = try startEcho()
        let port = freePort()
        let repeater = try deployment.sandbox.start(
            try Binaries.repeaterd,
            [
                "--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(echoPort)", "--log-format", "json", "--access-log",
                "--log-level", "warning", "--threads", "1",
            ], name: "repeaterd")
        // Nothing at info says it listens or that its link is up: try until a session goes through.
        let deadline = Date().addingTimeInterval(20)
        var echoed = false
        while !echoed && Date() < deadline {
            guard let client = try? RawSocket.connect(port: port) else {
                usleep(50_000)
                continue
            }
            client.send(Array("hello".utf8))
            client.read(timeout: 5) { $0.count >= 5 }
            echoed = client.received.count == 5
            client.close()
        }
        XCTAssertTrue(echoed, repeater.stderr.text)
        let ended = waitForLines(repeater, "session ended", count: 1)
        XCTAssertEqual(ended.first?["bytes_to_client"] as? Int, 5, "\(ended)")
        XCTAssertFalse(repeater.stderr.text.contains("\"link up\""), "other info lines stay out:\n\(repeater.stderr.text)")
    }

    /// `runtime-manager --access-log`: one line per session naming the certificate's subject, the
    /// requests by type, those the policy refused, the bytes each way (the same the repeater
    /// counts for that session) and the TLS version; no started/ended pair.
    func testRuntimeManagersLineNamesTheSubjectAndTheRequests() throws {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort, ["--access-log", "--log-format", "json"])
        let (repeater, port) = try startRepeater(backend: linkPort, ["--access-log", "--threads", "1"])
        repeater.waitFor("link up", onStderr: true)
        let file = try deployment.makeFile("input.bin", bytes: 300_000)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", file, "access/input.bin"]).status, 0)
        let denied = try deployment.runClient(port: port, ["put", file, "access/other.bin"], who: "reader")
        XCTAssertNotEqual(denied.status, 0, "the reader may not write: \(denied.stderr)")

        let lines = waitForLines(manager, "session ended", count: 2)
        let writer = try XCTUnwrap(lines.first { ($0["identity"] as? String)?.hasPrefix("CN=client ") == true }, "\(lines)")
        let reader = try XCTUnwrap(lines.first { ($0["identity"] as? String)?.hasPrefix("CN=reader ") == true }, "\(lines)")
        let writerRequests = try XCTUnwrap(writer["requests"] as? [String: Int], "\(writer)")
        XCTAssertGreaterThanOrEqual(writerRequests["write_file"] ?? 0, 1, "\(writer)")
        XCTAssertEqual(writer["refused"] as? Int, 0)
        XCTAssertGreaterThanOrEqual(reader["refused"] as? Int ?? 0, 1, "the policy's refusal is counted: \(reader)")
        XCTAssertEqual(writer["tls_version"] as? String, "TLSv1.3")
        XCTAssertEqual(writer["cause"] as? String, "client")
        XCTAssertGreaterThan(writer["bytes_from_client"] as? Int ?? 0, 300_000, "the file crossed in TLS records: \(writer)")
        XCTAssertTrue(writer["stream"] is Int && writer["link"] is String && writer["duration_ms"] is Int, "\(writer)")
        XCTAssertFalse(manager.stderr.text.contains("\"session started\""), "no started/ended pair beside the access line")

        // Both daemons count the same bytes for the same session (repeaterd's client side is the
        // runtime manager's stream, byte for byte).
        let repeaterLines = waitForLines(repeater, "session ended", count: 2)
        let sameStream = try XCTUnwrap(repeaterLines.first { $0["stream"] as? Int == writer["stream"] as? Int }, "\(repeaterLines)")
        XCTAssertEqual(sameStream["bytes_from_client"] as? Int, writer["bytes_from_client"] as? Int)
        XCTAssertEqual(sameStream["bytes_to_client"] as? Int, writer["bytes_to_client"] as? Int)
    }

    /// `--accept-proxy`: a client that does not start with a PROXY header is a refused session.
    func testABadProxyHeaderIsARefusedSession() throws {
        let (_, echoPort) = try startEcho()
        let (repeater, port) = try startRepeater(backend: echoPort, ["--access-log", "--accept-proxy"])
        let client = try RawSocket.connect(port: port)
        client.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        XCTAssertTrue(client.readUntilClosed(timeout: 10))
        let refused = waitForLines(repeater, "session refused", count: 1)
        XCTAssertEqual(refused.first?["cause"] as? String, "refused_proxy_header", "\(refused)")
        XCTAssertEqual(refused.first?["ended_by"] as? String, "repeater")
    }

    /// Without --access-log, 1,000 clients refused while the link is down are one summary line (at
    /// the exit at the latest), not a thousand warnings.
    func testWithoutTheAccessLogRefusalsAreOneSummaryLine() throws {
        let deadBackend = freePort()
        let port = freePort()
        let repeater = try deployment.sandbox.start(
            try Binaries.repeaterd, ["--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(deadBackend)", "--threads", "1"],
            name: "repeaterd")
        repeater.waitFor("repeater listening", onStderr: true)
        for _ in 0..<1000 {
            let client = try RawSocket.connect(port: port)
            XCTAssertTrue(client.readUntilClosed(timeout: 10))
            client.close()
        }
        repeater.signal(SIGTERM)
        XCTAssertEqual(repeater.waitForExit(), 0)
        let text = repeater.stderr.text
        let summaries = text.split(separator: "\n").filter { $0.contains("clients refused while the link was down") }
        let total = summedCounts(summaries, #"\d+ clients refused while the link was down"#)
        XCTAssertEqual(total, 1000, "every refusal counted:\n\(summaries.joined(separator: "\n"))")
        XCTAssertLessThanOrEqual(summaries.count, 3, "one line per 10 s, not one per client:\n\(text.suffix(3000))")
        XCTAssertFalse(text.contains("closing client at once") || text.contains("refusing client"), text.suffix(3000).description)
        XCTAssertLessThan(text.split(separator: "\n").count, 60, "the log stays short:\n\(text.suffix(3000))")
    }

    /// What a client can make a runtime-manager session end with at will (here: plaintext where TLS
    /// is expected) is, without --access-log, one summary line per 10 s with the count and the
    /// last one's reason, not a warning per session; with --access-log, each session's line says
    /// it in `cause` and `reason`.
    func testRuntimeManagersClientCausedEndsAreASummaryOrTheAccessLine() throws {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort, [])
        let (repeater, port) = try startRepeater(backend: linkPort, ["--threads", "1"])
        XCTAssertTrue(repeater.waitFor("link up", onStderr: true))
        let plaintext = Array("GET / HTTP/1.1\r\nHost: runtime-manager\r\n\r\n".utf8)
        for _ in 0..<200 {
            let client = try RawSocket.connect(port: port)
            client.send(plaintext)
            XCTAssertTrue(client.readUntilClosed(timeout: 10), "the runtime manager ends a session that is not TLS")
            client.close()
        }
        manager.signal(SIGTERM)
        XCTAssertEqual(manager.waitForExit(), 0)
        let text = manager.stderr.text
        let summaries = text.split(separator: "\n").filter {
            $0.contains("[RuntimeManager] sessions over the last 10 s: ")
                || $0.contains("[RuntimeManager] sessions since the last summary, at exit: ")
        }
        let total = summedCounts(summaries, #"\d+ sessions? closed for a failed TLS handshake"#)
        XCTAssertEqual(total, 200, "every failed handshake counted:\n\(summaries.joined(separator: "\n"))")
        XCTAssertLessThanOrEqual(summaries.count, 3, "one line per 10 s, not one per session:\n\(text.suffix(3000))")
        XCTAssertTrue(summaries.allSatisfy { $0.contains("(the last: ") }, "the summary says why:\n\(summaries.joined(separator: "\n"))")
        XCTAssertFalse(text.contains("TLS handshake failed"), text.suffix(3000).description)
        XCTAssertLessThan(text.split(separator: "\n").count, 40, "the log stays short:\n\(text.suffix(3000))")

        // With --access-log: the session's own line, with the cause and the reason.
        let secondLink = freePort()
        let logged = try deployment.runtimeManager(linkPort: secondLink, ["--access-log", "--log-format", "json"])
        let (secondRepeater, secondPort) = try startRepeater(backend: secondLink, ["--threads", "1"])
        XCTAssertTrue(secondRepeater.waitFor("link up", onStderr: true))
        let client = try RawSocket.connect(port: secondPort)
        client.send(plaintext)
        XCTAssertTrue(client.readUntilClosed(timeout: 10))
        client.close()
        let line = try XCTUnwrap(waitForLines(logged, "session ended", count: 1).first)
        XCTAssertEqual(line["cause"] as? String, "tls_failed", "\(line)")
        XCTAssertFalse((line["reason"] as? String ?? "").isEmpty, "\(line)")
        XCTAssertNil(line["identity"], "no certificate, no identity: \(line)")
        XCTAssertFalse(logged.stderr.text.contains("TLS handshake failed"), logged.stderr.text)
    }
}
