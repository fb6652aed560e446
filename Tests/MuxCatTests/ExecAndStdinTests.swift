import Foundation
import Logging
import NIOCore
import NIOPosix
import ProcessTestSupport
import XCTest
import YamuxLink

@testable import MuxCat

#if canImport(Glibc)
import Glibc
#endif

/// What `muxcat listen --exec` promises about its child processes, and what `muxcat connect`
/// does with each kind of stdin: real processes, real sockets.
final class ExecTests: ProcessTestCase {
    /// muxcat ignores SIGINT and SIGTERM itself (swift-service-lifecycle catches them); ignored
    /// signals survive exec, so the child must get every disposition back at its default, and
    /// no signal blocked. (Read by the command itself after `exec`: a shell's own mask changes
    /// while it waits for a child. glibc's posix_spawn leaves its two internal real-time signals,
    /// 32 and 33, ignored; only the standard signals 1-31 are checked.)
    func testTheCommandRunsWithDefaultSignalHandlingAndNoSignalBlocked() throws {
        let (_, port) = try startListener(["--exec", "exec grep -E '^Sig(Blk|Ign):' /proc/self/status"])
        let result = try runMuxcat(["connect", "127.0.0.1:\(port)"])
        XCTAssertEqual(result.status, 0, result.stderr)
        var masks: [String: UInt64] = [:]
        for line in String(decoding: result.stdout, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "\t")
            if parts.count == 2, let mask = UInt64(parts[1], radix: 16) { masks[String(parts[0])] = mask }
        }
        XCTAssertEqual(masks["SigBlk:"], 0, "blocked in the command: \(result.stdout)")
        XCTAssertEqual(
            masks["SigIgn:"].map { $0 & 0x7fff_ffff }, 0, "ignored in the command: \(String(decoding: result.stdout, as: UTF8.self))")
    }

    /// A child spawned while another child's stdin pipe is open must not inherit that pipe's write
    /// end: if it did, the first child would never see EOF while the second one lives.
    func testOneChildNeverHoldsAnotherChildsStdinOpen() throws {
        let (_, port) = try startListener(["--exec", "cat"])
        let first = try start(try Binaries.muxcat, ["connect", "127.0.0.1:\(port)"], name: "first connect")
        first.write("first\n")
        first.waitFor("first\n")
        // Spawned while the first child's pipes are open; stays running (its stdin stays open).
        let second = try start(try Binaries.muxcat, ["connect", "127.0.0.1:\(port)"], name: "second connect")
        second.write("second\n")
        second.waitFor("second\n")

        first.closeInput()
        XCTAssertEqual(first.waitForExit(timeout: 10), 0, first.stderr.text)
        XCTAssertEqual(first.stdout.text, "first\n")
        second.closeInput()
        XCTAssertEqual(second.waitForExit(timeout: 10), 0, second.stderr.text)
    }

    /// The stream is gone (its link dropped), the command still runs: it gets SIGTERM after the
    /// grace period, and is reaped (a zombie would still answer `kill(pid, 0)`).
    func testACommandOutlivingItsStreamIsTerminatedAndReaped() throws {
        let pids = temporaryFile("pids")
        let (listener, port) = try startListener(["--exec", "echo $$ >> '\(pids)'; exec sleep 60"])
        let connect = try start(try Binaries.muxcat, ["connect", "127.0.0.1:\(port)"], name: "connect")
        let pid = try waitForPid(in: pids)
        connect.stop()  // SIGKILL: the link drops, and the stream with it
        listener.waitFor("link 1 stream 1: closed", onStderr: true)
        XCTAssertTrue(waitUntilGone(pid, timeout: 8), "the command (pid \(pid)) still exists 8 s after its stream ended")
    }

    /// A command that ignores SIGTERM gets SIGKILL.
    func testACommandIgnoringSIGTERMIsKilled() throws {
        let pids = temporaryFile("pids")
        let (listener, port) = try startListener(["--exec", "trap '' TERM; echo $$ >> '\(pids)'; exec sleep 60"])
        let connect = try start(try Binaries.muxcat, ["connect", "127.0.0.1:\(port)"], name: "connect")
        let pid = try waitForPid(in: pids)
        connect.stop()
        listener.waitFor("link 1 stream 1: closed", onStderr: true)
        XCTAssertTrue(waitUntilGone(pid, timeout: 12), "the command (pid \(pid)) survived SIGTERM and SIGKILL")
    }

    /// A command that writes and exits at once, before muxcat has even registered its pipes: its
    /// output and the FIN after it must still reach the stream (a race once lost one in ~40).
    func testACommandThatWritesAndExitsAtOnceEndsItsStreamCleanly() throws {
        let (listener, port) = try startListener(["--exec", "echo bye; exit 3"])
        for attempt in 1...40 {
            let result = try runMuxcat(["connect", "127.0.0.1:\(port)"], input: Data("ignored\n".utf8))
            XCTAssertEqual(result.status, 0, "attempt \(attempt): \(result.stderr)")
            XCTAssertEqual(String(decoding: result.stdout, as: UTF8.self), "bye\n", "attempt \(attempt): \(result.stderr)")
            if result.status != 0 { break }
        }
        listener.waitFor("link 40 stream 1: closed", onStderr: true)
    }

    // MARK: muxcat connect's stdin

    /// A regular file as stdin (epoll refuses regular files, so it is read on the thread pool).
    func testConnectReadsARegularFileAsStdin() throws {
        let (_, port) = try startListener(["--echo"])
        let inputFile = temporaryFile("input.bin")
        var bytes = [UInt8]()
        for index in 0..<300_000 { bytes.append(UInt8(truncatingIfNeeded: index &* 7)) }
        try Data(bytes).write(to: URL(fileURLWithPath: inputFile))
        let connect = try start(try Binaries.muxcat, ["connect", "127.0.0.1:\(port)"], stdinFrom: inputFile)
        XCTAssertEqual(connect.waitForExit(timeout: 20), 0, connect.stderr.text)
        XCTAssertTrue(connect.stdout.bytes == Data(bytes), "got \(connect.stdout.bytes.count) of \(bytes.count) bytes back")
    }

    /// `/dev/null` as stdin: a character device epoll refuses; an empty input.
    func testConnectWithDevNullAsStdinHalfClosesAtOnce() throws {
        let (listener, port) = try startListener(["--echo"])
        let connect = try start(try Binaries.muxcat, ["connect", "127.0.0.1:\(port)", "-v"], stdinFrom: "/dev/null")
        XCTAssertEqual(connect.waitForExit(timeout: 10), 0, connect.stderr.text)
        XCTAssertTrue(connect.stderr.text.contains("link 1 stream 1: closed, 0 bytes in, 0 bytes out, closed cleanly"), connect.stderr.text)
        listener.waitFor("link 1 stream 1: closed, 0 bytes in, 0 bytes out", onStderr: true)
    }

    /// The peer finishes first while stdin stays open: muxcat stops reading and exits (it used
    /// to leave a thread blocked in read(2) and leave with `exit`).
    func testConnectExitsWhenThePeerFinishesWhileStdinIsStillOpen() throws {
        let (_, port) = try startListener(["--exec", "echo bye"])
        let connect = try start(try Binaries.muxcat, ["connect", "127.0.0.1:\(port)"], name: "connect")
        XCTAssertEqual(connect.waitForExit(timeout: 10), 0, connect.stderr.text)
        XCTAssertEqual(connect.stdout.text, "bye\n")
        connect.closeInput()
    }

    func testCtrlCOnConnectSaysGoAwayFlushesTheCaptureAndExitsZero() throws {
        let (_, port) = try startListener(["--echo"])
        let capture = temporaryFile("interrupted.mxc")
        let connect = try start(try Binaries.muxcat, ["connect", "127.0.0.1:\(port)", "--capture", capture], name: "connect")
        connect.write("still typing\n")
        connect.waitFor("still typing\n")
        connect.signal(SIGINT)
        XCTAssertEqual(connect.waitForExit(timeout: 10), 0, connect.stderr.text)
        let decoded = try runMuxcat(["decode", capture])
        let text = String(decoding: decoded.stdout, as: UTF8.self)
        XCTAssertTrue(text.contains("go away: link 1 out: code 0 (normal)"), text)
        XCTAssertTrue(text.contains("|still typing.|"), text)
    }

    // MARK: Helpers

    private func waitForPid(in file: String, timeout: TimeInterval = 10) throws -> pid_t {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
                let pid = pid_t(text.split(separator: "\n").first.map(String.init) ?? "")
            {
                return pid
            }
            usleep(20_000)
        }
        throw PidNeverWritten(file: file, timeout: timeout)
    }

    /// A failure, not a skip: a command that never starts is the bug these tests look for.
    private struct PidNeverWritten: Error, CustomStringConvertible {
        var file: String
        var timeout: TimeInterval
        var description: String { "the command never wrote its pid to \(file) within \(timeout) s" }
    }

    /// True once `pid` no longer exists (killed and reaped).
    private func waitUntilGone(_ pid: pid_t, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if kill(pid, 0) != 0 && errno == ESRCH { return true }
            usleep(50_000)
        }
        return false
    }
}

/// `muxcat connect` stands in for repeaterd, so its link socket must be tuned as repeaterd's is.
final class ConnectSocketTests: XCTestCase {
    func testConnectDialsWithTheLinkSocketOptionsOfRepeaterd() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = try XCTUnwrap(server.localAddress?.port)
        let connector = MuxCatConnector(
            configuration: .init(address: .tcp(host: "127.0.0.1", port: port)), eventLoop: group.next(),
            logger: Logger(label: "test"))
        let link = try await connector.connect(to: .socket(try SocketAddress(ipAddress: "127.0.0.1", port: port)), capture: nil)

        // Read back from the kernel (getsockopt), not from NIO's memory of what was asked.
        let notSentLowWatermark = try await link.getOption(LinkSocketTuning.notSentLowWatermarkOption).get()
        XCTAssertEqual(Int(notSentLowWatermark), LinkSocketTuning.notSentLowWatermark)
        let noDelay = try await link.getOption(.tcpOption(.tcp_nodelay)).get()
        XCTAssertNotEqual(noDelay, 0)
        let waterMark = try await link.getOption(.writeBufferWaterMark).get()
        XCTAssertEqual(waterMark.high, LinkSocketTuning.writeBufferWaterMark.high)
        XCTAssertEqual(waterMark.low, LinkSocketTuning.writeBufferWaterMark.low)

        try await link.close()
        try await server.close()
        try await group.shutdownGracefully()
    }
}
