import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `--admin` on the real daemons: /readyz follows the link, /metrics counts what happened (read
/// with Prometheus' own text-format parser), and hostile HTTP leaves the relay alone.
final class AdminEndpointProcessTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    private func get(_ port: Int, _ path: String) throws -> (status: Int, body: String) {
        try deployment.adminGet(port, path)
    }

    private func samples(_ exposition: String) throws -> [String: Double] {
        try deployment.samples(exposition)
    }

    /// `repeaterd --threads 1 --admin` in front of `muxcat listen --echo`, once its link is up:
    /// (repeaterd, its client port, its admin port).
    private func repeaterBeforeAnEchoPeer(_ extra: [String]) throws -> (RunningProcess, port: Int, adminPort: Int) {
        let linkPort = freePort()
        let adminPort = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--echo", "-v"], name: "muxcat listen --echo")
        XCTAssertTrue(echo.waitFor("listening on", onStderr: true))
        let (repeater, port) = try deployment.repeaterWithLinkUp(
            backendPort: linkPort, ["--threads", "1"] + extra + ["--admin", "127.0.0.1:\(adminPort)"])
        return (repeater, port, adminPort)
    }

    func testReadyzFollowsTheLinkDownUpDownAndUp() throws {
        let linkPort = freePort()
        let adminPort = freePort()
        _ = try deployment.repeater(
            listenPort: freePort(), backendPort: linkPort, ["--threads", "1", "--admin", "127.0.0.1:\(adminPort)"])
        XCTAssertEqual(try self.get(adminPort, "/healthz").status, 200)
        var answer = try self.get(adminPort, "/readyz")
        XCTAssertEqual(answer.status, 503)
        XCTAssertTrue(answer.body.hasPrefix("no link to 127.0.0.1:\(linkPort): "), answer.body)

        var manager = try deployment.runtimeManager(linkPort: linkPort)
        XCTAssertTrue(eventually(timeout: 15) { (try? self.get(adminPort, "/readyz").status) == 200 })
        XCTAssertEqual(try self.get(adminPort, "/readyz").body, "ready\n")

        manager.signal(SIGKILL)
        XCTAssertTrue(eventually(timeout: 15) { (try? self.get(adminPort, "/readyz").status) == 503 })
        answer = try self.get(adminPort, "/readyz")
        XCTAssertTrue(answer.body.hasPrefix("no link to 127.0.0.1:\(linkPort): "), answer.body)

        manager = try deployment.runtimeManager(linkPort: linkPort)
        XCTAssertTrue(eventually(timeout: 15) { (try? self.get(adminPort, "/readyz").status) == 200 })
        _ = manager
    }

    /// What `promtool check metrics` checks of the conventions, checked here (Debian's promtool
    /// comes with the whole Prometheus server): every family has one `# HELP` and one `# TYPE`
    /// before its samples, every sample belongs to a described family, histogram buckets grow and
    /// end at +Inf. Returns the problems.
    static func conventionProblems(_ exposition: String) -> [String] {
        var problems: [String] = []
        var help: [String: Int] = [:]
        var type: [String: String] = [:]
        var lastBound: [String: Double] = [:]
        for line in exposition.split(separator: "\n").map(String.init) {
            let words = line.split(separator: " ", maxSplits: 3).map(String.init)
            if line.hasPrefix("# HELP ") {
                help[words[2], default: 0] += 1
                if words.count < 4 || words[3].isEmpty { problems.append("\(words[2]): empty HELP") }
                continue
            }
            if line.hasPrefix("# TYPE ") {
                if type[words[2]] != nil { problems.append("\(words[2]): two TYPE lines") }
                if help[words[2]] == nil { problems.append("\(words[2]): TYPE before HELP") }
                type[words[2]] = words[3]
                continue
            }
            if line.hasPrefix("#") || line.isEmpty { continue }
            let name = String(line.prefix { $0 != "{" && $0 != " " })
            let family =
                type[name] != nil
                ? name
                : ["_bucket", "_sum", "_count"].compactMap { name.hasSuffix($0) ? String(name.dropLast($0.count)) : nil }.first ?? name
            guard let kind = type[family] else {
                problems.append("\(name): a sample without TYPE")
                continue
            }
            if help[family] != 1 { problems.append("\(family): \(help[family] ?? 0) HELP lines") }
            if kind == "histogram", name.hasSuffix("_bucket"), let range = line.range(of: "le=\""),
                let end = line[range.upperBound...].firstIndex(of: "\"")
            {
                let series = line.replacingOccurrences(of: String(line[range.lowerBound...end]), with: "")
                    .prefix { $0 != " " }
                let bound = line[range.upperBound..<end] == "+Inf" ? Double.infinity : Double(line[range.upperBound..<end]) ?? .nan
                if let last = lastBound[String(series)], !(bound > last) { problems.append("\(series): buckets do not grow") }
                lastBound[String(series)] = bound
            }
        }
        for (series, bound) in lastBound where bound != .infinity { problems.append("\(series): no +Inf bucket") }
        return problems
    }

    /// Issue 41: every family described, buckets that fit, no series that cannot happen, the
    /// version, and the process metrics of the official client libraries, on both daemons.
    func testMetricsFollowThePrometheusConventions() throws {
        let linkPort = freePort()
        let managerAdmin = freePort()
        let repeaterAdmin = freePort()
        _ = try deployment.runtimeManager(linkPort: linkPort, ["--admin", "127.0.0.1:\(managerAdmin)"])
        let (_, port) = try deployment.repeaterWithLinkUp(
            backendPort: linkPort, ["--threads", "1", "--keepalive-interval", "0.2", "--admin", "127.0.0.1:\(repeaterAdmin)"])
        XCTAssertEqual(try deployment.runClient(port: port, ["policy-hash"]).status, 0)
        XCTAssertTrue(
            eventually(timeout: 10) {
                ((try? self.samples(try self.get(repeaterAdmin, "/metrics").body))?["repeater_link_rtt_seconds_count{}"] ?? 0) >= 2
            })
        for (daemon, adminPort) in [("repeater", repeaterAdmin), ("runtime_manager", managerAdmin)] {
            let text = try get(adminPort, "/metrics").body
            XCTAssertEqual(Self.conventionProblems(text), [], "\(daemon): \(text)")
            XCTAssertFalse(text.contains("no help text"), text)
            let values = try samples(text)
            XCTAssertEqual(values["\(daemon)_build_info{version=0.9.0}"], 1, "\(values.keys.sorted())")
            for name in [
                "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                "process_open_fds", "process_max_fds", "process_start_time_seconds",
            ] {
                XCTAssertGreaterThan(values["\(name){}"] ?? 0, 0, "\(daemon): \(name)")
            }
            let started = values["process_start_time_seconds{}"] ?? 0
            XCTAssertEqual(started, Date().timeIntervalSince1970, accuracy: 120, "\(daemon) started within the test")
            XCTAssertGreaterThan(values["process_resident_memory_bytes{}"] ?? 0, 1_048_576)
            XCTAssertLessThan(values["process_open_fds{}"] ?? .infinity, values["process_max_fds{}"] ?? 0)
            if let promtool = ["/usr/bin/promtool"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
                let check = try deployment.sandbox.start(promtool, ["check", "metrics"], name: "promtool")
                check.write(text)
                check.closeInput()
                XCTAssertEqual(check.waitForExit(), 0, "promtool: \(check.stdout.text) \(check.stderr.text)")
            }
        }
        let runtime = try samples(try get(managerAdmin, "/metrics").body)
        // The policy hash took microseconds: it lands in a bucket below 1 ms, not in the first of 5 ms.
        let fast = runtime["runtime_manager_request_seconds_bucket{le=0.001,type=request_policy_hash}"] ?? 0
        XCTAssertEqual(fast, 1, "buckets fit requests of microseconds: \(runtime.keys.filter { $0.contains("policy_hash") }.sorted())")
        XCTAssertNil(runtime["runtime_manager_requests_total{result=success,type=unknown}"], "a series that cannot happen")
        XCTAssertNil(runtime["runtime_manager_requests_total{result=success,type=request_result}"])
        XCTAssertEqual(runtime["runtime_manager_requests_total{result=failed_invalid_request,type=unknown}"], 0)
    }

    func testMetricsCountTheSessionsAndLinks() throws {
        let linkPort = freePort()
        let managerAdmin = freePort()
        let repeaterAdmin = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort, ["--admin", "127.0.0.1:\(managerAdmin)"])
        let (_, port) = try deployment.repeaterWithLinkUp(
            backendPort: linkPort, ["--threads", "1", "--keepalive-interval", "0.2", "--admin", "127.0.0.1:\(repeaterAdmin)"])
        for _ in 0..<3 {
            XCTAssertEqual(try deployment.runClient(port: port, ["policy-hash"]).status, 0)
        }
        // Keep-alive pings every 0.2 s: their round trips fill the histogram.
        XCTAssertTrue(
            eventually(timeout: 10) {
                ((try? self.samples(try self.get(repeaterAdmin, "/metrics").body))?["repeater_link_rtt_seconds_count{}"] ?? 0) >= 2
            })
        let repeater = try self.samples(try self.get(repeaterAdmin, "/metrics").body)
        XCTAssertEqual(repeater["repeater_sessions_total{result=accepted}"], 3, "\(repeater)")
        XCTAssertEqual(repeater["repeater_sessions_total{result=refused_link_down}"] ?? 0, 0)
        XCTAssertEqual(repeater["repeater_links_up{}"], 1)
        XCTAssertEqual(repeater["repeater_streams_reset_total{by=peer}"] ?? 0, 0, "three clean sessions reset nothing")
        XCTAssertTrue(
            eventually(timeout: 10) {
                ((try? self.samples(try self.get(repeaterAdmin, "/metrics").body))?["repeater_sessions_open{}"]) == 0
            })
        // Garbage instead of a ClientHello: one failed handshake, counted by reason.
        let notTLS = try RawSocket.connect(port: port)
        notTLS.send(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        XCTAssertTrue(notTLS.readUntilClosed(timeout: 10))
        notTLS.close()
        var runtime: [String: Double] = [:]
        XCTAssertTrue(
            eventually(timeout: 10) {
                runtime = (try? self.samples(try self.get(managerAdmin, "/metrics").body)) ?? [:]
                return runtime["runtime_manager_tls_handshake_failures_total{reason=not_tls}"] == 1
            }, "\(runtime)")
        XCTAssertEqual(runtime["runtime_manager_links_open{}"], 1, "\(runtime)")
        XCTAssertNotNil(runtime["runtime_manager_store_bytes{}"])
        XCTAssertEqual(runtime["runtime_manager_requests_total{result=success,type=request_policy_hash}"], 3, "\(runtime)")
        XCTAssertEqual(runtime["runtime_manager_requests_total{result=failed_invalid_role,type=write_file}"], 0)
        XCTAssertEqual(runtime["runtime_manager_request_seconds_count{type=request_policy_hash}"], 3, "\(runtime)")

        // A session open when the link's peer goes away ends with the link; a client after that
        // is refused for that reason, and the link is down.
        let cutOff = try RawSocket.connect(port: port)
        defer { cutOff.close() }
        XCTAssertTrue(
            eventually(timeout: 10) {
                ((try? self.samples(try self.get(repeaterAdmin, "/metrics").body))?["repeater_sessions_open{}"]) == 1
            })
        XCTAssertTrue(
            eventually(timeout: 10) {
                ((try? self.samples(try self.get(managerAdmin, "/metrics").body))?["runtime_manager_streams_open{}"]) == 1
            }, "the session is one stream at the runtime manager")
        manager.signal(SIGKILL)
        XCTAssertTrue(eventually(timeout: 15) { (try? self.get(repeaterAdmin, "/readyz").status) == 503 })
        let refused = try RawSocket.connect(port: port)
        XCTAssertTrue(refused.readUntilClosed(timeout: 10))
        refused.close()
        let after = try self.samples(try self.get(repeaterAdmin, "/metrics").body)
        XCTAssertEqual(after["repeater_sessions_total{result=refused_link_down}"], 1, "\(after)")
        XCTAssertEqual(after["repeater_links_up{}"], 0)
        XCTAssertGreaterThanOrEqual(after["repeater_link_redials_total{}"] ?? 0, 1)
        // Every accepted session ended under one cause: 3 clean ones (client or runtime manager
        // first), the garbage one (the runtime manager ended it), and the one the link took down.
        let causes = ["client", "runtime_manager", "idle", "drain", "link_down", "reset"]
        let closed = causes.reduce(into: [String: Double]()) { $0[$1] = after["repeater_sessions_closed_total{cause=\($1)}"] ?? -1 }
        XCTAssertEqual(closed["link_down"], 1, "\(closed)")
        XCTAssertEqual(closed["idle"], 0)
        XCTAssertEqual(closed["drain"], 0)
        XCTAssertEqual(closed.values.reduce(0, +), after["repeater_sessions_total{result=accepted}"], "\(closed)")
        print("sessions closed by cause: \(closed)")
    }

    /// SIGTERM: /readyz answers 503 "draining" at once, while an open session goes on to its end.
    func testReadyzSaysDrainingWhileOpenSessionsFinish() throws {
        let (repeater, port, adminPort) = try self.repeaterBeforeAnEchoPeer(["--drain-timeout", "30"])
        let session = try RawSocket.connect(port: port)
        defer { session.close() }
        session.send(Array("one\n".utf8))
        session.read(timeout: 10) { $0.count >= 4 }
        repeater.signal(SIGTERM)
        XCTAssertTrue(eventually(timeout: 10) { (try? self.get(adminPort, "/readyz").status) == 503 })
        XCTAssertEqual(try self.get(adminPort, "/readyz").body, "draining\n")
        session.send(Array("two\n".utf8))
        session.read(timeout: 10) { $0.count >= 8 }
        XCTAssertEqual(String(decoding: session.received, as: UTF8.self), "one\ntwo\n", "the open session goes on")
        session.shutdownWrite()
        XCTAssertTrue(session.readUntilClosed(timeout: 10))
        XCTAssertEqual(repeater.waitForExit(timeout: 20), 0, "the drain ends with the last session")
    }

    /// SIGTERM with `--drain-grace`: /readyz turns 503 at once, but the listener keeps accepting
    /// (and serving) for the grace, so that a balancer that has not yet seen the 503 loses nobody;
    /// then it closes, and the daemon exits 0.
    func testTheListenerStaysOpenForTheDrainGraceAfterReadyzTurned503() throws {
        let (repeater, port, adminPort) = try self.repeaterBeforeAnEchoPeer(["--drain-grace", "6"])
        XCTAssertEqual(try self.get(adminPort, "/readyz").status, 200)
        repeater.signal(SIGTERM)
        XCTAssertTrue(eventually(timeout: 5) { (try? self.get(adminPort, "/readyz").status) == 503 })
        XCTAssertTrue(repeater.waitFor("still accepting for 6", onStderr: true))
        // Within the grace: a new client is accepted and served.
        let late = try RawSocket.connect(port: port)
        defer { late.close() }
        late.send(Array("late\n".utf8))
        late.read(timeout: 10) { $0.count >= 5 }
        XCTAssertEqual(String(decoding: late.received, as: UTF8.self), "late\n", "a client that arrives in the grace is served")
        late.shutdownWrite()
        XCTAssertTrue(late.readUntilClosed(timeout: 10))
        // After it: refused, and the daemon is gone.
        XCTAssertEqual(repeater.waitForExit(timeout: 30), 0)
        XCTAssertThrowsError(try RawSocket.connect(port: port), "the listener is closed once the grace is over")
    }

    /// Without --admin no balancer can see /readyz: SIGTERM closes the listener at once (no grace).
    func testWithoutAdminThereIsNoGrace() throws {
        let linkPort = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--echo", "-v"], name: "muxcat listen --echo")
        XCTAssertTrue(echo.waitFor("listening on", onStderr: true))
        let (repeater, _) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        repeater.signal(SIGTERM)
        XCTAssertEqual(repeater.waitForExit(timeout: 20), 0)
        XCTAssertFalse(repeater.stderr.text.contains("still accepting for"), repeater.stderr.text)
    }

    /// Sessions the idle sweep closes count as `idle`, not as the client's close.
    func testIdleSessionsAreCountedAsIdle() throws {
        let (_, port, adminPort) = try self.repeaterBeforeAnEchoPeer(["--idle-timeout", "0.5"])
        let silent = try (0..<3).map { _ in try RawSocket.connect(port: port) }
        defer { for socket in silent { socket.close() } }
        for socket in silent { XCTAssertTrue(socket.readUntilClosed(timeout: 10)) }
        var metrics: [String: Double] = [:]
        XCTAssertTrue(
            eventually(timeout: 10) {
                metrics = (try? self.samples(try self.get(adminPort, "/metrics").body)) ?? [:]
                return metrics["repeater_sessions_closed_total{cause=idle}"] == 3
            }, "\(metrics)")
        XCTAssertEqual(metrics["repeater_sessions_closed_total{cause=client}"], 0)
    }

    /// Oversized, garbage, a pipelined flood and a slow drip at the admin port: each gets its
    /// answer or its close, while a session through the repeater goes on.
    func testHostileAdminRequestsLeaveASessionInFlightAlone() throws {
        let (repeater, port, adminPort) = try self.repeaterBeforeAnEchoPeer([])
        let session = try RawSocket.connect(port: port)
        defer { session.close() }
        var expected: [UInt8] = []
        func roundTrip(_ tag: String) {
            let bytes = Array("\(tag)\n".utf8)
            expected += bytes
            session.send(bytes)
            session.read(timeout: 10) { $0.count >= expected.count }
            XCTAssertEqual(session.received, expected, "the session in flight still echoes after \(tag)")
        }
        roundTrip("before")

        let slow = try RawSocket.connect(port: adminPort)
        defer { slow.close() }
        slow.send(Array("GET /hea".utf8))
        let slowStarted = Date()

        let big = try RawSocket.connect(port: adminPort)
        big.send(Array("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: \(String(repeating: "a", count: 9000))\r\n\r\n".utf8))
        XCTAssertTrue(big.readUntilClosed(timeout: 10))
        XCTAssertEqual(Deployment.parseHTTP(big.received).status, 413)
        big.close()
        roundTrip("after an oversized request")

        let garbage = try RawSocket.connect(port: adminPort)
        garbage.send([0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a])
        XCTAssertTrue(garbage.readUntilClosed(timeout: 10))
        XCTAssertEqual(Deployment.parseHTTP(garbage.received).status, 400)
        garbage.close()
        roundTrip("after garbage")

        let flood = try RawSocket.connect(port: adminPort)
        flood.send(Array(String(repeating: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", count: 200).utf8))
        XCTAssertTrue(flood.readUntilClosed(timeout: 10))
        let answers = String(decoding: flood.received, as: UTF8.self).components(separatedBy: "HTTP/1.1 ").count - 1
        XCTAssertEqual(answers, 1, "one request per connection: the flood gets one answer, then the close")
        flood.close()
        roundTrip("after a pipelined flood")

        XCTAssertTrue(slow.readUntilClosed(timeout: 20), "a request still incomplete 10 s after accept is closed")
        XCTAssertGreaterThan(Date().timeIntervalSince(slowStarted), 5, "but not long before its deadline")
        roundTrip("after a slow drip")
        XCTAssertEqual(try self.get(adminPort, "/healthz").status, 200)
        // The one session's bytes, each way (the echo returns what was sent).
        let metrics = try self.samples(try self.get(adminPort, "/metrics").body)
        XCTAssertEqual(metrics["repeater_bytes_total{direction=client_to_link}"], Double(expected.count), "\(metrics)")
        XCTAssertEqual(metrics["repeater_bytes_total{direction=link_to_client}"], Double(expected.count))
        XCTAssertTrue(repeater.process.isRunning)
    }
}
