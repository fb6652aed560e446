import Foundation
import Glibc
import NIOCore
import NIOPosix
import SystemErrorText
import SystemPackage
import XCTest

/// The words a user reads for system errors: NIO's own texts are for developers.
final class SystemErrorTextTests: XCTestCase {
    func testErrnoReadsMidSentence() {
        XCTAssertEqual(SystemErrorText.errnoText(ECONNREFUSED), "connection refused")
        XCTAssertEqual(SystemErrorText.describe(IOError(errnoCode: ECONNREFUSED, reason: "connect")), "connection refused")
        XCTAssertEqual(SystemErrorText.describe(ChannelError.connectTimeout(.seconds(5))), "timed out after 5 s")
        XCTAssertEqual(SystemErrorText.describe(ChannelError.connectTimeout(.milliseconds(1500))), "timed out after 1.5 s")
        // swift-system's errors (`writeAll`, `read(into:)`) read the same.
        XCTAssertEqual(SystemErrorText.describe(Errno.noSpace), "no space left on device")
        XCTAssertThrowsError(try FileDescriptor(rawValue: -1).writeAll([1, 2, 3])) { error in
            XCTAssertEqual(SystemErrorText.describe(error), "bad file descriptor")
        }
    }

    /// A real refused connect, as NIO reports it (a NIOConnectionError with one attempt).
    func testARealRefusedConnectReadsConnectionRefused() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        // A port that was just free: bound, closed, then dialed.
        let listener = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = listener.localAddress!.port!
        try listener.close().wait()
        XCTAssertThrowsError(try ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).wait()) { error in
            XCTAssertEqual(SystemErrorText.describe(error), "connection refused", "\(error)")
        }
    }

    func testABindNamesTheDirectoryNIOLeavesOut() {
        let missing = IOError(errnoCode: ENOENT, reason: "bind")
        XCTAssertEqual(SystemErrorText.describeBind(missing, unixPath: "/run/nowhere/x.sock"), "no such directory /run/nowhere")
        XCTAssertEqual(
            SystemErrorText.describeBind(IOError(errnoCode: EADDRINUSE, reason: "bind"), unixPath: nil),
            "address already in use (another process listens there)")
    }

    func testWhyAFileCannotBeRead() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("system-error-text-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("readable").path
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        XCTAssertNil(SystemErrorText.whyUnreadable(file))
        XCTAssertEqual(SystemErrorText.whyUnreadable(directory.appendingPathComponent("absent").path), "no such file")
        XCTAssertEqual(SystemErrorText.whyUnreadable(directory.path + "/no/such"), "no such directory \(directory.path)/no")
        XCTAssertEqual(SystemErrorText.whyUnreadable(directory.path), "is a directory, not a file")
    }
}
