#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Errors of the length-prefixed message framing.
///
/// They are values (Equatable) so tests and the session handler can match on
/// them; each description says what happened, what was expected and what to do.
public enum TransportProtocolError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The 8-byte prefix announced more bytes than the receiver accepts.
    /// Raised as soon as the prefix is complete, before any payload buffer exists.
    case messageTooLarge(length: UInt64, limit: Int)

    /// The stream ended in the middle of a message (inside the prefix or the payload).
    case truncatedMessage(received: Int, expected: Int?)

    /// The payload was complete but is not a valid protobuf message of the expected type.
    case malformedMessage(type: String, reason: String)

    /// A message had started (part of its prefix or payload was here) but no further byte of it
    /// arrived for `seconds`: the peer stalled mid-message (or is a slowloris holding memory).
    case stalledMessage(received: Int, expected: Int?, seconds: Int)

    public var description: String {
        switch self {
        case .messageTooLarge(let length, let limit):
            return "message of \(length) bytes announced by the length prefix exceeds the limit of \(limit) bytes "
                + "(\(Self.mebibytes(limit))); send smaller messages (put splits files into chunks) "
                + "or raise --max-message-bytes"
        case .truncatedMessage(let received, let expected?):
            return "connection ended after \(received) of \(expected) bytes of a message; the peer stopped mid-message"
        case .truncatedMessage(let received, nil):
            return "connection ended after \(received) of the 8 bytes of a length prefix; the peer stopped mid-message"
        case .malformedMessage(let type, let reason):
            return "received bytes that are not a valid \(type) message (\(reason)); is the peer speaking this protocol?"
        case .stalledMessage(let received, let expected?, let seconds):
            return "message stalled: \(received) of its \(expected) bytes arrived, then nothing for \(seconds) s; "
                + "closing the session (send whole messages, or raise --message-timeout)"
        case .stalledMessage(let received, nil, let seconds):
            return "message stalled: \(received) of the 8 bytes of a length prefix arrived, then nothing for \(seconds) s; "
                + "closing the session (send whole messages, or raise --message-timeout)"
        }
    }

    private static func mebibytes(_ bytes: Int) -> String {
        let mib = Double(bytes) / (1024 * 1024)
        // One decimal, rounded, by hand: `String(format:)` is Foundation's, which links ICU's data.
        let tenths = Int((mib * 10).rounded())
        return mib == mib.rounded() ? "\(Int(mib)) MiB" : "\(tenths / 10).\(tenths % 10) MiB"
    }
}
