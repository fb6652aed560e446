import NIOCore

/// The local end of one stream, as the multiplexer drives it. There are two kinds, on one link
/// and one state machine:
/// - `YamuxStreamChannel`: a real child `Channel`, for streams that run TLS or a codec
///   (runtime-manager, `muxcat --echo/--exec/print`).
/// - `YamuxSocketRelay`: a handler in a socket's own pipeline, for streams that only copy bytes
///   between that socket and the link (repeaterd, `muxcat --forward`): no pipeline per stream.
///
/// Every call is made on the link's event loop.
protocol YamuxStreamEndpoint: AnyObject {
    var streamID: YamuxStreamID { get }

    /// The multiplexer's marks on this end; the end itself never reads or writes them.
    var marks: YamuxEndpointMarks { get set }

    /// Payload bytes for this stream arrived (within the receive window).
    func receiveData(_ buffer: ByteBuffer)
    /// The peer half-closed the stream.
    func receiveFinish()
    /// The link finished a read cycle: deliver what arrived.
    func parentReadComplete()
    /// The stream was reset by the peer, refused, timed out while closing, or the link went away.
    func receiveReset(error: Error)
    /// Our FIN went out (after every byte queued before it).
    func localFinishWasSent(streamClosed: Bool)
    /// Both directions are finished on the wire; the stream's state is gone.
    func streamClosedOnWire()
    /// The peer acknowledged a stream this side opened (its first frame carried ACK).
    func openAcknowledged()

    /// Bytes ready to go out as Data frames.
    var sendableBytes: Int { get }
    /// Whether FIN should follow once the sendable bytes are gone.
    var wantsToSendFinish: Bool { get }
    /// Takes up to `limit` sendable bytes for one Data frame (slices, no copy), with the promises
    /// of the writes they complete.
    func takeSendable(upTo limit: Int, into pieces: inout [(ByteBuffer, EventLoopPromise<Void>?)]) -> Int
}

/// What the multiplexer notes about one stream end while it schedules it: stored in the end, so
/// that finding it costs no lookup per frame or per read (as NIOHTTP2 keeps its stream-list node
/// in the stream channel), but owned by the multiplexer and its send queue alone: an end only
/// holds it.
struct YamuxEndpointMarks {
    /// Listed for delivery at the end of the link's current read cycle.
    var listedForDelivery = false
    /// In the send queue (`YamuxSendQueue`).
    var queuedForSend = false
}

extension YamuxStreamEndpoint {
    /// Most ends do not care when their open was acknowledged.
    func openAcknowledged() {}
}
