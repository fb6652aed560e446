import Foundation
import NIOCore
import ProcessTestSupport
import ProxyProtocol
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// PROXY protocol on the real processes, with real peers: `repeaterd --accept-proxy` behind
/// HAProxy (`send-proxy`, `send-proxy-v2`) and hostile clients, `repeaterd --send-proxy` in
/// front of nginx (`listen … proxy_protocol`, through `muxcat listen --forward`) and of
/// `runtime-manager --accept-proxy`. Clients connect from their own loopback address (127.0.0.x),
/// so the address a log shows is the client's, not a relay's.
final class ProxyProtocolProcessTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    /// `muxcat listen --echo` and a `repeaterd --threads 1 --log-level debug ARGS` before it, link up.
    private func repeaterBeforeAnEchoPeer(_ extra: [String]) throws -> (RunningProcess, port: Int) {
        let linkPort = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--echo", "-v"], name: "muxcat listen --echo")
        XCTAssertTrue(echo.waitFor("listening on", onStderr: true))
        return try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1", "--log-level", "debug"] + extra)
    }

    /// Sends `bytes`, half-closes, and returns all that came back before the repeater closed.
    private func exchange(_ bytes: [UInt8], port: Int, from source: String? = nil) throws -> [UInt8] {
        let socket = try RawSocket.connect(port: port, from: source)
        defer { socket.close() }
        socket.send(bytes)
        socket.shutdownWrite()
        XCTAssertTrue(socket.readUntilClosed(timeout: 15), "the repeater closes the connection")
        return socket.received
    }

    private static func v2(command: UInt8, family: UInt8, block: [UInt8]) -> [UInt8] {
        [
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, command, family,
            UInt8(block.count >> 8), UInt8(block.count & 0xFF),
        ] + block
    }

    /// The hostile rows of docs/RELIABILITY.md on the real daemon: each refused connection is one
    /// log line and one `refused_proxy_header`, and nothing of it reaches the link; a good header
    /// (whole, or a byte at a time) names the client, and `--send-proxy` passes it on as v2.
    func testAcceptProxyRefusesBadHeadersAndSendProxyCarriesTheAnnouncedClient() throws {
        let adminPort = freePort()
        let (repeater, port) = try repeaterBeforeAnEchoPeer(["--accept-proxy", "--send-proxy", "--admin", "127.0.0.1:\(adminPort)"])
        // No header at all: refused once the 5 s are up (checked last, after everything else).
        let silent = try RawSocket.connect(port: port)
        let silentSince = Date()

        // v1, whole: the echo peer returns the v2 header repeaterd wrote, then the payload.
        var echoed = try exchange(Array("PROXY TCP4 192.0.2.9 198.51.100.7 56324 443\r\nhello".utf8), port: port)
        guard case .header(let sent, let consumed) = ProxyHeaderParser.parse(echoed) else {
            return XCTFail("the stream does not begin with a PROXY header: \(echoed)")
        }
        XCTAssertEqual(sent.version, 2)
        XCTAssertEqual(sent.source, try SocketAddress(ipAddress: "192.0.2.9", port: 56324))
        XCTAssertEqual(sent.destination, try SocketAddress(ipAddress: "198.51.100.7", port: 443))
        XCTAssertEqual(Array(echoed[consumed...]), Array("hello".utf8))

        // v2 over IPv6 with a TLV, a byte at a time: the same.
        var block = [UInt8](repeating: 0, count: 36)
        block[0] = 0x20
        block[1] = 0x01
        block[2] = 0x0d
        block[3] = 0xb8
        block[15] = 7  // 2001:db8::7
        block[31] = 1
        block[32] = 0x30
        block[33] = 0x39
        block[35] = 80  // ::1, 12345 -> 80
        let header = Self.v2(command: 0x21, family: 0x21, block: block + [0x04, 0x00, 0x02, 0x61, 0x62])
        let slow = try RawSocket.connect(port: port)
        for byte in header + Array("x".utf8) {
            slow.send([byte])
            usleep(2_000)
        }
        slow.shutdownWrite()
        XCTAssertTrue(slow.readUntilClosed(timeout: 15))
        echoed = slow.received
        slow.close()
        guard case .header(let sentV6, let consumedV6) = ProxyHeaderParser.parse(echoed) else {
            return XCTFail("no PROXY header on the stream: \(echoed)")
        }
        XCTAssertEqual(sentV6.source, try SocketAddress(ipAddress: "2001:db8::7", port: 12345))
        XCTAssertEqual(Array(echoed[consumedV6...]), Array("x".utf8))
        XCTAssertTrue(repeater.waitFor("client=[2001:db8::7]:12345", onStderr: true), "the logs name the announced client")

        // Refused: each closed at once with nothing relayed.
        let refusals: [([UInt8], String)] = [
            (Array("GET / HTTP/1.1\r\n\r\nsecret".utf8), "the connection does not begin with a PROXY header (v1 or v2)"),
            (
                Self.v2(command: 0x21, family: 0x11, block: []).prefix(14) + [0x08, 0x01],
                "PROXY v2 header of 2065 bytes, above the limit of 2064"
            ),
            (
                Self.v2(command: 0x21, family: 0x51, block: [UInt8](repeating: 1, count: 12)),
                "PROXY v2 family and transport 0x51 is not TCP over IPv4 or IPv6, a Unix stream or unspecified"
            ),
            (Array("PROXY TCP4 192.0.2.9 198.51.100.7 56324 443\nsecret".utf8), "PROXY v1 line not ended by CRLF"),
            (Array(("PROXY TCP4 " + String(repeating: "9", count: 120)).utf8), "PROXY v1 line longer than 107 bytes"),
            (Array("PROXY TCP4 192.0.2.9".utf8), "the connection ended before a complete PROXY header (20 bytes of it arrived)"),
        ]
        for (bytes, reason) in refusals {
            XCTAssertEqual(try exchange(bytes, port: port), [], reason)
            XCTAssertTrue(repeater.waitFor("refusing client: \(reason) (--accept-proxy)", onStderr: true), reason)
        }
        // A v2 LOCAL (the balancer's health check): accepted and closed, not a refusal.
        XCTAssertEqual(try exchange(Self.v2(command: 0x20, family: 0x00, block: []) + Array("abc".utf8), port: port), [])

        let left = 5.5 - Date().timeIntervalSince(silentSince)
        if left > 0 { usleep(UInt32(left * 1_000_000)) }
        XCTAssertTrue(silent.readUntilClosed(timeout: 10), "a client that never sends its header is closed after 5 s")
        silent.close()
        XCTAssertTrue(repeater.waitFor("refusing client: no complete PROXY header within 5 s (no byte of it arrived)", onStderr: true))

        let metrics = try deployment.samples(try deployment.adminGet(adminPort, "/metrics").body)
        XCTAssertEqual(metrics["repeater_sessions_total{result=accepted}"], 2, "\(metrics)")
        XCTAssertEqual(metrics["repeater_sessions_total{result=refused_proxy_header}"], Double(refusals.count + 1), "\(metrics)")
        XCTAssertEqual(
            repeater.stderr.text.components(separatedBy: "refusing client:").count - 1, refusals.count + 1,
            "one log line per refused connection")
    }

    /// Without --accept-proxy nothing is parsed: a PROXY line is just bytes of the session.
    func testWithoutTheFlagAHeaderIsRelayedAsBytes() throws {
        let (_, port) = try repeaterBeforeAnEchoPeer([])
        let line = Array("PROXY TCP4 192.0.2.9 198.51.100.7 56324 443\r\nhello".utf8)
        XCTAssertEqual(try exchange(line, port: port), line)
    }

    /// HAProxy in front, with `send-proxy` (v1) and `send-proxy-v2`: repeaterd logs the client
    /// (127.0.0.7 and its port), not HAProxy; the bytes pass through unchanged.
    func testBehindHAProxyTheLoggedAddressIsTheClients() throws {
        let haproxy = try Binaries.system("haproxy", package: "haproxy")
        let (repeater, port) = try repeaterBeforeAnEchoPeer(["--accept-proxy"])
        let (v1Port, v2Port) = (freePort(), freePort())
        let configuration = deployment.sandbox.temporaryFile("haproxy.cfg")
        try """
        global
            maxconn 100
        defaults
            mode tcp
            timeout connect 5s
            timeout client 30s
            timeout server 30s
        listen v1
            bind 127.0.0.1:\(v1Port)
            server repeater 127.0.0.1:\(port) send-proxy
        listen v2
            bind 127.0.0.1:\(v2Port)
            server repeater 127.0.0.1:\(port) send-proxy-v2

        """.write(toFile: configuration, atomically: true, encoding: .utf8)
        // (The empty line above: HAProxy refuses a configuration whose last line has no LF.)
        let balancer = try deployment.sandbox.start(haproxy, ["-db", "-f", configuration], name: "haproxy")
        XCTAssertTrue(
            eventually(timeout: 15) {
                [v1Port, v2Port].allSatisfy { port in
                    (try? RawSocket.connect(port: port)).map {
                        $0.close()
                        return true
                    } ?? false
                }
            }, "haproxy listens: \(balancer.stderr.text)")
        for (front, source) in [(v1Port, "127.0.0.7"), (v2Port, "127.0.0.8")] {
            let client = try RawSocket.connect(port: front, from: source)
            client.send(Array("ping through haproxy".utf8))
            client.shutdownWrite()
            XCTAssertTrue(client.readUntilClosed(timeout: 15))
            XCTAssertEqual(client.received, Array("ping through haproxy".utf8))
            let logged = "client=\(source):\(client.localPort)"
            client.close()
            XCTAssertTrue(repeater.waitFor(logged, onStderr: true), "repeaterd logs \(logged)")
        }
        XCTAssertFalse(repeater.stderr.text.contains("refusing client"), repeater.stderr.text)
    }

    /// `repeaterd --send-proxy` → `muxcat listen --forward` → nginx `listen … proxy_protocol`:
    /// nginx's access log shows the client's address and port, which only the header carried
    /// (nginx's own peer is muxcat on 127.0.0.1).
    func testNginxBehindMuxcatForwardLogsTheClientFromTheHeader() throws {
        let nginx = try Binaries.system("nginx", package: "nginx-light")
        let webPort = freePort()
        let directory = deployment.sandbox.directory.path
        let configuration = deployment.sandbox.temporaryFile("nginx.conf")
        try """
        daemon off;
        master_process off;
        pid \(directory)/nginx.pid;
        error_log \(directory)/nginx-error.log warn;
        events { worker_connections 64; }
        http {
            log_format proxied '$proxy_protocol_addr $proxy_protocol_port via $remote_addr';
            server {
                listen 127.0.0.1:\(webPort) proxy_protocol;
                access_log \(directory)/access.log proxied;
                location / { return 200 "hello from nginx\\n"; }
            }
        }
        """.write(toFile: configuration, atomically: true, encoding: .utf8)
        _ = try deployment.sandbox.start(
            nginx, ["-e", "\(directory)/nginx-error.log", "-p", directory, "-c", configuration], name: "nginx")
        XCTAssertTrue(
            eventually(timeout: 15) {
                (try? RawSocket.connect(port: webPort)).map {
                    $0.close()
                    return true
                } ?? false
            })

        let linkPort = freePort()
        let forward = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--forward", "127.0.0.1:\(webPort)", "-v"], name: "muxcat --forward")
        XCTAssertTrue(forward.waitFor("listening on", onStderr: true))
        let (_, port) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1", "--send-proxy"])

        let client = try RawSocket.connect(port: port, from: "127.0.0.9")
        client.send(Array("GET / HTTP/1.0\r\nHost: test\r\n\r\n".utf8))
        XCTAssertTrue(client.readUntilClosed(timeout: 15))
        let answer = String(decoding: client.received, as: UTF8.self)
        XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200"), answer)
        XCTAssertTrue(answer.hasSuffix("hello from nginx\n"), answer)
        let expected = "127.0.0.9 \(client.localPort) via 127.0.0.1"
        client.close()
        XCTAssertTrue(
            eventually(timeout: 10) {
                ((try? String(contentsOfFile: "\(directory)/access.log", encoding: .utf8)) ?? "").contains(expected)
            },
            "nginx's access log: \((try? String(contentsOfFile: "\(directory)/access.log", encoding: .utf8)) ?? "none"), expected \(expected)"
        )
    }

    /// `runtime-manager --accept-proxy` behind `repeaterd --send-proxy`: full TLS sessions work,
    /// and the manager's log names the client's address and port (the repeater's view of it).
    /// Behind a repeater without --send-proxy it refuses every session and says why.
    func testRuntimeManagerAcceptProxyNamesTheClientOfEachSession() throws {
        let linkPort = freePort()
        // At debug level: a refusal is a debug line (a client can cause it at will; AccessLogTests
        // checks the default level's summary).
        let manager = try deployment.runtimeManager(linkPort: linkPort, ["--accept-proxy", "--log-level", "debug"])
        let (repeater, port) = try deployment.repeaterWithLinkUp(
            backendPort: linkPort, ["--threads", "1", "--send-proxy", "--log-level", "debug"])
        let file = try deployment.makeFile("input.bin", bytes: 300_000)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", file, "proxied.bin"]).status, 0)
        let fetched = deployment.sandbox.temporaryFile("fetched.bin")
        XCTAssertEqual(try deployment.runClient(port: port, ["get", "proxied.bin", fetched]).status, 0)
        XCTAssertEqual(FileManager.default.contents(atPath: fetched), FileManager.default.contents(atPath: file))

        // Each session's client port, as repeaterd saw it, is the one the manager logs.
        let ports = repeater.stderr.text.split(separator: "\n").filter { $0.contains("session open") }.compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("client=") }?.split(separator: ":").last.map(String.init)
        }
        XCTAssertEqual(ports.count, 2, repeater.stderr.text)
        for clientPort in ports {
            XCTAssertTrue(manager.waitFor("client=127.0.0.1:\(clientPort)", onStderr: true), "the manager names the client")
        }

        let unannounced = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        let result = try deployment.runClient(port: unannounced.port, ["policy-hash"])
        XCTAssertNotEqual(result.status, 0)
        // The client is told it was refused (a TLS access_denied alert), not that a link is down.
        XCTAssertTrue(result.stderr.contains("the runtime manager refused the session before TLS"), result.stderr)
        XCTAssertFalse(result.stderr.contains("link"), result.stderr)
        XCTAssertTrue(
            manager.waitFor(
                "refusing session: the connection does not begin with a PROXY header (v1 or v2) (--accept-proxy: is the repeater started with --send-proxy?)",
                onStderr: true))
        // It says which stream of which link (issue 41): a line an operator can trace to the repeater.
        let refusal = manager.stderr.text.split(separator: "\n").first { $0.contains("refusing session") }.map(String.init) ?? ""
        XCTAssertTrue(refusal.contains("link_peer=127.0.0.1:") && refusal.contains("stream="), refusal)
        // `link=` is the name repeaterd logged when that link came up.
        let linkName = try XCTUnwrap(refusal.split(separator: " ").first { $0.hasPrefix("link=") }, refusal)
        XCTAssertTrue(unannounced.0.stderr.text.contains("\(linkName) link_slot=0 [YamuxLink] link up"), unannounced.0.stderr.text)
        // A refused session ends there: no TLS failure line after it.
        XCTAssertFalse(manager.stderr.text.contains("TLS handshake failed"), manager.stderr.text)
    }
}
