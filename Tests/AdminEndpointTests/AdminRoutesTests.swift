import AdminEndpoint
import JSONText
import NIOCore
import NIOHTTP1
import NIOPosix
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

    // MARK: The status page

    private static let loop = MultiThreadedEventLoopGroup.singleton.next()

    private func routesWithStatus(_ document: JSONValue) -> AdminRoutes {
        AdminRoutes(readiness: { .ready }, metrics: { [] }, status: { Self.loop.makeSucceededFuture(document) })
    }

    func testTheStatusPageIsOneSelfContainedHTMLDocument() {
        let response = self.routesWithStatus(.object([:])).respond(method: .GET, uri: "/status")
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.headers.first { $0.0 == "Content-Type" }?.1, "text/html; charset=utf-8")
        let page = self.text(response)
        XCTAssertTrue(page.hasPrefix("<!doctype html>"))
        XCTAssertTrue(page.contains("fetch(\"/status.json\""), "it draws from /status.json")
        XCTAssertTrue(page.contains("visibilitychange"), "and stops polling while the tab is hidden")
        for outside in ["http://", "https://", "//cdn", "<link ", "src="] where outside != "http://" {
            XCTAssertFalse(page.contains(outside), "nothing from outside the endpoint: \(outside)")
        }
        // The one http:// is SVG's namespace name, which is never fetched.
        XCTAssertEqual(page.components(separatedBy: "http://").count - 1, 1)
        XCTAssertTrue(page.contains("http://www.w3.org/2000/svg"))
    }

    func testStatusJSONIsTheDaemonsPartAfterTimeUptimeAndDescriptors() throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let routes = self.routesWithStatus(.object(["daemon": .string("repeaterd"), "links": .array([])]))
        let response = try routes.respond(method: .GET, uri: "/status.json", on: loop).wait()
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.headers.first { $0.0 == "Content-Type" }?.1, "application/json")
        let text = self.text(response)
        XCTAssertTrue(text.hasPrefix(#"{"time":""#), text)
        XCTAssertTrue(text.contains(#""process":{"descriptors":"#), text)
        XCTAssertTrue(text.hasSuffix(#""daemon":"repeaterd","links":[]}"#), text)
        let head = try routes.respond(method: .HEAD, uri: "/status.json", on: loop).wait()
        XCTAssertEqual(head.body, [])
        // Its own answer's length (the time and the uptime in it differ from the GET's by a digit or two).
        XCTAssertNotNil(Int(head.headers.first { $0.0 == "Content-Length" }?.1 ?? ""))
    }

    func testWithoutAStatusTheStatusPathsAreUnknown() throws {
        XCTAssertEqual(self.routes().respond(method: .GET, uri: "/status").status, .notFound)
        XCTAssertEqual(try self.routes().respond(method: .GET, uri: "/status.json", on: Self.loop).wait().status, .notFound)
        let listed = self.text(self.routesWithStatus(.object([:])).respond(method: .GET, uri: "/nope"))
        XCTAssertEqual(listed, "no such endpoint /nope; try /healthz, /readyz, /metrics, /status or /status.json\n")
    }

    func testAStatusThatFailsIsA500NotAHang() throws {
        struct Gone: Error {}
        let routes = AdminRoutes(readiness: { .ready }, metrics: { [] }, status: { Self.loop.makeFailedFuture(Gone()) })
        XCTAssertEqual(try routes.respond(method: .GET, uri: "/status.json", on: Self.loop).wait().status, .internalServerError)
    }
}
