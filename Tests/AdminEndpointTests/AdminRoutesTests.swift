import AdminEndpoint
import NIOHTTP1
import XCTest

/// Every route, status and header of the admin endpoint, without a socket.
final class AdminRoutesTests: XCTestCase {
    private func routes(_ readiness: Readiness = .ready, metrics: String = "m_total 1\n") -> AdminRoutes {
        AdminRoutes(readiness: { readiness }, metrics: { Array(metrics.utf8) })
    }

    private func text(_ response: AdminRoutes.Response) -> String { String(decoding: response.body, as: UTF8.self) }

    func testHealthzIsOKWhileTheProcessAnswers() {
        let response = self.routes(.notReady(reason: "draining")).respond(method: .GET, uri: "/healthz")
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(self.text(response), "ok\n")
    }

    func testReadyzSaysWhyItIsNotReady() {
        XCTAssertEqual(self.routes().respond(method: .GET, uri: "/readyz").status, .ok)
        let down = self.routes(.notReady(reason: "no link to 127.0.0.1:6000: connection refused"))
            .respond(method: .GET, uri: "/readyz")
        XCTAssertEqual(down.status, .serviceUnavailable)
        XCTAssertEqual(self.text(down), "no link to 127.0.0.1:6000: connection refused\n")
    }

    func testMetricsAreThePrometheusTextWithItsContentType() {
        let response = self.routes(metrics: "repeater_links_up 1\n").respond(method: .GET, uri: "/metrics?name[]=x")
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(self.text(response), "repeater_links_up 1\n")
        XCTAssertEqual(response.headers.first { $0.0 == "Content-Type" }?.1, "text/plain; version=0.0.4; charset=utf-8")
    }

    func testHeadHasTheStatusAndLengthButNoBody() {
        let response = self.routes(.notReady(reason: "draining")).respond(method: .HEAD, uri: "/readyz")
        XCTAssertEqual(response.status, .serviceUnavailable)
        XCTAssertEqual(response.body, [])
        XCTAssertEqual(response.headers.first { $0.0 == "Content-Length" }?.1, "9")
    }

    func testUnknownPathsAre404AndOtherMethods405() {
        let missing = self.routes().respond(method: .GET, uri: "/admin")
        XCTAssertEqual(missing.status, .notFound)
        XCTAssertEqual(self.text(missing), "no such endpoint /admin; try /healthz, /readyz or /metrics\n")
        for method in [HTTPMethod.POST, .PUT, .DELETE] {
            let refused = self.routes().respond(method: method, uri: "/metrics")
            XCTAssertEqual(refused.status, .methodNotAllowed)
            XCTAssertEqual(refused.headers.first { $0.0 == "Allow" }?.1, "GET, HEAD")
        }
    }
}
