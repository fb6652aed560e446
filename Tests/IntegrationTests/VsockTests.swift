import Foundation
import NIOCore
import NIOPosix
import ProcessTestSupport
import XCTest
import YamuxLink

#if canImport(Glibc)
import Glibc
#endif

/// vsock links, as far as these machines can run them: /dev/vsock exists and a listener binds,
/// but no transport carries a connection between two processes (no vsock_loopback module, no
/// modprobe), so no round trip runs here. What runs: the listeners really bind (a second bind
/// of the port is refused), and a repeaterd whose vsock peer never answers says so once per
/// redial, keeps running and refuses clients with the reason.
final class VsockTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/dev/vsock"), "no /dev/vsock on this machine")
        deployment = try Deployment()
    }

    override func tearDown() { deployment?.cleanUp() }

    private func runtimeManagerArguments(listen: String) -> [String] {
        [
            "--listen", listen, "--cert", Certificates.path("runtime-manager.pem"), "--key", Certificates.path("runtime-manager.key"),
            "--client-ca", Certificates.path("ca.pem"), "--policy", Certificates.path("policy.json"),
        ]
    }

    /// `ss --vsock -l` lists nothing on these machines (no vsock_diag): the proof that the runtime
    /// manager listens is that the port is taken, by a second runtime-manager and by a bind here.
    func testRuntimeManagerListensOnVsockAnyAndTheSamePortCannotBeBoundTwice() throws {
        let port = Int.random(in: 20_000...60_000)
        let manager = try deployment.sandbox.start(
            try Binaries.path("runtime-manager"), runtimeManagerArguments(listen: "vsock:any:\(port)"), name: "runtime-manager")
        manager.waitFor("accepting repeater links on vsock:any:\(port)", onStderr: true)

        let second = try deployment.sandbox.start(
            try Binaries.path("runtime-manager"), runtimeManagerArguments(listen: "vsock:any:\(port)"), name: "second runtime-manager")
        XCTAssertEqual(second.waitForExit(), 1)
        XCTAssertEqual(
            second.stderr.text,
            "runtime-manager: --listen: cannot listen on vsock:any:\(port): address already in use (another process listens there)\n")

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        XCTAssertThrowsError(try ServerBootstrap(group: group).bind(to: LinkAddress.vsock(cid: UInt32.max, port: UInt32(port))).wait())

        manager.signal(SIGTERM)
        XCTAssertEqual(manager.waitForExit(), 0, manager.stderr.text)
        // Its port is free again once it stopped.
        let rebound = try ServerBootstrap(group: group).bind(to: LinkAddress.vsock(cid: UInt32.max, port: UInt32(port))).wait()
        try rebound.close().wait()
    }

    /// CID 16 is no machine here: each dial fails (after the kernel's 2 s connect timeout on
    /// these machines). One line per failed dial, each with its backoff; the process keeps
    /// running; a client is closed at once with the reason; /readyz says why; SIGTERM: exit 0.
    func testRepeaterdWithAVsockPeerThatNeverAnswersRedialsSaysSoAndRefusesClientsWithTheReason() throws {
        let port = Int.random(in: 20_000...60_000)
        let clientPort = freePort()
        let adminPort = freePort()
        let repeater = try deployment.sandbox.start(
            try Binaries.repeaterd,
            [
                "--listen", "127.0.0.1:\(clientPort)", "--backend", "vsock:16:\(port)", "--threads", "1", "--admin",
                "127.0.0.1:\(adminPort)", "--access-log",
            ], name: "repeaterd")
        repeater.waitFor("repeater listening", onStderr: true)
        let redialLine = "cannot reach the runtime manager at vsock:16:\(port): "
        XCTAssertTrue(
            eventually(timeout: 20) {
                repeater.stderr.text.components(separatedBy: redialLine).count - 1 >= 2
            }, repeater.stderr.text)
        let lines = repeater.stderr.text.components(separatedBy: "\n").filter { $0.contains(redialLine) }
        for (index, line) in lines.enumerated() {
            XCTAssertTrue(line.contains("; retrying with backoff in "), line)
            XCTAssertTrue(line.contains("attempts=\(index + 1) "), "one line per redial, numbered: \(line)")
        }

        let client = try RawSocket.connect(port: clientPort)
        defer { client.close() }
        XCTAssertTrue(client.readUntilClosed(timeout: 10), "a client is closed at once while the link is down")
        XCTAssertTrue(
            repeater.waitFor("reason=the link to the runtime manager at vsock:16:\(port) is down (", onStderr: true),
            "the access line gives the reason, as the last dial failed")
        XCTAssertTrue(repeater.stderr.text.contains("cause=refused_link_down"), repeater.stderr.text)
        let ready = try deployment.adminGet(adminPort, "/readyz")
        XCTAssertEqual(ready.status, 503)
        XCTAssertTrue(ready.body.contains("vsock:16:\(port)"), ready.body)

        XCTAssertTrue(repeater.process.isRunning, "it keeps running and redialing")
        repeater.signal(SIGTERM)
        XCTAssertEqual(repeater.waitForExit(), 0, repeater.stderr.text)
    }

    /// muxcat listens on vsock too, and a dial that cannot be answered fails with one clear line.
    func testMuxcatListensOnVsockAndADialThatCannotBeAnsweredFailsInOneLine() throws {
        let port = Int.random(in: 20_000...60_000)
        let listener = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "vsock:any:\(port)", "--echo", "-v"], name: "muxcat listen")
        listener.waitFor("listening on vsock:any:\(port)", onStderr: true)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        XCTAssertThrowsError(try ServerBootstrap(group: group).bind(to: LinkAddress.vsock(cid: UInt32.max, port: UInt32(port))).wait())
        listener.signal(SIGTERM)
        XCTAssertEqual(listener.waitForExit(), 0)

        let connect = try deployment.sandbox.start(try Binaries.muxcat, ["connect", "vsock:16:\(port)"], name: "muxcat connect")
        XCTAssertEqual(connect.waitForExit(), 1)
        let lines = connect.stderr.text.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, connect.stderr.text)
        XCTAssertTrue(
            connect.stderr.text.hasPrefix("muxcat: cannot connect to vsock:16:\(port): "), connect.stderr.text)
        XCTAssertTrue(connect.stderr.text.contains("is the runtime manager (or muxcat listen) listening there?"), connect.stderr.text)
    }
}
