import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A link peer that floods and never reads, against the real processes (runtime-manager,
/// repeaterd, muxcat listen): a ping flood (each ping asks for an answer) and a stream flood
/// (streams opened and reset at once, or refused). Each process must keep its resident memory
/// within 64 MiB of what it had, write at most 200 log lines for it all, and serve the next
/// honest peer.
final class LinkFloodTests: XCTestCase {
    private typealias F = WireFrame
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    static let growthLimitKiB = 64 * 1024
    static let lineLimit = 200

    /// 1,000 ping requests, sent over and over.
    private static let pings: [UInt8] = (1...1000).flatMap { F(type: F.ping, flags: F.syn, stream: 0, length: UInt32($0)).bytes }

    /// `count` streams from `firstID` on (every other id), each opened (SYN) and, when `reset`,
    /// reset (RST) at once.
    private static func streams(_ count: Int, firstID: UInt32, reset: Bool) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count * 24)
        for i in 0..<count {
            let id = firstID + 2 * UInt32(i)
            bytes += F(type: F.windowUpdate, flags: F.syn, stream: id, length: 0).bytes
            if reset { bytes += F(type: F.windowUpdate, flags: F.rst, stream: id, length: 0).bytes }
        }
        return bytes
    }

    /// Sends `bytes` on `link` for at most `seconds` (over and over when `repeating`), never
    /// reading. Returns what was sent and the process's resident memory before, in KiB; its peak
    /// is measured from then on (`peakGrowthKiB`).
    private func flood(
        _ process: RunningProcess, link: RawSocket, _ bytes: [UInt8], repeating: Bool, seconds: TimeInterval,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> (sent: Int, residentBeforeKiB: Int) {
        let pid = process.process.processIdentifier
        let before = try XCTUnwrap(residentKiB(pid: pid), file: file, line: line)
        resetPeakResident(pid: pid)
        let sent = link.send(bytes, repeating: repeating, until: Date().addingTimeInterval(seconds))
        return (sent, before)
    }

    /// How far the process's resident memory peaked above `before` since the flood began.
    private func peakGrowthKiB(_ process: RunningProcess, above before: Int) -> Int {
        (residentKiB(pid: process.process.processIdentifier, field: "VmHWM:") ?? Int.max) - before
    }

    /// Floods `link` with pings for `seconds`, never reading: the process's memory grows by at
    /// most the limit, and it stops reading (the flood waits unread in its socket). Closes the link.
    private func pingFlood(
        _ process: RunningProcess, link: RawSocket, seconds: TimeInterval, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let pings = try flood(process, link: link, Self.pings, repeating: true, seconds: seconds, file: file, line: line)
        XCTAssertGreaterThan(pings.sent, 1 << 20, "the flood was sent", file: file, line: line)
        let growth = peakGrowthKiB(process, above: pings.residentBeforeKiB)
        XCTAssertLessThanOrEqual(
            growth, Self.growthLimitKiB, "a \(seconds) s ping flood grew \(process.name) by \(growth) KiB", file: file, line: line)
        print("\(process.name): \(seconds) s ping flood, \(pings.sent >> 20) MiB sent, peak resident +\(growth) KiB")
        XCTAssertGreaterThan(unreadByProcess(link), 0, "\(process.name) stopped reading the flood", file: file, line: line)
        link.close()
    }

    private func lines(_ process: RunningProcess, since offset: Int) -> [Substring] {
        String(process.stderr.text.dropFirst(offset)).split(separator: "\n")
    }

    /// What the flood sent and the process has not read: the bytes waiting in the process's end of
    /// `link` (a connection this test made or accepted).
    private func unreadByProcess(_ link: RawSocket) -> Int {
        tcpQueues(localPort: link.remotePort, remotePort: link.localPort)?.unread ?? 0
    }

    func testRuntimeManagerStaysSmallAndQuietUnderFloodsAndServesAPutAfter() throws {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort, ["--keepalive-interval", "0"])
        let start = manager.stderr.text.count

        let pinger = try RawSocket.connect(port: linkPort)
        try pingFlood(manager, link: pinger, seconds: 15)
        XCTAssertTrue(eventually(timeout: 30) { self.lines(manager, since: start).filter { $0.hasSuffix("link closed") }.count == 1 })

        let opener = try RawSocket.connect(port: linkPort)
        let all = Self.streams(100_000, firstID: 1, reset: true)
        let streams = try flood(manager, link: opener, all, repeating: false, seconds: 120)
        XCTAssertEqual(streams.sent, all.count, "100,000 streams opened and reset")
        XCTAssertTrue(eventually(timeout: 60) { self.unreadByProcess(opener) == 0 }, "read to the end")
        let streamGrowth = peakGrowthKiB(manager, above: streams.residentBeforeKiB)
        XCTAssertLessThanOrEqual(
            streamGrowth, Self.growthLimitKiB, "100,000 streams opened and reset grew runtime-manager by \(streamGrowth) KiB")
        print("runtime-manager: 100,000 streams opened and reset, peak resident +\(streamGrowth) KiB")
        opener.close()
        XCTAssertTrue(eventually(timeout: 30) { self.lines(manager, since: start).filter { $0.hasSuffix("link closed") }.count == 2 })
        let log = lines(manager, since: start)
        XCTAssertLessThanOrEqual(log.count, Self.lineLimit, "\(log.count) lines: \(log.prefix(20))")
        XCTAssertTrue(log.contains { $0.contains("streams reset by the peer") }, "the floods are summed up: \(log)")
        print("runtime-manager: \(log.count) log lines for both floods:\n" + log.joined(separator: "\n"))

        let (_, frontPort) = try deployment.repeaterWithLinkUp(backendPort: linkPort, [])
        let file = try deployment.makeFile("after-floods.bin", bytes: 300_000)
        let put = try deployment.runClient(port: frontPort, ["put", file, "after-floods.bin"])
        XCTAssertEqual(put.status, 0, put.stderr)
        let get = try deployment.runClient(port: frontPort, ["hash", "after-floods.bin"])
        XCTAssertEqual(get.status, 0, get.stderr)
        XCTAssertTrue(manager.process.isRunning)
    }

    func testRepeaterdStaysSmallAndQuietUnderFloodsFromItsLinkPeerAndServesTheNextLink() throws {
        let backend = try RawListener()
        defer { backend.close() }
        let frontPort = freePort()
        let repeater = try deployment.repeater(
            listenPort: frontPort, backendPort: backend.port, ["--threads", "1", "--keepalive-interval", "0"])
        let start = repeater.stderr.text.count

        let pinger = try backend.accept(timeout: 20)
        try pingFlood(repeater, link: pinger, seconds: 10)

        // repeaterd opens streams, it accepts none: each SYN is refused, an answer it must send.
        let opener = try backend.accept(timeout: 30)
        let streams = try flood(repeater, link: opener, Self.streams(100_000, firstID: 2, reset: false), repeating: false, seconds: 30)
        XCTAssertGreaterThan(streams.sent, 0)
        let streamGrowth = peakGrowthKiB(repeater, above: streams.residentBeforeKiB)
        XCTAssertLessThanOrEqual(streamGrowth, Self.growthLimitKiB, "100,000 refused streams grew repeaterd by \(streamGrowth) KiB")
        opener.close()
        XCTAssertTrue(
            eventually(timeout: 30) { self.lines(repeater, since: start).contains { $0.contains("opened by the peer refused") } },
            "\(lines(repeater, since: start))")

        let (link, client) = try HostileLinkTests.acceptLinkWithAClientStream(backend: backend, frontPort: frontPort)
        defer {
            link.close()
            client.close()
        }
        let log = lines(repeater, since: start)
        XCTAssertLessThanOrEqual(log.count, Self.lineLimit, "\(log.count) lines: \(log.prefix(20))")
        XCTAssertTrue(repeater.process.isRunning)
    }

    func testMuxcatListenStaysSmallAndQuietUnderFloodsAndEchoesAfter() throws {
        let port = freePort()
        let muxcat = try deployment.sandbox.start(try Binaries.muxcat, ["listen", "127.0.0.1:\(port)", "--echo"], name: "muxcat listen")
        // Without -v muxcat says nothing when it listens (and -v would print a line per stream).
        XCTAssertTrue(eventually(timeout: 20) { (try? RawSocket.connect(port: port))?.close() != nil }, "muxcat listens")
        let start = muxcat.stderr.text.count

        let pinger = try RawSocket.connect(port: port)
        // Under keep-alive's timeout (10 s): muxcat's own first ping goes unanswered, and would close the link.
        try pingFlood(muxcat, link: pinger, seconds: 8)

        let opener = try RawSocket.connect(port: port)
        let all = Self.streams(100_000, firstID: 1, reset: true)
        let streams = try flood(muxcat, link: opener, all, repeating: false, seconds: 120)
        XCTAssertEqual(streams.sent, all.count)
        XCTAssertTrue(eventually(timeout: 60) { self.unreadByProcess(opener) == 0 }, "read to the end")
        let streamGrowth = peakGrowthKiB(muxcat, above: streams.residentBeforeKiB)
        XCTAssertLessThanOrEqual(streamGrowth, Self.growthLimitKiB, "100,000 streams opened and reset grew muxcat by \(streamGrowth) KiB")
        opener.close()

        let good = try RawSocket.connect(port: port)
        defer { good.close() }
        let text = Array("still echoing\n".utf8)
        good.send([
            F(type: F.windowUpdate, flags: F.syn, stream: 1, length: 0),
            F(type: F.data, flags: 0, stream: 1, length: UInt32(text.count), payload: text),
        ])
        good.read(timeout: 20) { WireFrame.parse($0).contains { $0.type == F.data && $0.payload == text } }
        XCTAssertTrue(good.frames.contains { $0.type == F.data && $0.payload == text }, "\(good.frames)")
        let log = lines(muxcat, since: start)
        XCTAssertLessThanOrEqual(log.count, Self.lineLimit, "\(log.count) lines: \(log.prefix(20))")
    }
}
