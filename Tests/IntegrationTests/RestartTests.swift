import Foundation
import ProcessTestSupport
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A restart on one host: a new `repeaterd` starts on the same port (SO_REUSEPORT) while
/// clients keep connecting, and the old one gets SIGTERM. No client may be refused or reset, and
/// the sessions open on the old process finish.
final class RestartTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    /// What the client loops saw.
    private final class Tally: Sendable {
        let served = Atomic<Int>(0)
        let refused = Atomic<Int>(0)
        let reset = Atomic<Int>(0)
        let cutShort = Atomic<Int>(0)
        let stalled = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        /// When the first failure happened (ns since the loops started), for the summary.
        let firstFailureAt = Atomic<Int>(-1)
        let started = DispatchTime.now().uptimeNanoseconds

        /// Counts a failed exchange by the errno that ended it.
        func failed(errno code: Int32, connecting: Bool) {
            _ = firstFailureAt.compareExchange(
                expected: -1, desired: Int(DispatchTime.now().uptimeNanoseconds - started), ordering: .relaxed)
            if code == ECONNRESET {
                reset.add(1, ordering: .relaxed)
            } else if code == EAGAIN {
                stalled.add(1, ordering: .relaxed)
            } else if connecting {
                refused.add(1, ordering: .relaxed)
            } else {
                cutShort.add(1, ordering: .relaxed)
            }
        }
    }

    /// One connection: connect, send 6 bytes, read the 6 echoed, close. Classified by what failed.
    private static func exchange(port: Int, tally: Tally) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in.loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            tally.failed(errno: errno, connecting: true)
            return
        }
        let message: [UInt8] = Array("hello\n".utf8)
        guard send(fd, message, message.count, Int32(MSG_NOSIGNAL)) == message.count else {
            tally.failed(errno: errno, connecting: false)
            return
        }
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 64)
        while received < message.count {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 {
                received += count
            } else if count == 0 {
                tally.cutShort.add(1, ordering: .relaxed)
                return
            } else {
                tally.failed(errno: errno, connecting: false)
                return
            }
        }
        tally.served.add(1, ordering: .relaxed)
    }

    /// The documented procedure includes `net.ipv4.tcp_migrate_req=1` (README, "Restarting without
    /// dropping a connection"): set here for the test when it is off, and put back after. Without
    /// it the clients waiting in the old listeners' accept queue are reset (1–10 per run measured).
    private func withConnectionMigration(_ body: () throws -> Void) throws {
        let path = "/proc/sys/net/ipv4/tcp_migrate_req"
        let before = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        if before != "1" {
            do {
                try "1".write(toFile: path, atomically: false, encoding: .utf8)
            } catch {
                XCTFail("cannot set \(path) to 1 (\(error)): run the tests as root, or set it first (sysctl -w net.ipv4.tcp_migrate_req=1)")
                return
            }
        }
        defer { if before != "1" { try? before.write(toFile: path, atomically: false, encoding: .utf8) } }
        try body()
    }

    /// Plays systemd across restarts, under `systemd-socket-activate` (which passes the listening
    /// socket as systemd does: descriptor 3, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES): holds that
    /// socket and runs repeaterd with it; each "restart" line on stdin stops the running one
    /// (SIGTERM, waits for it to exit) and then starts a new one, as `systemctl restart` does.
    private static let supervisor = """
        #!/bin/bash
        repeaterd="$1"; shift
        start() {
            ( export LISTEN_PID=$BASHPID LISTEN_FDS=1 LISTEN_FDNAMES=client; exec "$repeaterd" "$@" ) &
            child=$!
            echo "supervisor: started $child" >&2
        }
        start "$@"
        while read -r command; do
            if [ "$command" = restart ]; then
                kill -TERM "$child"; wait "$child"; echo "supervisor: stopped $child, status $?" >&2
                start "$@"
            fi
        done
        kill -TERM "$child"; wait "$child"
        """

    /// `systemctl restart repeaterd` with repeaterd.socket: the socket stays with the service
    /// manager, so while no repeaterd runs clients wait in its queue; the new one accepts them
    /// once its links are up. Three restarts under eight connect/echo/close loops.
    func testRestartsUnderSocketActivationDropNobody() throws {
        let linkPort = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--echo", "-v"], name: "muxcat listen --echo")
        XCTAssertTrue(echo.waitFor("listening on", onStderr: true))
        let script = deployment.sandbox.temporaryFile("supervisor.sh")
        try Self.supervisor.write(toFile: script, atomically: true, encoding: .utf8)
        let port = freePort()
        let activate = try Binaries.system("systemd-socket-activate", package: "systemd")
        // As shipped: --listen is the socket unit's address, admin and JSON logs as in /etc/default.
        let supervisor = try deployment.sandbox.start(
            activate,
            [
                "-l", "127.0.0.1:\(port)", "--fdname=client", "/bin/bash", script, try Binaries.repeaterd,
                "--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(linkPort)", "--threads", "2",
                "--admin", "127.0.0.1:\(freePort())", "--log-format", "json",
            ],
            name: "systemd-socket-activate")
        // It listens at once and starts the supervisor at the first connection.
        XCTAssertTrue(supervisor.waitFor("Listening on", onStderr: true))
        let tally = Tally()
        let loops = (0..<8).map { _ in
            Thread {
                while !tally.stop.load(ordering: .relaxed) { Self.exchange(port: port, tally: tally) }
            }
        }
        for loop in loops { loop.start() }
        XCTAssertTrue(supervisor.waitFor("repeater listening", onStderr: true, timeout: 30))
        XCTAssertTrue(supervisor.stderr.text.contains("accepting on the socket the service manager passed"), supervisor.stderr.text)
        var summary: [String] = []
        for restart in 1...3 {
            Thread.sleep(forTimeInterval: 1.5)
            let before = tally.served.load(ordering: .relaxed)
            let listening = supervisor.stderr.text.components(separatedBy: "repeater listening").count - 1
            supervisor.write("restart\n")
            XCTAssertTrue(
                eventually(timeout: 60) { supervisor.stderr.text.components(separatedBy: "repeater listening").count - 1 > listening },
                "restart \(restart): the new repeaterd accepts: \(supervisor.stderr.text.suffix(2000))")
            XCTAssertTrue(
                supervisor.stderr.text.contains("stopped") && supervisor.stderr.text.contains("status 0"),
                String(supervisor.stderr.text.suffix(2000)))
            Thread.sleep(forTimeInterval: 1.5)
            summary.append("restart \(restart): \(tally.served.load(ordering: .relaxed) - before) served across it")
        }
        tally.stop.store(true, ordering: .relaxed)
        while loops.contains(where: { $0.isExecuting }) { usleep(10_000) }
        let line =
            "\(tally.served.load(ordering: .relaxed)) served, \(tally.refused.load(ordering: .relaxed)) refused, "
            + "\(tally.reset.load(ordering: .relaxed)) reset, \(tally.cutShort.load(ordering: .relaxed)) cut short, "
            + "\(tally.stalled.load(ordering: .relaxed)) stalled; " + summary.joined(separator: "; ")
        print("socket activation: " + line)
        XCTAssertEqual(
            tally.refused.load(ordering: .relaxed) + tally.reset.load(ordering: .relaxed)
                + tally.cutShort.load(ordering: .relaxed) + tally.stalled.load(ordering: .relaxed), 0, line)
        XCTAssertGreaterThan(tally.served.load(ordering: .relaxed), 300, line)
        supervisor.closeInput()
        XCTAssertEqual(supervisor.waitForExit(timeout: 60), 0, supervisor.stderr.text.suffix(2000).description)
    }

    func testTenSwitchesToANewRepeaterdDropNobody() throws {
        try withConnectionMigration { try self.tenSwitches() }
    }

    private func tenSwitches() throws {
        let linkPort = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--echo", "-v"], name: "muxcat listen --echo")
        XCTAssertTrue(echo.waitFor("listening on", onStderr: true))
        let port = freePort()
        // As shipped (/etc/default/repeaterd): an admin endpoint, on one port for old and new.
        let adminPort = freePort()
        let arguments = ["--threads", "2", "--drain-timeout", "20", "--admin", "127.0.0.1:\(adminPort)", "--log-format", "json"]
        var current = try deployment.repeater(listenPort: port, backendPort: linkPort, arguments)
        // Both links (one per event loop): a client on a loop whose link is still down is closed.
        XCTAssertTrue(eventually(timeout: 20) { current.stderr.text.components(separatedBy: "link up").count - 1 >= 2 })
        var summary: [String] = []
        for run in 1...10 {
            let tally = Tally()
            // A session opened on the old process before the switch: it must finish after it.
            let longSession = try RawSocket.connect(port: port)
            longSession.send(Array("before\n".utf8))
            longSession.read(timeout: 10) { $0.count >= 7 }
            XCTAssertEqual(longSession.received, Array("before\n".utf8), "run \(run): a session on the old process")
            let loops = (0..<8).map { _ in
                Thread {
                    while !tally.stop.load(ordering: .relaxed) { Self.exchange(port: port, tally: tally) }
                }
            }
            for loop in loops { loop.start() }
            Thread.sleep(forTimeInterval: 1.0)
            // It listens only once its links are up (another repeaterd holds the port).
            let next = try deployment.repeater(listenPort: port, backendPort: linkPort, arguments)
            XCTAssertTrue(next.stderr.text.contains("listening beside it once the links are up"), next.stderr.text)
            XCTAssertTrue(next.stderr.text.contains("is held by the repeaterd this one replaces"), next.stderr.text)
            let servedBeforeSwitch = tally.served.load(ordering: .relaxed)
            let switchedAt = Int(DispatchTime.now().uptimeNanoseconds - tally.started)
            current.signal(SIGTERM)
            Thread.sleep(forTimeInterval: 1.5)
            // The old process drains: its session still works, then ends.
            longSession.clearReceived()
            longSession.send(Array("after\n".utf8))
            longSession.read(timeout: 10) { $0.count >= 6 }
            XCTAssertEqual(longSession.received, Array("after\n".utf8), "run \(run): the old session goes on")
            longSession.shutdownWrite()
            XCTAssertTrue(longSession.readUntilClosed(timeout: 10), "run \(run): the old session ends cleanly")
            longSession.close()
            XCTAssertEqual(current.waitForExit(timeout: 30), 0, "run \(run): the old repeaterd exits 0 once drained")
            // The new one takes the admin port once the old one let go of it.
            XCTAssertTrue(
                eventually(timeout: 10) { (try? self.deployment.adminGet(adminPort, "/readyz"))?.status == 200 },
                "run \(run): the new repeaterd answers /readyz: \(next.stderr.text.suffix(1500))")
            tally.stop.store(true, ordering: .relaxed)
            while loops.contains(where: { $0.isExecuting }) { usleep(10_000) }
            let served = tally.served.load(ordering: .relaxed)
            let line =
                "run \(run): \(served) served (\(served - servedBeforeSwitch) after the new one started), "
                + "\(tally.refused.load(ordering: .relaxed)) refused, \(tally.reset.load(ordering: .relaxed)) reset, "
                + "\(tally.cutShort.load(ordering: .relaxed)) cut short, \(tally.stalled.load(ordering: .relaxed)) stalled"
                + (tally.firstFailureAt.load(ordering: .relaxed) < 0
                    ? ""
                    : "; the first failure \((tally.firstFailureAt.load(ordering: .relaxed) - switchedAt) / 1_000_000) ms after the SIGTERM")
            summary.append(line)
            XCTAssertEqual(
                tally.refused.load(ordering: .relaxed) + tally.reset.load(ordering: .relaxed)
                    + tally.cutShort.load(ordering: .relaxed) + tally.stalled.load(ordering: .relaxed), 0, line)
            XCTAssertGreaterThan(served - servedBeforeSwitch, 100, line)
            current = next
        }
        print(summary.joined(separator: "\n"))
    }
}
