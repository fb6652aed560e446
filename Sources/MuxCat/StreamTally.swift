import Yamux

/// What happened on one stream, for the `-v` open/close lines on stderr.
///
/// Kept as a value so the wording of those lines is decided (and tested) in one place, apart
/// from the handler that counts.
public struct StreamTally: Sendable, Equatable {
    /// Why a stream ended other than cleanly (no ending: it closed without reset or error).
    public enum Ending: Sendable, Equatable {
        /// The peer reset the stream (RST), or this side did after an error.
        case reset
        /// The link under the stream closed while the stream was open.
        case linkClosed
        case failed(String)
    }

    public var link: Int
    public var stream: YamuxStreamID
    public var bytesIn = 0
    public var bytesOut = 0
    public var peerFinished = false
    public var finishedLocally = false
    public var ending: Ending?

    public init(link: Int, stream: YamuxStreamID) {
        self.link = link
        self.stream = stream
    }

    public var label: String { "link \(link) stream \(stream)" }

    public var openedLine: String { "\(label): opened" }

    /// Records an error seen on the stream; the first one explains the end.
    public mutating func failed(_ error: Error) {
        guard ending == nil else { return }
        if let error = error as? YamuxError {
            switch error.kind {
            case .streamReset, .streamRefused: ending = .reset
            case .linkClosed: ending = .linkClosed
            default: ending = .failed("\(error)")
            }
        } else {
            ending = .failed("\(error)")
        }
    }

    public var closedLine: String {
        let how: String
        switch ending {
        case nil:
            // Both FINs when both went (the reporter asks the stream channel for the peer's,
            // which closes at it without an event when ours went first).
            let fins = [finishedLocally ? "FIN sent" : nil, peerFinished ? "FIN received" : nil].compactMap { $0 }
            how = "closed cleanly" + (fins.isEmpty ? "" : " (\(fins.joined(separator: ", ")))")
        case .reset?: how = "reset (RST)"
        case .linkClosed?: how = "the link closed under it"
        case .failed(let reason)?: how = "failed: \(reason)"
        }
        return "\(label): closed, \(bytesIn) bytes in, \(bytesOut) bytes out, \(how)"
    }
}
