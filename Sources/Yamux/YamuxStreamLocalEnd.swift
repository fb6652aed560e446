import NIOCore

/// What the multiplexer keeps in a stream's slot, beside its state.
///
/// A class: every frame carries it from the slot to the handler, and copying one reference is a
/// single retain, where a struct of an endpoint and a timer took generic value-witness copies
/// (≈ 3 % of repeaterd's CPU per round trip in a profile).
final class StreamLocalEnd {
    /// The stream's end on this side (nil once it closed while the stream lingers on the wire).
    var endpoint: (any YamuxStreamEndpoint)?
    /// Resets the stream if it has not closed within the close timeout.
    var linger: Scheduled<Void>?

    init(endpoint: any YamuxStreamEndpoint) {
        self.endpoint = endpoint
    }
}

extension Array {
    /// Empties the array and keeps its storage, releasing the elements one by one in specialized
    /// code: `removeAll(keepingCapacity:)` goes through the runtime's generic array destroy
    /// (`swift_arrayDestroy`, a value witness per element), which showed in repeaterd's profile
    /// for these one- or two-element lists emptied on every frame.
    @inline(__always)
    mutating func removeAllKeepingCapacity() {
        while popLast() != nil {}
    }
}
