import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import ProcessTestSupport
import Repeater
import RuntimeClient
import RuntimeManager
import SwiftProtobuf
import TransportProtocol
import XCTest
import YamuxLink

#if canImport(Glibc)
import Glibc
#endif

/// The fault matrix of docs/RELIABILITY.md: real processes (and, where the test must look inside
/// the runtime manager, a runtime manager in this process) on loopback, one fault each.
final class FaultMatrixTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    private var clientConfiguration: RuntimeClientConfiguration {
        RuntimeClientConfiguration(
            certificatePath: Certificates.path("client.pem"), keyPath: Certificates.path("client.key"),
            caPath: Certificates.path("ca.pem"))
    }

    // MARK: runtime manager killed during a 32 MiB put

    func testRuntimeManagerKilledDuringAPutFailsTheClientAndTheRepeaterRedials() throws {
        let linkPort = freePort()
        // Debug logging: "request answered" marks the first 8 MiB chunk of the put as stored.
        var manager = try deployment.runtimeManager(linkPort: linkPort, ["--log-level", "debug"])
        let (repeater, frontPort) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        let file = try deployment.makeFile("32MiB", bytes: 32 << 20)

        let put = try deployment.client(port: frontPort, ["put", file, "big"])
        put.closeInput()
        manager.waitFor("request answered", onStderr: true, timeout: 20)  // mid-put: 1 of 4 chunks stored
        manager.signal(SIGKILL)
        let killedAt = Date()
        // The client must fail, not hang: the deadline only bounds a broken run (it fails in
        // tens of milliseconds; how fast is printed, not asserted).
        let status = put.waitForExit(timeout: 30)
        let seconds = Date().timeIntervalSince(killedAt)
        XCTAssertNotNil(status)
        XCTAssertNotEqual(status, 0, "the put cannot have succeeded: \(put.stdout.text)")
        // A lost connection, not a TLS failure: a script may retry (issue 42).
        XCTAssertEqual(status, 69, put.stderr.text)
        XCTAssertFalse(put.stderr.text.contains("TLS failure"), put.stderr.text)
        let message = put.stderr.text.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(message.isEmpty, "the client must say what happened")
        XCTAssertFalse(message.contains("\n"), "one clear line, not a dump: \(message)")
        print("runtime manager killed: the client failed after \(String(format: "%.2f", seconds)) s: \(message)")

        XCTAssertTrue(repeater.waitFor("went down", onStderr: true))
        XCTAssertTrue(repeater.waitFor("retrying with backoff", onStderr: true))
        XCTAssertTrue(repeater.process.isRunning, "repeaterd keeps running")

        // The runtime manager is back: the repeater's redial finds it and a new session works.
        manager = try deployment.runtimeManager(linkPort: linkPort)
        XCTAssertTrue(
            eventually(timeout: 15) { repeater.stderr.text.components(separatedBy: "link up").count >= 3 },
            "repeaterd should redial: \(repeater.stderr.text.suffix(1500))")
        let small = try deployment.makeFile("small", bytes: 1000)
        let again = try deployment.runClient(port: frontPort, ["put", small, "small"])
        XCTAssertEqual(again.status, 0, again.stderr)
    }

    // MARK: repeaterd killed during transfers

    func testRepeaterdKilledDuringTransfersFreesEveryStreamOfItsLink() async throws {
        let manager = try await InProcessRuntimeManager()
        let (firstRepeater, frontPort) = try deployment.repeaterWithLinkUp(backendPort: manager.linkPort, ["--threads", "2"])
        var repeater = firstRepeater
        let file = try deployment.makeFile("32MiB", bytes: 32 << 20)
        var puts: [RunningProcess] = []
        for i in 0..<4 {
            let put = try deployment.client(port: frontPort, ["put", file, "transfer-\(i)"])
            put.closeInput()
            puts.append(put)
        }
        XCTAssertTrue(
            eventually(timeout: 20) { manager.server.sessionContext.sessions.count >= 4 },
            "four sessions should be open; \(manager.server.sessionContext.sessions.count) are")
        let during = await manager.server.linkStatistics()
        XCTAssertGreaterThanOrEqual(during.streams, 4)
        repeater.signal(SIGKILL)
        for put in puts { XCTAssertNotNil(put.waitForExit(timeout: 20)) }

        // Nothing of the dead link is kept: no link, no stream, no session (and so none of the
        // transfers' buffers).
        _ = await eventuallyAsync(timeout: 20) {
            let after = await manager.server.linkStatistics()
            return after.links == 0 && after.streams == 0 && manager.server.sessionContext.sessions.count == 0
        }
        let after = await manager.server.linkStatistics()
        XCTAssertEqual(after.links, 0, "the dead repeater's links must be closed")
        XCTAssertEqual(after.streams, 0, "every stream of the dead link must be freed")
        XCTAssertEqual(manager.server.sessionContext.sessions.count, 0, "every session of the dead link must end")
        print("repeaterd killed: \(during.streams) streams freed")

        // A restarted repeaterd serves new sessions.
        repeater = try deployment.repeater(listenPort: frontPort, backendPort: manager.linkPort, ["--threads", "1"])
        repeater.waitFor("link up", onStderr: true)
        let small = try deployment.makeFile("small", bytes: 1000)
        let again = try deployment.runClient(port: frontPort, ["put", small, "after-restart"])
        XCTAssertEqual(again.status, 0, again.stderr)
        await manager.stop()
    }

    // MARK: client vanishes mid-upload

    func testAClientVanishingMidUploadLeavesNothingStoredAndNoStream() async throws {
        // Debug: a message cut short is a debug line (a client can cause it at will).
        let manager = try await InProcessRuntimeManager(logLevel: .debug)
        let (repeater, frontPort) = try deployment.repeaterWithLinkUp(backendPort: manager.linkPort, ["--threads", "1"])
        let client = try await RawTLSClient.connect(port: frontPort, configuration: clientConfiguration, group: manager.group)
        // A 16 MiB write request of which only 1 MiB is sent before the client vanishes.
        let request = RuntimeManagerRequest.with {
            $0.context = 1
            $0.writeFile = .with {
                $0.fileName = "half"
                $0.data = Data(repeating: 0x5A, count: 16 << 20)
            }
        }
        let bytes: [UInt8] = try request.serializedBytes()
        var prefix = ByteBuffer()
        writeLengthPrefix(bytes.count, into: &prefix)
        try await client.send(prefix)
        try await client.send(ByteBuffer(bytes: bytes.prefix(1 << 20)))
        XCTAssertTrue(eventually(timeout: 20) { manager.server.sessionContext.sessions.count == 1 })
        // Vanish only once repeaterd has read every byte sent: acknowledged by its kernel (nothing
        // left in the client's send queue) and read by repeaterd (nothing unread on its socket),
        // so the partial message is on the link, ahead of the stream's reset.
        let clientPort = try XCTUnwrap(client.channel.localAddress?.port)
        XCTAssertTrue(
            eventually(timeout: 20) {
                tcpQueues(localPort: clientPort, remotePort: frontPort)?.sent == 0
                    && tcpQueues(localPort: frontPort, remotePort: clientPort)?.unread == 0
            },
            "repeaterd should read the megabyte: client \(String(describing: tcpQueues(localPort: clientPort, remotePort: frontPort))), "
                + "repeaterd \(String(describing: tcpQueues(localPort: frontPort, remotePort: clientPort)))")
        try await client.vanish()

        _ = await eventuallyAsync(timeout: 20) {
            await manager.server.linkStatistics().streams == 0 && manager.server.sessionContext.sessions.count == 0
        }
        let stats = await manager.server.linkStatistics()
        XCTAssertEqual(manager.server.sessionContext.sessions.count, 0, "the session must end")
        XCTAssertEqual(stats.streams, 0, "no stream may leak")
        XCTAssertEqual(stats.links, 1, "the link itself stays up for everyone else")
        XCTAssertThrowsError(try manager.server.store.read("half"), "nothing may be stored half-written")
        XCTAssertTrue(
            manager.logs.messages.contains { $0.hasPrefix("debug") && $0.contains("connection ended after") },
            "the runtime manager should say it discarded a partial message: \(manager.logs.messages.suffix(5))")

        // The repeater and the runtime manager go on serving.
        let next = try await RuntimeClient.connect(host: "127.0.0.1", port: frontPort, configuration: clientConfiguration)
        try await next.write("whole", data: Data("fine".utf8))
        let readBack = try await next.read("whole")
        XCTAssertEqual(readBack, Data("fine".utf8))
        await next.close()
        XCTAssertTrue(repeater.process.isRunning)
        await manager.stop()
    }

    // MARK: a client that stops reading a 256 MiB download

    /// A client that stops reading a 256 MiB download is held back by flow control, and another
    /// session on the same link is served meanwhile. How fast that other session is, and how much
    /// memory repeaterd holds for the stalled one, are printed for information, not asserted (wall
    /// clock and RSS on a shared machine); flow control itself is tested on embedded channels
    /// (YamuxMultiplexerTests: a stalled stream does not stall another; an unread window stops
    /// the writer).
    func testAClientThatStopsReadingADownloadIsHeldBackAndAnotherSessionIsServed() async throws {
        let manager = try await InProcessRuntimeManager(maximumMessageBytes: 300 << 20)
        try manager.server.store.write("big", data: Data(repeating: 0xA5, count: 256 << 20))
        // One event loop: the stalled session and the other one share the same link.
        let (repeater, frontPort) = try deployment.repeaterWithLinkUp(backendPort: manager.linkPort, ["--threads", "1"])
        let pid = repeater.process.processIdentifier
        let other = try await RuntimeClient.connect(host: "127.0.0.1", port: frontPort, configuration: clientConfiguration)
        _ = try await other.policyHash()
        let baseline = residentKiB(pid: pid) ?? 0

        let stalled = try await RawTLSClient.connect(port: frontPort, configuration: clientConfiguration, group: manager.group)
        try await stalled.stopReading()
        let request: [UInt8] = try RuntimeManagerRequest.with {
            $0.context = 9
            $0.readFile = .with { $0.fileName = "big" }
        }.serializedBytes()
        var message = ByteBuffer()
        writeLengthPrefix(request.count, into: &message)
        message.writeBytes(request)
        try await stalled.send(message)
        // The download has started and backs up: its bytes wait unread in the stalled client's socket.
        let stalledPort = try XCTUnwrap(stalled.channel.localAddress?.port)
        XCTAssertTrue(
            eventually(timeout: 20) { (tcpQueues(localPort: stalledPort, remotePort: frontPort)?.unread ?? 0) > 0 },
            "the download never reached the stalled client")

        // The other session on the same link gets every answer while the download is stalled.
        var peak = baseline
        var latencies: [Double] = []
        for _ in 0..<200 {
            let start = DispatchTime.now()
            let hash = try await other.policyHash()
            XCTAssertEqual(hash.count, 32)
            latencies.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6)
            peak = max(peak, residentKiB(pid: pid) ?? 0)
        }
        XCTAssertEqual(latencies.count, 200)
        XCTAssertTrue(stalled.isActive, "the slow reader is not punished, only held back")
        XCTAssertEqual(manager.server.sessionContext.sessions.count, 2, "both sessions are still open")
        XCTAssertTrue(repeater.process.isRunning)
        latencies.sort()
        print(
            "slow reader of 256 MiB (information only): repeaterd RSS \(baseline) KiB → peak \(peak) KiB "
                + "(+\((peak - baseline) / 1024) MiB); other session's request/response "
                + "p50 \(String(format: "%.2f", latencies[latencies.count / 2])) ms, "
                + "p99 \(String(format: "%.2f", latencies[latencies.count * 99 / 100])) ms")
        try await stalled.vanish()
        await other.close()
        await manager.stop()
    }

    // MARK: 10,000 concurrent idle client connections

    func testTenThousandIdleConnectionsAreAllServed() throws {
        let count = 10_000
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        guard limit.rlim_cur >= rlim_t(count + 500) else {
            XCTFail(
                "this test needs \(count + 500) file descriptors, but the hard limit is \(limit.rlim_max): "
                    + "raise it before running the tests (as root: ulimit -Hn 20000; in a container: --ulimit nofile=20000)")
            return
        }
        let linkPort = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--echo", "-v"], name: "muxcat listen --echo")
        XCTAssertTrue(echo.waitFor("listening on", onStderr: true))
        let frontPort = freePort()
        let repeater = try deployment.repeater(
            listenPort: frontPort, backendPort: linkPort, ["--threads", "1"])
        XCTAssertTrue(
            eventually(timeout: 20) {
                (try? RawSocket.connect(port: frontPort))
                    .map { socket in
                        socket.send([0x21])
                        socket.read(timeout: 1) { $0.count >= 1 }
                        defer { socket.close() }
                        return socket.received == [0x21]
                    } ?? false
            })
        let started = Date()
        var sockets: [RawSocket] = []
        sockets.reserveCapacity(count)
        defer { for socket in sockets { socket.close() } }
        for _ in 0..<count { sockets.append(try RawSocket.connect(port: frontPort)) }
        let opened = Date().timeIntervalSince(started)
        // Every one is served: one byte each way.
        for socket in sockets { socket.send([0x42]) }
        var served = 0
        for socket in sockets {
            socket.read(timeout: 10) { $0.count >= 1 }
            if socket.received == [0x42] { served += 1 }
        }
        XCTAssertEqual(served, count, "every connection must be served")
        // Memory per idle session is measured by tools/bench (scale), on a release build.
        print("10,000 idle sessions: opened in \(String(format: "%.1f", opened)) s (information only)")
        XCTAssertTrue(repeater.process.isRunning)
    }

    // MARK: connections that send nothing (slowloris)

    func testConnectionsThatSendNothingAreClosedAfterTheIdleTimeout() throws {
        let linkPort = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--echo", "-v"], name: "muxcat listen --echo")
        XCTAssertTrue(echo.waitFor("listening on", onStderr: true))
        let (repeater, frontPort) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1", "--idle-timeout", "1"])
        let silent = try (0..<50).map { _ in try RawSocket.connect(port: frontPort) }
        defer { for socket in silent { socket.close() } }
        // When they are closed (not before the timeout, within a sweep after it) is tested on
        // virtual time (IdleSweeperTests); the deadline here only bounds a broken run.
        for socket in silent {
            XCTAssertTrue(socket.readUntilClosed(timeout: 20), "a silent connection must be closed after the idle timeout")
        }
        // Clients choose to be silent: without --access-log, one summary line (at the exit at the
        // latest) counts them, not a line each.
        repeater.signal(SIGTERM)
        XCTAssertEqual(repeater.waitForExit(), 0)
        XCTAssertTrue(
            repeater.stderr.text.contains("50 clients closed after no traffic for the idle timeout (--idle-timeout)"),
            repeater.stderr.text)
    }

    /// `--idle-timeout 0` turns the sweep off (it closed silent clients after ~10 ms before).
    func testIdleTimeoutZeroNeverClosesASilentConnection() throws {
        let linkPort = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--echo", "-v"], name: "muxcat listen --echo")
        XCTAssertTrue(echo.waitFor("listening on", onStderr: true))
        let (repeater, frontPort) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1", "--idle-timeout", "0"])
        let silent = try RawSocket.connect(port: frontPort)
        defer { silent.close() }
        XCTAssertFalse(silent.read(timeout: 1.5), "a silent connection stays open with --idle-timeout 0")
        silent.send([1, 2, 3])
        silent.read(timeout: 10) { $0.count >= 3 }
        XCTAssertEqual(silent.received, [1, 2, 3], "and is still relayed after the silence")
        silent.shutdownWrite()
        XCTAssertTrue(silent.readUntilClosed(timeout: 10))
        repeater.signal(SIGTERM)
        XCTAssertEqual(repeater.waitForExit(), 0)
        XCTAssertFalse(repeater.stderr.text.contains("closed after no traffic"), repeater.stderr.text)
    }

    // MARK: a flood of stream opens on the link

    func testAFloodOfStreamOpensIsRefusedWithRSTAndTheLinkSurvives() throws {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort, ["--max-streams", "100"])
        let (_, frontPort) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])

        let flood = try RawSocket.connect(port: linkPort)
        defer { flood.close() }
        let opens = (0..<5000).map { WireFrame(type: WireFrame.windowUpdate, flags: WireFrame.syn, stream: UInt32(2 * $0 + 1), length: 0) }
        flood.send(opens)
        flood.send([WireFrame(type: WireFrame.ping, flags: WireFrame.syn, stream: 0, length: 4242)])
        let closed = flood.read(timeout: 15) { received in
            WireFrame.parse(received).contains { $0.type == WireFrame.ping && $0.flags & WireFrame.ack != 0 && $0.length == 4242 }
        }
        XCTAssertFalse(closed, "the flooding link itself is not closed: refusing streams is not a protocol error")
        let frames = flood.frames
        let resets = frames.filter { $0.type == WireFrame.windowUpdate && $0.flags & WireFrame.rst != 0 }.count
        XCTAssertGreaterThanOrEqual(resets, 4900, "opens beyond the cap of 100 must be answered with RST")
        XCTAssertFalse(frames.contains { $0.type == WireFrame.goAway })
        XCTAssertTrue(frames.contains { $0.type == WireFrame.ping && $0.length == 4242 }, "the link still answers pings")
        print("stream-open flood: 5000 SYNs, \(resets) refused with RST, the link answered a ping after it")

        // Other sessions, on another link, are served meanwhile.
        let answer = try deployment.runClient(port: frontPort, ["policy-hash"])
        XCTAssertEqual(answer.status, 0, answer.stderr)
        XCTAssertTrue(manager.process.isRunning)
    }

    // MARK: SIGTERM during transfers

    func testSIGTERMLetsTransfersFinishRefusesNewConnectionsAndExitsZero() throws {
        let linkPort = freePort()
        let directPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort, ["--direct", "127.0.0.1:\(directPort)"])
        let (repeater, frontPort) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1", "--drain-timeout", "60"])
        let file = try deployment.makeFile("32MiB", bytes: 32 << 20)
        let puts = try (0..<3).map { i -> RunningProcess in
            let put = try deployment.client(port: frontPort, ["put", file, "drained-\(i)"])
            put.closeInput()
            return put
        }
        XCTAssertTrue(eventually(timeout: 20) { manager.stderr.text.components(separatedBy: "session started").count >= 4 })
        repeater.signal(SIGTERM)
        // New connections are refused from now on.
        XCTAssertTrue(
            eventually(timeout: 20) {
                (try? RawSocket.connect(port: frontPort)).map {
                    $0.close()
                    return false
                } ?? true
            },
            "repeaterd must stop accepting on SIGTERM")
        for (i, put) in puts.enumerated() {
            XCTAssertEqual(put.waitForExit(timeout: 60), 0, "transfer \(i) must complete: \(put.stderr.text)")
        }
        XCTAssertEqual(repeater.waitForExit(timeout: 60), 0, "repeaterd exits 0 after draining")
        XCTAssertTrue(repeater.stderr.text.contains("draining"), repeater.stderr.text.suffix(1000).description)
        // Every file arrived whole (checked directly, without the repeater).
        let expected = try runTool("/usr/bin/sha256sum", [file]).prefix(64)
        for i in 0..<3 {
            let hash = try deployment.runClient(port: directPort, ["hash", "drained-\(i)"])
            XCTAssertEqual(hash.status, 0, hash.stderr)
            XCTAssertEqual(String(hash.stdout.prefix(64)), String(expected))
        }
    }

    // MARK: the link goes silent (peer frozen with SIGSTOP)

    func testAFrozenPeerIsNoticedByKeepAliveAndItsSessionsClosedWithAReason() async throws {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(
            linkPort: linkPort, ["--keepalive-interval", "1", "--keepalive-timeout", "1"])
        let (repeater, frontPort) = try deployment.repeaterWithLinkUp(
            backendPort: linkPort, ["--threads", "1", "--keepalive-interval", "1", "--keepalive-timeout", "1"])
        let client = try await RuntimeClient.connect(host: "127.0.0.1", port: frontPort, configuration: clientConfiguration)
        _ = try await client.policyHash()

        // The runtime manager freezes: repeaterd notices within interval + timeout.
        manager.signal(SIGSTOP)
        let frozenAt = Date()
        // The log names the configured timeout, so it was keep-alive that noticed; the deadline
        // only bounds a broken run (keep-alive timing is tested on virtual time in YamuxTests).
        XCTAssertTrue(repeater.waitFor("no ping reply within 1000 ms", onStderr: true, timeout: 30))
        let noticed = Date().timeIntervalSince(frozenAt)
        XCTAssertTrue(repeater.waitFor("its sessions are closed", onStderr: true))
        do {
            _ = try await client.policyHash()
            XCTFail("the session on the dead link must be closed")
        } catch {
            print("frozen runtime manager: noticed after \(String(format: "%.1f", noticed)) s; the client was told: \(error)")
        }
        await client.close()
        manager.signal(SIGCONT)

        // And the other way round: repeaterd freezes, the runtime manager notices and frees the link.
        XCTAssertTrue(eventually(timeout: 15) { repeater.stderr.text.components(separatedBy: "link up").count >= 3 })
        let before = manager.stderr.text.count
        repeater.signal(SIGSTOP)
        XCTAssertTrue(
            eventually(timeout: 30) { manager.stderr.text.dropFirst(before).contains("no ping reply within 1000 ms") },
            "the runtime manager should notice the frozen repeater: \(manager.stderr.text.suffix(800))")
        XCTAssertTrue(eventually(timeout: 30) { manager.stderr.text.dropFirst(before).contains("link closed") })
        repeater.signal(SIGCONT)
    }
}

/// Runs a tool to completion and returns its standard output.
func runTool(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}
