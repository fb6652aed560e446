import Foundation
import ProcessTestSupport
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Several repeaters behind HAProxy (Debian's), both linked to one runtime manager: HAProxy
/// checks each one's `/readyz` (`option httpchk`) and sends every client with a PROXY v2 header.
/// The deployment docs/DEPLOYMENT.md describes, run with the real processes.
final class ScaleOutTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    /// One repeaterd behind the balancer.
    private struct Repeater {
        var process: RunningProcess
        var port: Int
        var adminPort: Int
    }

    /// What a client session saw, and when (seconds since the loop began).
    private struct Outcome {
        var started: TimeInterval
        var ended: TimeInterval
        var status: Int32?
        var stderr: String
    }

    private func startRepeater(backendPort: Int, _ extra: [String] = []) throws -> Repeater {
        let adminPort = freePort()
        let (process, port) = try deployment.repeaterWithLinkUp(
            backendPort: backendPort, ["--threads", "2", "--accept-proxy", "--admin", "127.0.0.1:\(adminPort)"] + extra)
        return Repeater(process: process, port: port, adminPort: adminPort)
    }

    /// HAProxy in front of `repeaters`: round robin, `/readyz` checked every 500 ms, a server out
    /// after one failed check, PROXY v2 to each. Returns its process and its client port.
    private func startBalancer(_ repeaters: [Repeater]) throws -> (RunningProcess, port: Int) {
        let haproxy = try Binaries.system("haproxy", package: "haproxy")
        let port = freePort()
        let servers = repeaters.enumerated().map { index, repeater in
            "    server r\(index + 1) 127.0.0.1:\(repeater.port) check port \(repeater.adminPort)"
        }
        let configuration = deployment.sandbox.temporaryFile("haproxy.cfg")
        try
            ("""
        global
            maxconn 2000
            log stderr format short local0 notice
        defaults
            log global
            mode tcp
            timeout connect 5s
            timeout client 60s
            timeout server 60s
            timeout check 2s
            retries 3
            option redispatch
        listen repeaters
            bind 127.0.0.1:\(port)
            balance roundrobin
            option httpchk GET /readyz
            http-check expect status 200
            default-server inter 500ms fall 1 rise 1 send-proxy-v2

        """ + servers.joined(separator: "\n") + "\n\n").write(toFile: configuration, atomically: true, encoding: .utf8)
        let balancer = try deployment.sandbox.start(haproxy, ["-db", "-f", configuration], name: "haproxy")
        XCTAssertTrue(
            eventually(timeout: 15) {
                (try? RawSocket.connect(port: port)).map {
                    $0.close()
                    return true
                } ?? false
            },
            "haproxy listens: \(balancer.stderr.text)")
        return (balancer, port)
    }

    private func acceptedSessions(_ repeater: Repeater) throws -> Double {
        let metrics = try deployment.samples(try deployment.adminGet(repeater.adminPort, "/metrics").body)
        return metrics["repeater_sessions_total{result=accepted}"] ?? 0
    }

    private static func sha256(_ path: String) throws -> String {
        let openssl = try Binaries.system("openssl", package: "openssl")
        let result = try runProcess(openssl, ["dgst", "-sha256", "-r", path])
        return String(result.stdout.split(separator: " ").first ?? "")
    }

    /// 200 TLS sessions (100 puts, each followed by a hash of what it stored) through the
    /// balancer: both repeaters serve some, their metrics add up to 200, and every hash checks.
    func testTwoHundredSessionsSpreadOverBothRepeatersAndEveryHashChecks() throws {
        let linkPort = freePort()
        _ = try deployment.runtimeManager(linkPort: linkPort)
        let repeaters = [try startRepeater(backendPort: linkPort), try startRepeater(backendPort: linkPort)]
        let (_, front) = try startBalancer(repeaters)
        XCTAssertTrue(
            eventually(timeout: 15) { repeaters.allSatisfy { (try? self.deployment.adminGet($0.adminPort, "/readyz").status) == 200 } })

        let deployment = self.deployment!
        let files = try (0..<100).map { try deployment.makeFile("input-\($0).bin", bytes: 4096 + $0) }
        // The balancer's own probe above may have been forwarded: count from here.
        let before = try repeaters.map { try acceptedSessions($0) }
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for index in stride(from: worker, to: files.count, by: 8) {
                do {
                    let put = try deployment.runClient(port: front, ["put", files[index], "spread/\(index).bin"])
                    guard put.status == 0 else { throw Failure("put \(index): \(put.stderr)") }
                    let hash = try deployment.runClient(port: front, ["hash", "spread/\(index).bin"])
                    let expected = try Self.sha256(files[index])
                    guard hash.status == 0, hash.stdout.contains(expected) else {
                        throw Failure("hash \(index): \(hash.stdout) \(hash.stderr), expected \(expected)")
                    }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        XCTAssertEqual(failures.withLock { $0 }, [])
        let served = try zip(repeaters, before).map { try acceptedSessions($0) - $1 }
        print("sessions per repeater: \(served)")
        XCTAssertTrue(served.allSatisfy { $0 > 0 }, "both repeaters serve some: \(served)")
        XCTAssertEqual(served.reduce(0, +), 200, "every session went through one of them")
    }

    /// SIGTERM to one repeater while a client loop runs through the balancer: its /readyz turns
    /// 503 at once, HAProxy takes it out within its check interval while its listener is still
    /// open (--drain-grace, 4 s by default with --admin), so no client is refused; it exits 0.
    func testAStoppedRepeaterDropsNoClientOfTheLoop() throws {
        let linkPort = freePort()
        _ = try deployment.runtimeManager(linkPort: linkPort)
        let repeaters = [try startRepeater(backendPort: linkPort), try startRepeater(backendPort: linkPort)]
        let (balancer, front) = try startBalancer(repeaters)
        XCTAssertTrue(
            eventually(timeout: 15) { repeaters.allSatisfy { (try? self.deployment.adminGet($0.adminPort, "/readyz").status) == 200 } })

        let outcomes = clientLoop(port: front, seconds: 9) { elapsed in
            if elapsed >= 2 {
                repeaters[0].process.signal(SIGTERM)
                return true
            }
            return false
        }
        XCTAssertEqual(
            repeaters[0].process.waitForExit(timeout: 40), 0,
            "the stopped repeater drains and exits 0: \(repeaters[0].process.stderr.text.suffix(3000))")
        let failed = outcomes.filter { $0.status != 0 }
        print("client loop: \(outcomes.count) sessions, \(failed.count) failed")
        XCTAssertGreaterThan(outcomes.count, 20)
        XCTAssertEqual(failed.map(\.stderr), [], "no client of the loop is refused")
        XCTAssertTrue(balancer.stderr.text.contains("r1 is DOWN"), "HAProxy took r1 out: \(balancer.stderr.text)")
    }

    /// The link of one repeater is cut (the TCP relay on its path to the runtime manager dies):
    /// its /readyz turns 503 and HAProxy takes it out. Sessions may fail in the window before the
    /// balancer's check notices; none after. The window and the count are reported.
    func testACutLinkTakesItsRepeaterOutAndNoSessionFailsOnceTheBalancerNoticed() throws {
        let linkPort = freePort()
        _ = try deployment.runtimeManager(linkPort: linkPort)
        // Repeater 2 reaches the runtime manager through a TCP relay the test can kill.
        let pathPort = freePort()
        let path = try deployment.sandbox.start(
            try Binaries.path("nio-relay"), ["--listen", "127.0.0.1:\(pathPort)", "--target", "127.0.0.1:\(linkPort)"],
            name: "nio-relay (repeater 2's path)")
        XCTAssertTrue(
            eventually(timeout: 15) {
                (try? RawSocket.connect(port: pathPort)).map {
                    $0.close()
                    return true
                } ?? false
            })
        let repeaters = [
            try startRepeater(backendPort: linkPort),
            try startRepeater(backendPort: pathPort, ["--keepalive-interval", "1", "--keepalive-timeout", "1"]),
        ]
        let (balancer, front) = try startBalancer(repeaters)
        XCTAssertTrue(
            eventually(timeout: 15) { repeaters.allSatisfy { (try? self.deployment.adminGet($0.adminPort, "/readyz").status) == 200 } })

        var cutAt: TimeInterval?
        var noticedAt: TimeInterval?
        let outcomes = clientLoop(port: front, seconds: 8) { elapsed in
            if elapsed >= 2, cutAt == nil {
                path.signal(SIGKILL)
                cutAt = elapsed
            }
            if noticedAt == nil, balancer.stderr.text.contains("r2 is DOWN") { noticedAt = elapsed }
            return false
        }
        let cut = try XCTUnwrap(cutAt)
        let noticed = try XCTUnwrap(noticedAt, "HAProxy never took r2 out: \(balancer.stderr.text)")
        XCTAssertEqual(try deployment.adminGet(repeaters[1].adminPort, "/readyz").status, 503)
        let failed = outcomes.filter { $0.status != 0 }
        print(
            "cut at \(String(format: "%.2f", cut)) s, HAProxy noticed at \(String(format: "%.2f", noticed)) s; \(outcomes.count) sessions, "
                + "\(failed.count) failed, at \(failed.map { String(format: "%.2f", $0.started) })")
        // The balancer's log line can trail its decision by a check; a session begun a second
        // after it saw the line started after the server was out.
        let late = failed.filter { $0.started > noticed + 1 }
        XCTAssertEqual(late.map(\.stderr), [], "no session fails once the balancer has noticed")
        XCTAssertGreaterThan(outcomes.filter { $0.started > noticed + 1 && $0.status == 0 }.count, 5, "the loop goes on through r1")
    }

    /// Two clients, each running `hash` sessions one after another through `port` for `seconds`
    /// (each on a thread of its own); `tick` is called on this thread every 20 ms with the time
    /// elapsed, until it returns true.
    private func clientLoop(port: Int, seconds: TimeInterval, tick: (TimeInterval) -> Bool) -> [Outcome] {
        let deployment = self.deployment!
        let start = Date()
        let outcomes = Mutex<[Outcome]>([])
        let file = (try? deployment.makeFile("loop.bin", bytes: 1000)) ?? ""
        _ = try? deployment.runClient(port: port, ["put", file, "loop.bin"])
        let finished = DispatchGroup()
        for _ in 0..<2 {
            finished.enter()
            Thread {
                while Date().timeIntervalSince(start) < seconds {
                    let began = Date().timeIntervalSince(start)
                    let result = try? deployment.runClient(port: port, ["hash", "loop.bin"], timeout: 30)
                    let outcome = Outcome(
                        started: began, ended: Date().timeIntervalSince(start), status: result?.status ?? -1,
                        stderr: result?.stderr ?? "did not run")
                    outcomes.withLock { $0.append(outcome) }
                }
                finished.leave()
            }.start()
        }
        var ticking = true
        while Date().timeIntervalSince(start) < seconds {
            if ticking, tick(Date().timeIntervalSince(start)) { ticking = false }
            usleep(20_000)
        }
        finished.wait()
        return outcomes.withLock { $0 }
    }

    private struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
