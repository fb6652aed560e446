import CoreMetrics
import NIOSSL
import TransportProtocol

/// The runtime manager's counters and histograms, through swift-metrics (a no-op unless the
/// executable bootstraps a backend with `--admin`).
///
/// Every metric object is made once, here, for every label value of its fixed set: a request
/// then bumps one already-made counter (a relaxed atomic in the Prometheus backend) and records
/// one duration, with no lookup, no allocation and no lock.
public struct RuntimeManagerMetrics: Sendable {
    /// `runtime_manager_requests_total{type,result}`'s `type` values, as `RuntimeManagerSession.kind(of:)` names them.
    static let requestTypes = [
        "write_file", "append_file", "read_file", "request_pi_hash", "request_policy_hash", "request_shutdown",
        "request_result", "unknown",
    ]
    /// Its `result` values: the statuses a response can carry, lower-cased.
    static let results = ["success", "failed_invalid_role", "failed_invalid_request", "failed_generic"]
    /// `runtime_manager_tls_handshake_failures_total{reason}`'s values (``handshakeFailureReason(_:)``).
    static let handshakeReasons = [
        "untrusted_client_certificate", "no_client_certificate", "client_distrusts_server", "not_tls", "no_tls13",
        "closed_during_handshake", "timeout", "other",
    ]

    /// Per type, per result; nil where that result cannot happen (`request_result` and an
    /// unknown request are always `failed_invalid_request`), so no series that cannot move is
    /// exported.
    private let requests: [[Counter?]]
    private let durations: [Timer]
    private let handshakeFailures: [Counter]

    public init() {
        self.requests = Self.requestTypes.map { type in
            Self.results.map { result in
                guard Self.canHappen(type: type, result: result) else { return nil }
                return Counter(label: "runtime_manager_requests_total", dimensions: [("type", type), ("result", result)])
            }
        }
        self.durations = Self.requestTypes.map { Timer(label: "runtime_manager_request_seconds", dimensions: [("type", $0)]) }
        self.handshakeFailures = Self.handshakeReasons.map {
            Counter(label: "runtime_manager_tls_handshake_failures_total", dimensions: [("reason", $0)])
        }
    }

    func requestAnswered(type: String, status: ResponseStatus, nanoseconds: Int64) {
        let typeIndex = Self.requestTypes.firstIndex(of: type) ?? Self.requestTypes.count - 1
        self.durations[typeIndex].recordNanoseconds(nanoseconds)
        let result: Int
        switch status {
        case .success: result = 0
        case .failedInvalidRole: result = 1
        case .failedInvalidRequest: result = 2
        case .failedGeneric: result = 3
        default: return  // a status this runtime manager never answers with (protobuf's UNRECOGNIZED)
        }
        self.requests[typeIndex][result]?.increment()
    }

    /// Whether a request of `type` can be answered with `result` (RequestHandler's answers).
    static func canHappen(type: String, result: String) -> Bool {
        switch type {
        case "request_result", "unknown": return result == "failed_invalid_request"
        default: return true
        }
    }

    func handshakeFailed(reason: String) {
        let index = Self.handshakeReasons.firstIndex(of: reason) ?? Self.handshakeReasons.count - 1
        self.handshakeFailures[index].increment()
    }

    /// The label for a failed handshake, from BoringSSL's reason codes (as `describe` explains them).
    static func handshakeFailureReason(_ error: NIOSSLError) -> String {
        let text: String
        if case .handshakeFailed(let inner) = error { text = "\(inner)" } else { text = "\(error)" }
        let reasons = RuntimeManagerSessionHandler.reasonCodes(text)
        if reasons.contains("CERTIFICATE_VERIFY_FAILED") { return "untrusted_client_certificate" }
        if reasons.contains(where: { $0.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || $0.contains("CERTIFICATE_REQUIRED") }) {
            return "no_client_certificate"
        }
        if reasons.contains(where: { $0.contains("ALERT_UNKNOWN_CA") || $0.contains("ALERT_BAD_CERTIFICATE") }) {
            return "client_distrusts_server"
        }
        if reasons.contains(where: { $0.contains("WRONG_VERSION_NUMBER") || $0.contains("HTTP_REQUEST") }) { return "not_tls" }
        if reasons.contains(where: { $0.contains("UNSUPPORTED_PROTOCOL") || $0.contains("NO_SHARED_CIPHER") }) { return "no_tls13" }
        if case .uncleanShutdown = error { return "closed_during_handshake" }
        return "other"
    }
}
