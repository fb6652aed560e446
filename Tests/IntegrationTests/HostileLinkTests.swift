import Foundation
import ProcessTestSupport
import RuntimeClient
import XCTest

/// Hostile and broken yamux input on a link, sent by a raw socket to the real processes:
/// `runtime-manager --listen`, `muxcat listen`, and `repeaterd` (from a fake runtime manager).
/// Every case must end in Go Away (protocol error) where the link can still carry it, then the
/// link is closed, the log says what was wrong, and the process goes on serving everyone else.
final class HostileLinkTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    struct HostileCase {
        var name: String
        var bytes: [UInt8]
        /// What the process's log must say.
        var log: String
        /// False where the link cannot carry an answer (the peer already stopped mid-frame).
        var expectGoAway = true
        /// Half-close after sending (the "cut in half" case).
        var thenClose = false
    }

    private typealias F = WireFrame

    /// The cases for the side that accepts links and streams (runtime-manager, muxcat listen).
    static let acceptingSideCases: [HostileCase] = {
        let open1 = F(type: F.windowUpdate, flags: F.syn, stream: 1, length: 0)
        return [
            HostileCase(
                name: "bad version", bytes: F(version: 1, type: F.windowUpdate, flags: F.syn, stream: 1, length: 0).bytes,
                log: "bad version 1"),
            HostileCase(
                name: "unknown type", bytes: F(type: 7, flags: 0, stream: 0, length: 0).bytes,
                log: "unknown frame type 7"),
            HostileCase(
                name: "Data beyond the window",
                bytes: open1.bytes
                    + F(
                        type: F.data, flags: 0, stream: 1, length: 300 * 1024,
                        payload: [UInt8](repeating: 0x16, count: 300 * 1024)
                    ).bytes,
                log: "but its receive window was 262144"),
            HostileCase(
                name: "Data on a never-opened stream",
                bytes: F(type: F.data, flags: 0, stream: 5, length: 3, payload: [1, 2, 3]).bytes,
                log: "DATA for a stream that was never opened"),
            HostileCase(
                name: "FIN on a never-opened stream", bytes: F(type: F.windowUpdate, flags: F.fin, stream: 5, length: 0).bytes,
                log: "WINDOW_UPDATE for a stream that was never opened"),
            HostileCase(
                name: "ACK for a never-opened stream", bytes: F(type: F.windowUpdate, flags: F.ack, stream: 5, length: 0).bytes,
                log: "WINDOW_UPDATE for a stream that was never opened"),
            HostileCase(name: "duplicate SYN", bytes: open1.bytes + open1.bytes, log: "duplicate SYN"),
            HostileCase(
                name: "Window Update past 2^31-1",
                bytes: open1.bytes + F(type: F.windowUpdate, flags: 0, stream: 1, length: 0x7FFF_FFFF).bytes,
                log: "overflows the window"),
            HostileCase(
                name: "Data length of 4 GiB",
                bytes: open1.bytes + F(type: F.data, flags: 0, stream: 1, length: 0xFFFF_FFFF).bytes + [1, 2, 3, 4],
                log: "Data frame of 4294967295 bytes exceeds the limit"),
            HostileCase(
                name: "header cut in half", bytes: Array(open1.bytes.prefix(6)),
                log: "in the middle of a frame (6 bytes of it missing)", expectGoAway: false, thenClose: true),
            HostileCase(
                name: "garbage (an HTTP request)", bytes: Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8),
                log: "bad version 71"),
        ]
    }()

    /// Sends one case on a new link to `port` and checks the answer, the close and the log.
    /// (That no allocation follows an attacker's length is what the log shows: the 4 GiB frame is
    /// refused at its header, Data beyond the window at the window check.)
    private func attack(port: Int, with hostile: HostileCase, log: CollectedOutput) throws {
        let before = log.text.count
        let link = try RawSocket.connect(port: port)
        defer { link.close() }
        link.send(hostile.bytes)
        if hostile.thenClose { link.shutdownWrite() }
        XCTAssertTrue(link.readUntilClosed(timeout: 20), "\(hostile.name): the link must be closed")
        let frames = link.frames
        if hostile.expectGoAway {
            XCTAssertTrue(
                frames.contains { $0.type == F.goAway && $0.length == 1 },
                "\(hostile.name): expected Go Away with the protocol-error code (1), got \(frames)")
        }
        XCTAssertTrue(
            eventually(timeout: 20) { String(log.text.dropFirst(before)).contains(hostile.log) },
            "\(hostile.name): the log should say '\(hostile.log)'; it said: \(log.text.dropFirst(before).suffix(1500))")
    }

    func testMuxcatListenRefusesEveryHostileLinkAndKeepsServingAGoodOne() throws {
        let port = freePort()
        let muxcat = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(port)", "--echo", "-v"], name: "muxcat listen")
        muxcat.waitFor("listening on", onStderr: true)
        // A good link with an open stream, used between the attacks.
        let good = try RawSocket.connect(port: port)
        defer { good.close() }
        good.send([F(type: F.windowUpdate, flags: F.syn, stream: 1, length: 0)])
        var round = 0
        func echoWorks() -> Bool {
            round += 1
            let text = Array("still here \(round)\n".utf8)
            good.send([F(type: F.data, flags: 0, stream: 1, length: UInt32(text.count), payload: text)])
            good.read(timeout: 20) { received in
                WireFrame.parse(received).contains { $0.type == F.data && $0.payload == text }
            }
            return good.frames.contains { $0.type == F.data && $0.payload == text }
        }
        XCTAssertTrue(echoWorks())
        for hostile in Self.acceptingSideCases {
            try attack(port: port, with: hostile, log: muxcat.stderr)
            XCTAssertTrue(echoWorks(), "after \(hostile.name): the good link must still echo")
        }
        XCTAssertTrue(muxcat.process.isRunning)
    }

    func testRuntimeManagerRefusesEveryHostileLinkAndKeepsServingAGoodSession() async throws {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort)
        let (_, frontPort) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        // A real client session through a real repeater on another link, alive across the attacks.
        let client = try await RuntimeClient.connect(
            host: "127.0.0.1", port: frontPort,
            configuration: RuntimeClientConfiguration(
                certificatePath: Certificates.path("client.pem"), keyPath: Certificates.path("client.key"),
                caPath: Certificates.path("ca.pem")))
        let expected = try await client.policyHash()
        for hostile in Self.acceptingSideCases {
            try attack(port: linkPort, with: hostile, log: manager.stderr)
            let hash = try await client.policyHash()
            XCTAssertEqual(hash, expected, "after \(hostile.name): the good session must still be answered")
        }
        await client.close()
        XCTAssertTrue(manager.process.isRunning)
    }

    /// The side that dials: a fake runtime manager (this test) answers repeaterd's link with
    /// hostile frames once a client's stream is open on it. repeaterd must refuse, close that link,
    /// redial, and serve the next client.
    func testRepeaterdRefusesAHostileRuntimeManagerAndServesTheNextLink() throws {
        let backend = try RawListener()
        defer { backend.close() }
        let frontPort = freePort()
        let repeater = try deployment.repeater(
            listenPort: frontPort, backendPort: backend.port, ["--threads", "1", "--keepalive-interval", "0"])
        let cases: [HostileCase] = [
            HostileCase(
                name: "bad version", bytes: F(version: 1, type: F.ping, flags: F.syn, stream: 0, length: 1).bytes,
                log: "bad version 1"),
            HostileCase(name: "unknown type", bytes: F(type: 9, flags: 0, stream: 0, length: 0).bytes, log: "unknown frame type 9"),
            HostileCase(
                name: "Data beyond the window",
                bytes: F(type: F.windowUpdate, flags: F.ack, stream: 1, length: 0).bytes
                    + F(type: F.data, flags: 0, stream: 1, length: 300 * 1024, payload: [UInt8](repeating: 7, count: 300 * 1024)).bytes,
                log: "but its receive window was 262144"),
            HostileCase(
                name: "Data on a never-opened stream", bytes: F(type: F.data, flags: 0, stream: 7, length: 3, payload: [1, 2, 3]).bytes,
                log: "DATA for a stream that was never opened"),
            HostileCase(
                name: "FIN on a never-opened stream", bytes: F(type: F.windowUpdate, flags: F.fin, stream: 7, length: 0).bytes,
                log: "WINDOW_UPDATE for a stream that was never opened"),
            HostileCase(
                name: "ACK for a never-opened stream", bytes: F(type: F.windowUpdate, flags: F.ack, stream: 7, length: 0).bytes,
                log: "WINDOW_UPDATE for a stream that was never opened"),
            HostileCase(
                name: "SYN for the repeater's own stream", bytes: F(type: F.windowUpdate, flags: F.syn, stream: 1, length: 0).bytes,
                log: "invalid open of stream 1"),
            HostileCase(
                name: "Window Update past 2^31-1",
                bytes: F(type: F.windowUpdate, flags: F.ack, stream: 1, length: 0x7FFF_FFFF).bytes, log: "overflows the window"),
            HostileCase(
                name: "Data length of 4 GiB",
                bytes: F(type: F.windowUpdate, flags: F.ack, stream: 1, length: 0).bytes
                    + F(type: F.data, flags: 0, stream: 1, length: 0xFFFF_FFFF).bytes,
                log: "Data frame of 4294967295 bytes exceeds the limit"),
            HostileCase(
                name: "header cut in half", bytes: Array(F(type: F.windowUpdate, flags: F.ack, stream: 1, length: 0).bytes.prefix(6)),
                log: "in the middle of a frame (6 bytes of it missing)", expectGoAway: false, thenClose: true),
            HostileCase(name: "garbage (an HTTP answer)", bytes: Array("HTTP/1.1 200 OK\r\n\r\n".utf8), log: "bad version 72"),
        ]
        for hostile in cases {
            let before = repeater.stderr.text.count
            let (link, client) = try Self.acceptLinkWithAClientStream(backend: backend, frontPort: frontPort)
            link.clearReceived()
            link.send(hostile.bytes)
            if hostile.thenClose { link.shutdownWrite() }
            XCTAssertTrue(link.readUntilClosed(timeout: 20), "\(hostile.name): repeaterd must close the link")
            if hostile.expectGoAway {
                XCTAssertTrue(
                    link.frames.contains { $0.type == F.goAway && $0.length == 1 },
                    "\(hostile.name): expected Go Away (protocol error), got \(link.frames)")
            }
            XCTAssertTrue(client.readUntilClosed(timeout: 20), "\(hostile.name): the client on that link must be closed")
            XCTAssertTrue(
                eventually(timeout: 20) { String(repeater.stderr.text.dropFirst(before)).contains(hostile.log) },
                "\(hostile.name): repeaterd should log '\(hostile.log)': \(repeater.stderr.text.dropFirst(before).suffix(1500))")
            link.close()
            client.close()
        }
        // The next, honest link serves a client end to end.
        let (link, client) = try Self.acceptLinkWithAClientStream(backend: backend, frontPort: frontPort)
        defer {
            link.close()
            client.close()
        }
        let syn = try XCTUnwrap(link.frames.first { $0.flags & F.syn != 0 && $0.stream != 0 })
        link.send([
            F(type: F.windowUpdate, flags: F.ack, stream: syn.stream, length: 0),
            F(type: F.data, flags: 0, stream: syn.stream, length: 5, payload: Array("world".utf8)),
        ])
        client.read(timeout: 20) { $0.count >= 5 }
        XCTAssertEqual(String(decoding: client.received, as: UTF8.self), "world")
        XCTAssertTrue(repeater.process.isRunning)
    }

    /// Accepts repeaterd's next link and connects clients until one's "hello" arrives on it as a
    /// stream. A client that connects before repeaterd has finished setting the link up is closed
    /// at once: then the next one is tried. Each waits for one of the two events, not for a time.
    static func acceptLinkWithAClientStream(backend: RawListener, frontPort: Int) throws -> (RawSocket, RawSocket) {
        let link = try backend.accept(timeout: 20)
        let hello = Array("hello".utf8)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let client = try RawSocket.connect(port: frontPort)
            client.send(hello)
            while Date() < deadline {
                link.read(timeout: 0.02) { received in
                    WireFrame.parse(received).contains { $0.type == F.data && $0.payload == hello }
                }
                if link.frames.contains(where: { $0.type == F.data && $0.payload == hello }) {
                    return (link, client)
                }
                if client.read(timeout: 0.02, until: { _ in false }) { break }  // closed: the link was not ready
            }
            client.close()
        }
        throw SocketError("no client stream arrived on repeaterd's link within 30 s")
    }
}
