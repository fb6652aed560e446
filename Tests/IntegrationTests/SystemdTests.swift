import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// dist/systemd's units as systemd reads them, the command lines they run, and the daemons'
/// side of `Type=notify`: READY=1 only when a client can be served, STOPPING=1 on SIGTERM.
/// (systemd is not PID 1 on these machines: the units are checked by systemd-analyze and their
/// command lines run by hand, with `$NOTIFY_SOCKET` read by the test.)
final class SystemdTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    private static let units = ["repeaterd", "runtime-manager"]
    private static var unitDirectory: URL { repositoryRoot.appendingPathComponent("dist/systemd") }

    /// The unit with its `/usr/bin/` programs replaced by the ones just built (verify checks that
    /// ExecStart's program exists and is executable).
    private func installedCopy(of unit: String) throws -> String {
        let text = try String(contentsOf: Self.unitDirectory.appendingPathComponent("\(unit).service"), encoding: .utf8)
        let path = deployment.sandbox.temporaryFile("\(unit).service")
        try text.replacingOccurrences(of: "/usr/bin/", with: Binaries.directory.path + "/").write(
            toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testBothUnitsPassSystemdAnalyzeVerifyAndAreConfined() throws {
        let analyze = try Binaries.system("systemd-analyze", package: "systemd")
        // Beside the services, as installed: repeaterd.service requires it.
        let socketUnit = deployment.sandbox.temporaryFile("repeaterd.socket")
        try FileManager.default.copyItem(atPath: Self.unitDirectory.appendingPathComponent("repeaterd.socket").path, toPath: socketUnit)
        for unit in Self.units {
            let path = try installedCopy(of: unit)
            // --man=no: the Documentation= man pages come with the package, not with a build tree.
            let verify = try runProcess(analyze, ["verify", "--man=no", path])
            XCTAssertEqual(verify.status, 0, "\(unit): \(verify.stderr)")
            XCTAssertEqual(verify.stderr.trimmingCharacters(in: .whitespacesAndNewlines), "", "\(unit): no warning either")

            let security = try runProcess(analyze, ["security", "--offline=true", path])
            let overall = try XCTUnwrap(
                security.stdout.components(separatedBy: "\n").first { $0.contains("Overall exposure level") },
                security.stdout + security.stderr)
            print("\(unit): \(overall.trimmingCharacters(in: .whitespaces))")
            let score = try XCTUnwrap(Double(overall.components(separatedBy: ": ").last?.split(separator: " ").first ?? ""), overall)
            XCTAssertLessThanOrEqual(score, 2.0, "\(unit): systemd's exposure score (0 best, 10 worst) stays 'OK'")

            let text = try String(contentsOfFile: path, encoding: .utf8)
            for setting in [
                "Type=notify", "DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                "CapabilityBoundingSet=\n", "LimitNOFILE=65536", "Restart=on-failure", "EnvironmentFile=-/etc/default/\(unit)",
            ] {
                XCTAssertTrue(text.contains(setting), "\(unit) sets \(setting)")
            }
        }
        // The client socket systemd holds for repeaterd (socket activation), verified with its service.
        let verifySocket = try runProcess(analyze, ["verify", "--man=no", try installedCopy(of: "repeaterd"), socketUnit])
        XCTAssertEqual(verifySocket.status, 0, verifySocket.stderr)
        XCTAssertEqual(verifySocket.stderr.trimmingCharacters(in: .whitespacesAndNewlines), "", "repeaterd.socket: no warning either")
        let socketText = try String(contentsOfFile: socketUnit, encoding: .utf8)
        for setting in ["ListenStream=0.0.0.0:3011", "FileDescriptorName=client", "Backlog=4096", "NoDelay=true"] {
            XCTAssertTrue(socketText.contains(setting), "repeaterd.socket sets \(setting)")
        }
        let repeaterUnit = try String(contentsOfFile: try installedCopy(of: "repeaterd"), encoding: .utf8)
        // repeaterd's defaults: --drain-grace 4 (with --admin, which the shipped options set) + --drain-timeout 30.
        let stopTimeout = try XCTUnwrap(Self.setting("TimeoutStopSec", in: repeaterUnit).flatMap { Int($0.dropLast()) })
        XCTAssertGreaterThan(stopTimeout, 4 + 30, "systemd waits out a whole drain before SIGKILL")
        XCTAssertTrue(
            try String(contentsOfFile: try installedCopy(of: "runtime-manager"), encoding: .utf8).contains("StateDirectory=runtime-manager")
        )
        XCTAssertTrue(repeaterUnit.contains("Requires=repeaterd.socket") && repeaterUnit.contains("After=repeaterd.socket"))
    }

    /// `2026-12-03T12:20:36.123456Z` (what `--log-format json` writes) as a date.
    private static func date(rfc3339 text: String) -> Date? {
        let numbers = text.split(whereSeparator: { "-T:.Z".contains($0) }).compactMap { Int($0) }
        guard numbers.count == 7 else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let whole = calendar.date(
            from: DateComponents(
                year: numbers[0], month: numbers[1], day: numbers[2], hour: numbers[3], minute: numbers[4], second: numbers[5]))
        return whole?.addingTimeInterval(Double(numbers[6]) / 1_000_000)
    }

    /// `KEY=value` of a unit (the first).
    private static func setting(_ key: String, in unit: String) -> String? {
        unit.components(separatedBy: "\n").first { $0.hasPrefix("\(key)=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    /// The unit's ExecStart as an argument list: `%d` (the credentials directory) is `credentials`,
    /// `$VAR` the words of VAR in the unit's environment file from dist/systemd/NAME.default, as
    /// systemd splits an unbraced variable.
    private func commandLine(of unit: String, credentials: String) throws -> [String] {
        let text = try String(contentsOfFile: try installedCopy(of: unit), encoding: .utf8)
        let defaults = try String(contentsOf: Self.unitDirectory.appendingPathComponent("\(unit).default"), encoding: .utf8)
        var variables: [String: String] = [:]
        for line in defaults.components(separatedBy: "\n") where !line.hasPrefix("#") && line.contains("=") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            variables[parts[0]] = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        let execStart = try XCTUnwrap(Self.setting("ExecStart", in: text))
        return execStart.split(separator: " ").flatMap { word -> [String] in
            if word.hasPrefix("$") { return (variables[String(word.dropFirst())] ?? "").split(separator: " ").map(String.init) }
            return [word.replacingOccurrences(of: "%d", with: credentials)]
        }
    }

    /// Both units' command lines with their shipped options, ports moved to free ones (a later
    /// option wins) and `$NOTIFY_SOCKET` read by the test: repeaterd says READY=1 only once its
    /// link is up (not while the runtime manager is not there yet), runtime-manager once it
    /// listens; a client is served right after READY=1; SIGTERM brings STOPPING=1 and exit 0.
    func testReadyOnlyOnceALinkIsUpAndStoppingOnSIGTERMWithTheUnitsCommandLines() throws {
        let linkPort = freePort()
        let clientPort = freePort()
        let repeaterNotify = try NotifySocketListener(directory: deployment.sandbox.directory, abstract: true)
        let managerNotify = try NotifySocketListener(directory: deployment.sandbox.directory, abstract: false)

        let repeaterCommand = try commandLine(of: "repeaterd", credentials: "")
        let repeater = try deployment.sandbox.start(
            repeaterCommand[0],
            Array(repeaterCommand.dropFirst()) + [
                "--listen", "127.0.0.1:\(clientPort)", "--backend", "127.0.0.1:\(linkPort)", "--admin", "127.0.0.1:0", "--drain-grace", "0",
            ],
            name: "repeaterd", environment: ["NOTIFY_SOCKET": repeaterNotify.address])
        repeater.waitFor("repeater listening", onStderr: true)
        var repeaterMessages: [String] = []
        XCTAssertNil(
            repeaterNotify.receive(containing: "READY=1", timeout: 1.5, seen: &repeaterMessages),
            "not ready while the runtime manager is not there: \(repeaterMessages)")
        XCTAssertTrue(repeaterMessages.contains { $0.hasPrefix("STATUS=") && $0.contains("dialing") }, "\(repeaterMessages)")

        let managerCommand = try commandLine(of: "runtime-manager", credentials: Certificates.directory)
        let manager = try deployment.sandbox.start(
            managerCommand[0], Array(managerCommand.dropFirst()) + ["--listen", "127.0.0.1:\(linkPort)", "--admin", "127.0.0.1:0"],
            name: "runtime-manager", environment: ["NOTIFY_SOCKET": managerNotify.address])
        var managerMessages: [String] = []
        let managerReady = try XCTUnwrap(
            managerNotify.receive(containing: "READY=1", timeout: 20, seen: &managerMessages), manager.stderr.text)
        XCTAssertTrue(managerReady.message.contains("links on 127.0.0.1:\(linkPort)"), managerReady.message)

        let repeaterReady = try XCTUnwrap(
            repeaterNotify.receive(containing: "READY=1", timeout: 20, seen: &repeaterMessages), repeater.stderr.text)
        XCTAssertGreaterThanOrEqual(repeaterReady.at, managerReady.at)
        XCTAssertTrue(repeaterReady.message.contains("link to 127.0.0.1:\(linkPort) up"), repeaterReady.message)
        // The shipped options log JSON: the link's own line carries the time it came up.
        XCTAssertTrue(repeater.waitFor("\"msg\":\"link up\"", onStderr: true, timeout: 5))
        let linkUpLine = try XCTUnwrap(repeater.stderr.text.split(separator: "\n").first { $0.contains("\"msg\":\"link up\"") })
        let linkUpFields = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(linkUpLine.utf8)) as? [String: Any])
        let linkUpAt = try XCTUnwrap(Self.date(rfc3339: linkUpFields["ts"] as? String ?? ""), "\(linkUpLine)")
        XCTAssertLessThanOrEqual(linkUpAt, repeaterReady.at, "the link was up before READY=1 was received")
        let served = try deployment.runClient(port: clientPort, ["policy-hash"])
        XCTAssertEqual(served.status, 0, "served right after READY=1: \(served.stderr)")

        repeater.signal(SIGTERM)
        let stopping = try XCTUnwrap(repeaterNotify.receive(containing: "STOPPING=1", timeout: 10, seen: &repeaterMessages))
        XCTAssertTrue(stopping.message.contains("EXTEND_TIMEOUT_USEC=40000000"), "0 s grace + 30 s drain + 10 s: \(stopping.message)")
        XCTAssertEqual(repeater.waitForExit(), 0, repeater.stderr.text)

        manager.signal(SIGTERM)
        XCTAssertNotNil(managerNotify.receive(containing: "STOPPING=1", timeout: 10, seen: &managerMessages))
        XCTAssertEqual(manager.waitForExit(), 0, manager.stderr.text)
        XCTAssertEqual(repeaterMessages.filter { $0.contains("READY=1") }.count, 1)
    }
}
