import JSONText
import NIOCore
import NIOHTTP1
import YamuxLink

/// Whether a daemon should get traffic now, and if not, why (one line, for a balancer's log).
public enum Readiness: Sendable, Equatable {
    case ready
    case notReady(reason: String)
}

/// What the admin endpoint answers to one request: decided here, without I/O, so every route,
/// status and header is tested alone.
///
/// - `GET /healthz`: 200 while the process runs (it answered).
/// - `GET /readyz`: 200, or 503 with the daemon's one-line reason.
/// - `GET /metrics`: Prometheus text exposition (version 0.0.4).
/// - `GET /status`: the live status page (one HTML document, its CSS and script inline), and
///   `GET /status.json`, what it draws: the daemon's own part (`status`) with the time, the
///   uptime and the process's descriptors. Only when the daemon gives a `status`.
/// - `HEAD` of any of them: the same status and headers, no body.
/// - another path: 404; another method on a known path: 405 with `Allow: GET, HEAD`.
public struct AdminRoutes: Sendable {
    public struct Response: Sendable, Equatable {
        public var status: HTTPResponseStatus
        public var headers: [(String, String)]
        public var body: [UInt8]

        public static func == (lhs: Response, rhs: Response) -> Bool {
            lhs.status == rhs.status && lhs.body == rhs.body
                && lhs.headers.map { "\($0.0): \($0.1)" } == rhs.headers.map { "\($0.0): \($0.1)" }
        }

        static func text(_ status: HTTPResponseStatus, _ line: String, extraHeaders: [(String, String)] = []) -> Response {
            Response(
                status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + extraHeaders,
                body: Array((line + "\n").utf8))
        }
    }

    /// Read at each `/readyz`.
    public var readiness: @Sendable () -> Readiness
    /// Read at each `/metrics`: the exposition text.
    public var metrics: @Sendable () -> [UInt8]
    /// Asked at each `/status.json`: the daemon's part of the document (an object).
    public var status: (@Sendable () -> EventLoopFuture<JSONValue>)?

    public init(
        readiness: @escaping @Sendable () -> Readiness, metrics: @escaping @Sendable () -> [UInt8],
        status: (@Sendable () -> EventLoopFuture<JSONValue>)? = nil
    ) {
        self.readiness = readiness
        self.metrics = metrics
        self.status = status
    }

    public static let jsonContentType = "application/json"

    private var paths: [String] {
        status == nil ? ["/healthz", "/readyz", "/metrics"] : ["/healthz", "/readyz", "/metrics", "/status", "/status.json"]
    }

    /// The answer to any request, `/status.json` included (which waits for the daemon's loops).
    public func respond(method: HTTPMethod, uri: String, on eventLoop: any EventLoop) -> EventLoopFuture<Response> {
        guard let status, Self.path(of: uri) == "/status.json", method == .GET || method == .HEAD else {
            return eventLoop.makeSucceededFuture(respond(method: method, uri: uri))
        }
        return status().map { document in
            Self.headOnly(method, Self.statusDocument(document, process: ProcessMetrics.read(), now: WallClock.secondsSinceEpoch()))
        }.recover { error in
            .text(.internalServerError, "cannot gather the status: \(error)")
        }.hop(to: eventLoop)
    }

    /// `/status.json`: the time, the uptime and the process's descriptors, then the daemon's part.
    static func statusDocument(_ daemon: JSONValue, process: ProcessMetrics?, now: Double) -> Response {
        let seconds = Int(now.rounded(.down))
        var members: [JSONValue.Member] = [
            .init("time", .string(JSONText.rfc3339(secondsSinceEpoch: seconds, microseconds: Int((now - Double(seconds)) * 1e6)))),
            .init("uptime_seconds", .optional(process, { .double(max(0, now - $0.startTimeSeconds)) })),
            .init(
                "process",
                .object([
                    "descriptors": .optional(process, { .int($0.openDescriptors) }),
                    "max_descriptors": .optional(process, { .int($0.maximumDescriptors) }),
                    "resident_bytes": .optional(process, { .int($0.residentBytes) }),
                ])),
        ]
        if case .object(let own) = daemon { members += own } else { members.append(.init("daemon", daemon)) }
        return Response(
            status: .ok, headers: [("Content-Type", jsonContentType), ("Cache-Control", "no-store")],
            body: Array(JSONValue.object(members: members).text.utf8))
    }

    private static func path(of uri: String) -> String {
        // The query string does not select anything here (Prometheus may add ?name[]=…).
        uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
    }

    private static func headOnly(_ method: HTTPMethod, _ response: Response) -> Response {
        guard method == .HEAD else { return response }
        var head = response
        head.headers.append(("Content-Length", "\(response.body.count)"))
        head.body = []
        return head
    }

    public static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

    public func respond(method: HTTPMethod, uri: String) -> Response {
        let path = Self.path(of: uri)
        guard paths.contains(path) else {
            return .text(.notFound, "no such endpoint \(path); try \(paths.dropLast().joined(separator: ", ")) or \(paths.last!)")
        }
        guard method == .GET || method == .HEAD else {
            return .text(.methodNotAllowed, "method \(method.rawValue) not allowed; use GET", extraHeaders: [("Allow", "GET, HEAD")])
        }
        return Self.headOnly(method, self.respondToGet(path))
    }

    private func respondToGet(_ path: String) -> Response {
        switch path {
        case "/healthz":
            return .text(.ok, "ok")
        case "/readyz":
            switch self.readiness() {
            case .ready: return .text(.ok, "ready")
            case .notReady(let reason): return .text(.serviceUnavailable, reason)
            }
        case "/status":
            return Response(
                status: .ok, headers: [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")],
                body: Array(StatusPage.html.utf8))
        case "/status.json":
            // Answered by `respond(method:uri:on:)`, which waits for the daemon's loops.
            return .text(.internalServerError, "/status.json is answered asynchronously")
        default:
            return Response(status: .ok, headers: [("Content-Type", Self.prometheusContentType)], body: self.metrics())
        }
    }
}
