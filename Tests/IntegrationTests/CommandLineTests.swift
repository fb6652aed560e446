import Foundation
import NIOCore
import NIOPosix
import ProcessTestSupport
import XCTest

/// The two executables as a user runs them: exit codes, one-line errors,
/// graceful shutdown by request and by SIGTERM.
final class CommandLineTests: XCTestCase {
    private let certs = TestCertificates.shared

    /// Built by `swift build`; a missing one fails the test, saying how to build it.
    private func executable(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try Binaries.path(name, file: file, line: line)
    }

    private func freePort() throws -> Int {
        let group = MultiThreadedEventLoopGroup.singleton
        let channel = try ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress!.port!
        try channel.close().wait()
        return port
    }

    /// Starts runtime-manager --direct and waits until it accepts connections.
    private func startRuntimeManager(port: Int) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try self.executable("runtime-manager"))
        process.arguments = [
            "--direct", "127.0.0.1:\(port)", "--listen", "127.0.0.1:0", "--cert", self.certs.path("runtime-manager.pem"),
            "--key", self.certs.path("runtime-manager.key"), "--client-ca", self.certs.path("ca.pem"),
            "--policy", self.certs.path("policy.json"),
        ]
        let log = Pipe()
        process.standardError = log
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let socket = try? ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).wait()
            if let socket {
                try? socket.close().wait()
                return (process, log)
            }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.terminate()
        let output = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTFail("runtime-manager did not start listening:\n\(output)")
        throw NotStarted()
    }

    private struct NotStarted: Error {}

    private func client(_ who: String, port: Int, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProcess(
            try self.executable("runtime-client"),
            [
                arguments[0], "--connect", "127.0.0.1:\(port)", "--cert", self.certs.path("\(who).pem"),
                "--key", self.certs.path("\(who).key"), "--ca", self.certs.path("ca.pem"), "--quiet",
            ]
                + arguments.dropFirst()
        )
    }

    private func waitForExit(_ process: Process, seconds: Double = 15) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return !process.isRunning
    }

    func testPutGetHashAndAuthorizedShutdownThroughTheExecutables() throws {
        let port = try self.freePort()
        let (manager, log) = try self.startRuntimeManager(port: port)
        defer { if manager.isRunning { manager.terminate() } }

        let local = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)").path
        let back = local + ".back"
        defer {
            try? FileManager.default.removeItem(atPath: local)
            try? FileManager.default.removeItem(atPath: back)
        }
        try patternedData(count: 10 * 1024 * 1024 + 3, seed: 9).write(to: URL(fileURLWithPath: local))

        var result = try self.client("client", port: port, ["put", local, "data/file.bin"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "", "--quiet and success print nothing on stderr")
        result = try self.client("reader", port: port, ["get", "data/file.bin", back])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try sha256sum(back), try sha256sum(local))
        result = try self.client("reader", port: port, ["hash", "data/file.bin"])
        XCTAssertEqual(result.stdout, try sha256sum(local) + "  data/file.bin\n")
        result = try self.client("reader", port: port, ["policy-hash"])
        XCTAssertEqual(result.stdout, try sha256sum(self.certs.path("policy.json")) + "\n")
        result = try self.client("reader", port: port, ["get", "data/file.bin", "-"])
        XCTAssertEqual(result.stdout.utf8.count > 0, true)

        // Failures: the exit status of their class and exactly one line saying what happened.
        for (who, arguments, needle, status) in [
            ("reader", ["put", local, "x"], "FAILED_INVALID_ROLE", Int32(77)),
            ("reader", ["get", "missing"], "no file named \"missing\"", 1),
            ("client", ["put", "/nonexistent/file", "x"], "/nonexistent/file: no such directory /nonexistent", 66),
            ("client", ["put", local + ".missing", "x"], "\(local).missing: no such file", 66),
            ("reader", ["shutdown"], "FAILED_INVALID_ROLE", 77),
        ] {
            result = try self.client(who, port: port, arguments)
            XCTAssertEqual(result.status, status, "\(arguments)")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.hasPrefix("runtime-client: "), result.stderr)
            XCTAssertTrue(result.stderr.contains(needle), "\(arguments): \(result.stderr)")
        }

        // The client's message limit bounds what it holds, not the file of a get, which goes to
        // disk as it arrives (issue 42): a file over the limit is fetched whole.
        try? FileManager.default.removeItem(atPath: back)
        result = try self.client("reader", port: port, ["get", "--max-message-bytes", "1048576", "data/file.bin", back])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: back), FileManager.default.contents(atPath: local))

        result = try self.client("client", port: port, ["shutdown"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(self.waitForExit(manager), "runtime-manager should exit after an authorized shutdown")
        XCTAssertEqual(manager.terminationStatus, 0)
        let output = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(output.contains("shutting down at the request of CN=client"), output)

        result = try self.client("client", port: port, ["policy-hash"])
        XCTAssertEqual(result.status, 69, "unreachable: EX_UNAVAILABLE")
        XCTAssertTrue(result.stderr.contains("cannot connect to 127.0.0.1:\(port): connection refused"), result.stderr)
    }

    func testSIGTERMStopsTheRuntimeManagerGracefully() throws {
        let port = try self.freePort()
        let (manager, log) = try self.startRuntimeManager(port: port)
        manager.terminate()  // SIGTERM
        XCTAssertTrue(self.waitForExit(manager), "runtime-manager should exit on SIGTERM")
        XCTAssertEqual(manager.terminationStatus, 0)
        let output = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(output.contains("runtime manager stopped"), output)
    }

    /// README: "`--server-name NAME` also checks the runtime manager's certificate against NAME".
    func testAServerNameNotInTheCertificateFailsWithOneClearLine() throws {
        let port = try self.freePort()
        let (manager, _) = try self.startRuntimeManager(port: port)
        defer { if manager.isRunning { manager.terminate() } }

        let wrong = try self.client("client", port: port, ["policy-hash", "--server-name", "evil.example.com"])
        XCTAssertEqual(wrong.status, 78, "an identity failure: EX_CONFIG")
        XCTAssertEqual(
            wrong.stderr.split(separator: "\n").first.map(String.init),
            "runtime-client: the runtime manager's certificate is not for \"evil.example.com\" (it names localhost, "
                + "127.0.0.1, 0:0:0:0:0:0:0:1); pass one of those to --server-name, or leave it out to check only the CA (--ca)"
        )
        let right = try self.client("client", port: port, ["policy-hash", "--server-name", "localhost"])
        XCTAssertEqual(right.status, 0, right.stderr)
    }

    func testBadStartupFilesAreOneClearLine() throws {
        let result = try runProcess(
            try self.executable("runtime-manager"),
            [
                "--direct", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--cert", self.certs.path("runtime-manager.pem"),
                "--key", self.certs.path("runtime-manager.key"), "--client-ca", self.certs.path("ca.pem"),
                "--policy", "/nonexistent/policy.json",
            ]
        )
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("cannot read policy file /nonexistent/policy.json"), result.stderr)
    }
}
