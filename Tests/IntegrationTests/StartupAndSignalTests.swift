import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Start-up failures and signals on the real daemons (issue 41): every listener a daemon needs is
/// bound before it serves anything or says READY, a failure is one line and exit 1, and SIGTERM
/// or SIGINT ends the process in every state it can be in at start.
final class StartupAndSignalTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    private var managerArguments: [String] {
        [
            "--cert", Certificates.path("runtime-manager.pem"), "--key", Certificates.path("runtime-manager.key"),
            "--client-ca", Certificates.path("ca.pem"), "--policy", Certificates.path("policy.json"),
        ]
    }

    /// Runs a daemon that must fail at start: exit 1 within 10 s (not a hang), and the one line
    /// it says of it is `line`. Returns everything it wrote.
    private func expectStartFailure(
        _ binary: String, _ arguments: [String], firstLine line: String, file: StaticString = #filePath, lineNumber: UInt = #line
    ) throws -> String {
        let process = try deployment.sandbox.start(try Binaries.path(binary), arguments, name: binary)
        let status = process.waitForExit(timeout: 10, file: file, line: lineNumber)
        XCTAssertEqual(status, 1, "\(binary) \(arguments): \(process.stderr.text)", file: file, line: lineNumber)
        // Its own line (log lines, such as a warning about a kernel setting, may come before it).
        let own = process.stderr.text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("\(binary): ") }
        XCTAssertEqual(own, ["\(binary): \(line)"], "\(process.stderr.text)", file: file, line: lineNumber)
        return process.stderr.text
    }

    private func refusesConnections(_ port: Int) -> Bool { (try? RawSocket.connect(port: port)) == nil }

    /// Before: runtime-manager logged "accepting repeater links", served links, never said why,
    /// and ignored SIGTERM; repeaterd listened, said READY, and failed 4 s into a drain.
    func testAnAdminPortThatIsTakenIsOneLineAndExit1BeforeAnythingIsServed() throws {
        let holder = try RawListener()
        defer { holder.close() }
        let linkPort = freePort()
        let stderr = try expectStartFailure(
            "runtime-manager", ["--listen", "127.0.0.1:\(linkPort)", "--admin", "127.0.0.1:\(holder.port)"] + managerArguments,
            firstLine: "--admin: cannot listen on 127.0.0.1:\(holder.port): address already in use (another process listens there)")
        XCTAssertFalse(stderr.contains("accepting"), stderr)
        XCTAssertTrue(refusesConnections(linkPort), "no link was accepted")

        let clientPort = freePort()
        let repeaterd = try expectStartFailure(
            "repeaterd", ["--listen", "127.0.0.1:\(clientPort)", "--backend", "127.0.0.1:1", "--admin", "127.0.0.1:\(holder.port)"],
            firstLine: "--admin: cannot listen on 127.0.0.1:\(holder.port): address already in use (another process listens there)")
        XCTAssertFalse(repeaterd.contains("repeater listening"), repeaterd)
        XCTAssertTrue(refusesConnections(clientPort), "no client was accepted")
    }

    func testAnAdminHostThatDoesNotResolveIsNamed() throws {
        _ = try expectStartFailure(
            "repeaterd", ["--listen", "127.0.0.1:\(freePort())", "--backend", "127.0.0.1:1", "--admin", "no-such-host.invalid:9011"],
            firstLine:
                "--admin: cannot listen on no-such-host.invalid:9011: cannot resolve the host name no-such-host.invalid (name or service not known)"
        )
    }

    /// A port held by some other program (not shared with SO_REUSEPORT) is not a restart: before,
    /// repeaterd said "another repeaterd listens" and waited beside it.
    func testAClientPortHeldByAnotherProgramIsRefusedNotWaitedBeside() throws {
        let holder = try RawListener()
        defer { holder.close() }
        let stderr = try expectStartFailure(
            "repeaterd", ["--listen", "127.0.0.1:\(holder.port)", "--backend", "127.0.0.1:1"],
            firstLine: "--listen: cannot listen on 127.0.0.1:\(holder.port): address already in use (another process listens there)")
        XCTAssertFalse(stderr.contains("another repeaterd"), stderr)
        XCTAssertFalse(stderr.contains("another socket already listens"), stderr)
    }

    /// `signal` to `process`: it exits 0 within `seconds`.
    private func expectExit(
        _ process: RunningProcess, on signal: Int32, within seconds: TimeInterval, _ state: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let sent = Date()
        process.signal(signal)
        let status = process.waitForExit(timeout: seconds + 10, file: file, line: line)
        let took = Date().timeIntervalSince(sent)
        XCTAssertEqual(status, 0, "\(state): \(process.stderr.text.suffix(1500))", file: file, line: line)
        XCTAssertLessThanOrEqual(took, seconds, "\(state): exit took \(took) s", file: file, line: line)
    }

    func testSIGTERMAndSIGINTEndRepeaterdInEveryStartState() throws {
        for signal in [SIGTERM, SIGINT] {
            // Dialing: listening, its link never up.
            let port = freePort()
            let dialing = try deployment.repeater(listenPort: port, backendPort: 1, ["--drain-timeout", "3"])
            expectExit(dialing, on: signal, within: 5, "dialing, signal \(signal)")

            // Waiting to listen beside another repeaterd whose port it shares (a restart), with
            // links that never come up (a mistyped --backend). Before: only SIGKILL ended it.
            let first = try deployment.repeater(listenPort: port, backendPort: 1, [])
            let waiting = try deployment.sandbox.start(
                try Binaries.repeaterd,
                ["--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:1", "--admin", "127.0.0.1:\(freePort())"],
                name: "repeaterd beside another")
            waiting.waitFor("listening beside it once the links are up", onStderr: true)
            expectExit(waiting, on: signal, within: 5, "waiting to listen beside another, signal \(signal)")
            XCTAssertFalse(waiting.stderr.text.contains("repeater listening"), waiting.stderr.text)
            first.signal(SIGKILL)
            _ = first.waitForExit(timeout: 10)

            // Link up, a session open, then draining: a second signal does not hang it either;
            // it ends when the session does or at the drain timeout.
            let backendPort = freePort()
            let backend = try deployment.sandbox.start(
                try Binaries.muxcat, ["listen", "127.0.0.1:\(backendPort)", "--echo", "-v"], name: "muxcat listen")
            backend.waitFor("listening on", onStderr: true)
            let (serving, clientPort) = try deployment.repeaterWithLinkUp(backendPort: backendPort, ["--drain-timeout", "3"])
            let session = try RawSocket.connect(port: clientPort)
            defer { session.close() }
            session.send(Array("hi\n".utf8))
            session.read(timeout: 10) { $0.count >= 3 }
            XCTAssertEqual(session.received, Array("hi\n".utf8))
            serving.signal(signal)
            serving.waitFor("draining", onStderr: true)
            expectExit(serving, on: signal, within: 6, "draining with a session open, signal \(signal)")
            backend.signal(SIGKILL)
        }
    }

    func testSIGTERMAndSIGINTEndRuntimeManagerWithAndWithoutLinks() throws {
        for signal in [SIGTERM, SIGINT] {
            let linkPort = freePort()
            let idle = try deployment.runtimeManager(linkPort: linkPort, ["--admin", "127.0.0.1:\(freePort())"])
            expectExit(idle, on: signal, within: 5, "no link, signal \(signal)")

            let manager = try deployment.runtimeManager(linkPort: linkPort, [])
            let (repeater, _) = try deployment.repeaterWithLinkUp(backendPort: linkPort, [])
            expectExit(manager, on: signal, within: 5, "a link up, signal \(signal)")
            repeater.signal(SIGKILL)
        }
    }
}
