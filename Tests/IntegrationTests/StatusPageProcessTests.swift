import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `GET /status.json` (and `/status`) on a real repeaterd: the link as it is, a session with its
/// client's address and growing counts, and the link's fall when its peer goes.
final class StatusPageProcessTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    private func status(_ adminPort: Int) throws -> [String: Any] {
        let answer = try deployment.adminGet(adminPort, "/status.json")
        XCTAssertEqual(answer.status, 200, answer.body)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any], answer.body)
    }

    func testTheStatusShowsTheLinkASessionGrowingAndTheLinkGoingDown() throws {
        let linkPort = freePort()
        let adminPort = freePort()
        let echo = try deployment.sandbox.start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(linkPort)", "--echo", "-v"], name: "muxcat listen --echo")
        XCTAssertTrue(echo.waitFor("listening on", onStderr: true))
        let (_, port) = try deployment.repeaterWithLinkUp(
            backendPort: linkPort, ["--threads", "1", "--max-sessions", "77", "--admin", "127.0.0.1:\(adminPort)"])

        var document = try self.status(adminPort)
        XCTAssertEqual(document["daemon"] as? String, "repeaterd")
        XCTAssertEqual(document["draining"] as? Bool, false)
        XCTAssertEqual((document["limits"] as? [String: Any])?["max_sessions"] as? Int, 77)
        XCTAssertNotNil((document["process"] as? [String: Any])?["descriptors"] as? Int)
        var links = try XCTUnwrap(document["links"] as? [[String: Any]])
        XCTAssertEqual(links.count, 1)
        XCTAssertEqual(links[0]["state"] as? String, "up")
        XCTAssertEqual(links[0]["peer"] as? String, "127.0.0.1:\(linkPort)")
        XCTAssertEqual((document["events"] as? [[String: Any]])?.last?["event"] as? String, "up")

        let session = try RawSocket.connect(port: port)
        defer { session.close() }
        session.send(Array(repeating: 0x61, count: 1000))
        session.read(timeout: 10) { $0.count >= 1000 }
        XCTAssertTrue(eventually(timeout: 10) { (try? self.status(adminPort)["sessions_total"] as? Int) == 1 })
        document = try self.status(adminPort)
        var sessions = try XCTUnwrap(document["sessions"] as? [[String: Any]])
        XCTAssertEqual(sessions.count, 1)
        XCTAssertEqual(sessions[0]["client"] as? String, "127.0.0.1:\(session.localPort)", "\(sessions[0])")
        XCTAssertEqual(sessions[0]["bytes_in"] as? Int, 1000)
        XCTAssertEqual(sessions[0]["bytes_out"] as? Int, 1000)
        XCTAssertEqual(sessions[0]["link"] as? Int, 0)
        XCTAssertNotNil(sessions[0]["send_window"] as? Int)
        XCTAssertEqual((document["limits"] as? [String: Any])?["sessions"] as? Int, 1)

        session.send(Array(repeating: 0x62, count: 5000))
        session.read(timeout: 10) { $0.count >= 6000 }
        sessions = try XCTUnwrap(self.status(adminPort)["sessions"] as? [[String: Any]])
        XCTAssertEqual(sessions.first?["bytes_in"] as? Int, 6000, "the counts grow with the session")
        XCTAssertGreaterThan(sessions.first?["bytes_per_second"] as? Double ?? 0, 0)

        echo.signal(SIGKILL)
        XCTAssertTrue(
            eventually(timeout: 10) {
                ((try? self.status(adminPort)["links"] as? [[String: Any]])??.first?["state"] as? String) != "up"
            })
        document = try self.status(adminPort)
        links = try XCTUnwrap(document["links"] as? [[String: Any]])
        XCTAssertNotNil(links[0]["last_failure"] as? String)
        XCTAssertEqual((document["events"] as? [[String: Any]])?.last?["event"] as? String, "down")

        let page = try deployment.adminGet(adminPort, "/status")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.body.contains("/status.json"))
    }
}
