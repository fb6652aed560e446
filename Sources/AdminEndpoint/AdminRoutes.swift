import NIOHTTP1

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

    public init(readiness: @escaping @Sendable () -> Readiness, metrics: @escaping @Sendable () -> [UInt8]) {
        self.readiness = readiness
        self.metrics = metrics
    }

    public static let prometheusContentType = "text/plain; version=0.0.4; charset=utf-8"

    public func respond(method: HTTPMethod, uri: String) -> Response {
        // The query string does not select anything here (Prometheus may add ?name[]=…).
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        let response: Response
        switch path {
        case "/healthz", "/readyz", "/metrics":
            guard method == .GET || method == .HEAD else {
                return .text(.methodNotAllowed, "method \(method.rawValue) not allowed; use GET", extraHeaders: [("Allow", "GET, HEAD")])
            }
            response = self.respondToGet(path)
        default:
            return .text(.notFound, "no such endpoint \(path); try /healthz, /readyz or /metrics")
        }
        guard method == .HEAD else { return response }
        var head = response
        head.headers.append(("Content-Length", "\(response.body.count)"))
        head.body = []
        return head
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
        default:
            return Response(status: .ok, headers: [("Content-Type", Self.prometheusContentType)], body: self.metrics())
        }
    }
}
