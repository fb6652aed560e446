import LegacyRelay
import NIOCore
import NIOPosix
import NIOSSL
import SystemErrorText
import TransportProtocol

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a client operation failed, phrased for the one line the CLI prints.
public enum RuntimeClientError: Error, CustomStringConvertible, Sendable {
    /// Nothing listens at the address.
    case connectionRefused(address: String)
    /// The address could not be reached or resolved.
    case connectFailed(address: String, reason: String)
    /// The TLS handshake or a TLS record failed.
    case tlsFailed(reason: String)
    /// The connection closed before the TLS handshake finished: through the repeater, most often
    /// because its link to the runtime manager is down (it closes the client, having no one to
    /// relay to, and cannot say why on a byte-transparent stream).
    case closedDuringHandshake(address: String, detail: String)
    /// `--server-name` names a host the runtime manager's certificate is not for.
    case serverNameMismatch(expected: String, certificateNames: [String])
    /// The runtime manager answered a request with an error status.
    case requestFailed(request: String, status: ResponseStatus, message: String)
    /// The connection ended while a response was awaited.
    case connectionClosed(address: String)
    /// The connection went away in the middle of the session, without a TLS goodbye.
    case connectionLost(reason: String)
    /// A local file could not be read (missing, unreadable, changed while read).
    case localFile(path: String, reason: String)
    /// A local file could not be written (a get's LOCAL, or stdout).
    case cannotWrite(path: String, reason: String)
    /// Nothing moved for `--timeout` seconds while something was awaited (`phase`).
    case timedOut(address: String, phase: String, seconds: Int)
    /// A client-side setup problem (certificates, keys).
    case setup(String)
    /// The response did not have the shape the request calls for.
    case unexpectedResponse(String)
    /// The old HTTP relay (`--legacy-http`) refused a request or answered nonsense.
    case relayFailed(String)

    public var description: String {
        switch self {
        case .connectionRefused(let address):
            return "cannot connect to \(address): connection refused (is repeaterd or runtime-manager listening there? see --connect)"
        case .connectFailed(let address, let reason):
            return "cannot connect to \(address): \(reason)"
        case .tlsFailed(let reason):
            return "TLS failure: \(reason)"
        case .closedDuringHandshake(let address, let detail):
            return "\(address) closed the connection before TLS finished (\(detail)); through a repeater this usually means "
                + "its link to the runtime manager is down: is runtime-manager running, and does repeaterd's log say why?"
        case .serverNameMismatch(let expected, let names):
            let named = names.isEmpty ? "no DNS or IP names" : names.joined(separator: ", ")
            return "the runtime manager's certificate is not for \"\(expected)\" (it names \(named)); "
                + "pass one of those to --server-name, or leave it out to check only the CA (--ca)"
        case .requestFailed(let request, let status, let message):
            return "\(request) failed: \(status.protocolName): \(message)"
        case .connectionLost(let reason):
            return reason
        case .connectionClosed(let address):
            return "the connection to \(address) closed before the runtime manager answered "
                + "(it may have rejected this client's certificate or stopped; see its log)"
        case .localFile(let path, let reason):
            return "\(path): \(reason)"
        case .cannotWrite(let path, let reason):
            return "\(path): cannot write: \(reason)"
        case .timedOut(let address, let phase, let seconds):
            return "timed out: nothing from \(address) for \(seconds) s during the \(phase) (--timeout); "
                + (phase == "connect"
                    ? "is the address right and reachable?" : "is the runtime manager up, and the repeater's link? retry later")
        case .setup(let message):
            return message
        case .unexpectedResponse(let message):
            return "unexpected response from the runtime manager: \(message)"
        case .relayFailed(let message):
            return "\(message) (is --connect the relay's --legacy-http address?)"
        }
    }

    /// The process's exit status for this failure (sysexits.h), so that a script can tell a
    /// retry from a mistake (`runtime-client --help` lists them).
    public var exitStatus: Int32 {
        switch self {
        case .connectionRefused, .connectFailed, .closedDuringHandshake, .connectionClosed, .connectionLost: return 69  // EX_UNAVAILABLE
        case .localFile: return 66  // EX_NOINPUT
        case .cannotWrite: return 73  // EX_CANTCREAT
        case .timedOut: return 75  // EX_TEMPFAIL
        case .unexpectedResponse, .relayFailed: return 76  // EX_PROTOCOL
        case .requestFailed(_, let status, _) where status == .failedInvalidRole: return 77  // EX_NOPERM
        case .requestFailed: return 1
        case .tlsFailed, .serverNameMismatch, .setup: return 78  // EX_CONFIG
        }
    }

    /// Turns a NIO connect error into one that names the address and the cause.
    static func connect(_ error: Error, address: String) -> RuntimeClientError {
        if let error = error as? NIOConnectionError {
            if let dns = error.dnsAError ?? error.dnsAAAAError {
                return .connectFailed(address: address, reason: "cannot resolve the host name (\(dns))")
            }
            if error.connectionErrors.contains(where: { Self.isRefused($0.error) }) {
                return .connectionRefused(address: address)
            }
            let reasons = error.connectionErrors.map { "\($0.target): \($0.error)" }.joined(separator: "; ")
            return .connectFailed(address: address, reason: reasons.isEmpty ? "\(error)" : reasons)
        }
        if Self.isRefused(error) { return .connectionRefused(address: address) }
        if case ChannelError.connectTimeout(let amount)? = error as? ChannelError {
            return .timedOut(address: address, phase: "connect", seconds: Int(amount.nanoseconds / 1_000_000_000))
        }
        return .connectFailed(address: address, reason: "\(error)")
    }

    private static func isRefused(_ error: Error) -> Bool {
        (error as? IOError)?.errnoCode == ECONNREFUSED
    }

    /// Explains a TLS error by what the user can do about it.
    static func tls(_ error: Error) -> RuntimeClientError {
        let text: String
        if case NIOSSLError.handshakeFailed(let inner) = error {
            text = "\(inner)"
        } else {
            text = "\(error)"
        }
        let explanation: String
        if text.contains("ALERT_ACCESS_DENIED") {
            // runtime-manager's answer to a session without the PROXY header it expects.
            explanation =
                "the runtime manager refused the session before TLS; its log says why (one cause: "
                + "runtime-manager --accept-proxy expects a PROXY header, and the repeater in front is not started with --send-proxy)"
        } else if text.contains("CERTIFICATE_VERIFY_FAILED") {
            explanation = "the runtime manager's certificate was not issued by the CA given with --ca"
        } else if text.contains("ALERT_UNKNOWN_CA") || text.contains("ALERT_BAD_CERTIFICATE")
            || text.contains("ALERT_CERTIFICATE_UNKNOWN") || text.contains("ALERT_CERTIFICATE_REQUIRED")
            || text.contains("ALERT_DECRYPT_ERROR") || text.contains("ALERT_HANDSHAKE_FAILURE")
        {
            explanation =
                "the runtime manager rejected this client's certificate (--cert); "
                + "was it issued by the CA the runtime manager trusts (--client-ca)?"
        } else if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") {
            explanation = "the peer does not speak TLS (is --connect pointing at the repeater or runtime manager?)"
        } else if text.contains("UNSUPPORTED_PROTOCOL") || text.contains("PROTOCOL_VERSION") {
            explanation = "the peer does not offer TLS 1.3"
        } else if case NIOSSLError.uncleanShutdown = error {
            // Not a TLS disagreement but a lost connection: a script may retry it (exit 69).
            return .connectionLost(
                reason:
                    "the connection closed without a TLS goodbye: the runtime manager, its link or the repeater went away mid-session (see their logs)"
            )
        } else {
            explanation = "handshake failed"
        }
        return .tlsFailed(reason: "\(explanation) (\(Self.shortReasons(text)))")
    }

    /// BoringSSL's reason codes in `text` (`TLSLibraryReasons`), or the text if it has none.
    private static func shortReasons(_ text: String) -> String {
        let reasons = TLSLibraryReasons.codes(in: text)
        return reasons.isEmpty ? text : reasons.joined(separator: ", ")
    }
}
