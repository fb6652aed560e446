/// Why the old relay refused a request, in words for the HTTP client; the HTTP handler maps the
/// kind to a status code.
public struct LegacyRelayFailure: Error, Equatable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The body is not "<session id> <base64>" (400).
        case malformedBody
        /// No such session: never opened, expired, or already reported gone (404).
        case unknownSession
        /// The session's stream ended (the runtime manager closed it, or the link dropped) (410).
        case sessionGone
        /// The body is over the limit (413).
        case bodyTooLarge
        /// Not `/runtime_manager` (404) or not POST (405).
        case notFound
        case methodNotAllowed
        /// Too many sessions, or the link to the runtime manager is down (503).
        case unavailable
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
