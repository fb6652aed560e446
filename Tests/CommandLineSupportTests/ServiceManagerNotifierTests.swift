import CommandLineSupport
import Foundation
import Logging
import ProcessTestSupport
import XCTest

/// systemd's readiness protocol over a real Unix datagram socket, by path and in the abstract
/// namespace, as `$NOTIFY_SOCKET` names it.
final class ServiceManagerNotifierTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: directory) }

    func testAddressesByPathAndAbstractNameAndTheOnesRefused() throws {
        XCTAssertEqual(try NotifySocketAddress(parsing: "/run/systemd/notify").pathBytes, Array("/run/systemd/notify".utf8))
        XCTAssertEqual(try NotifySocketAddress(parsing: "@sd-notify").pathBytes, [0] + Array("sd-notify".utf8))
        for bad in ["relative/path", "@", "/", "vsock:2:9999", String(repeating: "/x", count: 60)] {
            XCTAssertThrowsError(try NotifySocketAddress(parsing: bad), bad) { error in
                XCTAssertTrue("\(error)".contains("not notifying the service manager"), "\(error)")
            }
        }
    }

    func testReadyOnceThenStoppingOverAPathSocket() throws {
        try checkReadyAndStopping(abstract: false)
    }

    func testReadyOnceThenStoppingOverAnAbstractSocket() throws {
        try checkReadyAndStopping(abstract: true)
    }

    private func checkReadyAndStopping(abstract: Bool) throws {
        let listener = try NotifySocketListener(directory: directory, abstract: abstract)
        let notifier = ServiceManagerNotifier(environment: ["NOTIFY_SOCKET": listener.address], logger: Logger(label: "test"))
        XCTAssertTrue(notifier.isActive)
        notifier.ready(status: "listening on unix:/tmp/a\nb")
        notifier.ready(status: "again")
        notifier.stopping(status: "draining", expectedDuration: 44_000_000)
        notifier.stopping(status: "again")
        XCTAssertEqual(listener.receive(timeout: 5), "READY=1\nSTATUS=listening on unix:/tmp/a b")
        XCTAssertEqual(listener.receive(timeout: 5), "STOPPING=1\nSTATUS=draining\nEXTEND_TIMEOUT_USEC=44000000")
        XCTAssertNil(listener.receive(timeout: 0.2), "READY=1 and STOPPING=1 are sent once each")
    }

    func testNoReadyAfterStopping() throws {
        let listener = try NotifySocketListener(directory: directory, abstract: true)
        let notifier = ServiceManagerNotifier(environment: ["NOTIFY_SOCKET": listener.address], logger: Logger(label: "test"))
        notifier.stopping(status: "stopping before the link came up")
        notifier.ready(status: "link up, too late")
        XCTAssertEqual(listener.receive(timeout: 5), "STOPPING=1\nSTATUS=stopping before the link came up")
        XCTAssertNil(listener.receive(timeout: 0.2))
    }

    func testInertWithoutNotifySocketAndWhenNobodyListens() {
        XCTAssertFalse(ServiceManagerNotifier(environment: [:], logger: Logger(label: "test")).isActive)
        // A socket nobody bound: the daemon goes on (one warning), it does not fail.
        let gone = ServiceManagerNotifier(
            environment: ["NOTIFY_SOCKET": directory.appendingPathComponent("nobody").path], logger: Logger(label: "test"))
        gone.ready(status: "x")
        XCTAssertEqual(
            try NotifySocketAddress(parsing: directory.appendingPathComponent("nobody").path).send("READY=1"),
            "no such file or directory")
    }
}
