import LegacyRelay
import NIOConcurrencyHelpers
import NIOCore
import NIOTLS
import TransportProtocol

/// A request on its way out, with the promise its response will complete.
struct PendingRequest: Sendable {
    var request: RuntimeManagerRequest
    var promise: EventLoopPromise<RuntimeManagerResponse>
}

/// Matches responses to requests in order, and turns a failed or closed
/// connection into an error for every request still waiting.
///
/// Also reports the end of the TLS handshake, so that `connect` can fail with
/// the TLS reason rather than at the first request.
final class ClientResponseHandler: ChannelDuplexHandler {
    typealias InboundIn = RuntimeManagerResponse
    typealias OutboundIn = PendingRequest
    typealias OutboundOut = RuntimeManagerRequest

    private let handshake: EventLoopPromise<Void>
    private let address: String
    private var waiting = CircularBuffer<EventLoopPromise<RuntimeManagerResponse>>()
    private var failure: RuntimeClientError?
    private var handshakeDone = false

    private let firstFailure: NIOLockedValueBox<RuntimeClientError?>

    init(handshake: EventLoopPromise<Void>, address: String, firstFailure: NIOLockedValueBox<RuntimeClientError?>) {
        self.handshake = handshake
        self.address = address
        self.firstFailure = firstFailure
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let pending = self.unwrapOutboundIn(data)
        if let failure = self.failure {
            pending.promise.fail(failure)
            promise?.fail(failure)
            return
        }
        self.waiting.append(pending.promise)
        context.write(self.wrapOutboundOut(pending.request), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let response = self.unwrapInboundIn(data)
        guard let promise = self.waiting.popFirst() else {
            // The runtime manager speaks first only to refuse a message it
            // could not frame; report its reason.
            self.fail(.unexpectedResponse(response.errorMessage ?? "a response nobody asked for"), context: context)
            return
        }
        promise.succeed(response)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            self.handshakeDone = true
            self.handshake.succeed(())
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let error = error as? TransportProtocolError {
            self.fail(.unexpectedResponse("\(error)"), context: context)
        } else if let error = error as? LegacyHTTPRelayError {
            self.fail(.relayFailed("\(error)"), context: context)
        } else {
            self.fail(RuntimeClientError.tls(error), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(.connectionClosed(address: self.address), context: context)
        context.fireChannelInactive()
    }

    private func fail(_ error: RuntimeClientError, context: ChannelHandlerContext) {
        if self.failure == nil {
            self.failure = error
            self.firstFailure.withLockedValue { $0 = error }
        }
        let failure = self.failure!
        if !self.handshakeDone {
            self.handshakeDone = true
            self.handshake.fail(failure)
        }
        while let promise = self.waiting.popFirst() {
            promise.fail(failure)
        }
        context.close(promise: nil)
    }
}
