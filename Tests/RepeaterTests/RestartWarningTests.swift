import Foundation
import XCTest
import YamuxLink

@testable import Repeater

/// The start-up warning about `net.ipv4.tcp_migrate_req`, read from a file standing in for the
/// kernel's (the real one is global to the machine).
final class RestartWarningTests: XCTestCase {
    private func setting(_ value: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tcp_migrate_req-\(UUID().uuidString)").path
        try value.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testOffWarnsOnTCPAndOnlyThere() throws {
        let off = try setting("0\n")
        let warning = try XCTUnwrap(ExistingListenerProbe.migrationWarning(for: .tcp(host: "127.0.0.1", port: 3011), setting: off))
        XCTAssertTrue(warning.hasPrefix("net.ipv4.tcp_migrate_req is 0: "), warning)
        XCTAssertTrue(warning.contains("sysctl -w net.ipv4.tcp_migrate_req=1"), warning)
        XCTAssertNil(
            ExistingListenerProbe.migrationWarning(for: .unix(path: "/tmp/x.sock"), setting: off), "no SO_REUSEPORT on a Unix socket")
        XCTAssertNil(ExistingListenerProbe.migrationWarning(for: .tcp(host: "127.0.0.1", port: 3011), setting: try setting("1\n")))
        XCTAssertNil(ExistingListenerProbe.migrationWarning(for: .tcp(host: "127.0.0.1", port: 3011), setting: "/nonexistent/knob"))
    }
}
