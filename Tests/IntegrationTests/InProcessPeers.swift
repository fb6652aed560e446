import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import RuntimeClient
import RuntimeManager
import Synchronization
import YamuxLink

/// A runtime manager in this process (so a test can look at its sessions, streams and store),
/// accepting links on a free loopback port.
final class InProcessRuntimeManager {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    let server: RuntimeManagerServer
    let linkPort: Int
    let logs = MessageLog()

    init(maximumMessageBytes: Int = 64 << 20, logLevel: Logger.Level = .info) async throws {
        let configuration = RuntimeManagerConfiguration(
            certificatePath: Certificates.path("runtime-manager.pem"), keyPath: Certificates.path("runtime-manager.key"),
            clientCAPath: Certificates.path("ca.pem"), policyPath: Certificates.path("policy.json"),
            maximumMessageBytes: maximumMessageBytes)
        let logs = self.logs
        var logger = Logger(label: "runtime-manager") { _ in logs.handler }
        logger.logLevel = logLevel
        server = try RuntimeManagerServer(configuration: configuration, group: group, logger: logger)
        linkPort = try await server.bindLinks(address: .tcp(host: "127.0.0.1", port: 0))!.port!
    }

    func stop() async {
        await server.shutdown()
        try? await group.shutdownGracefully()
    }
}

/// Log messages kept for the test to read.
final class MessageLog: Sendable {
    private let lines = Mutex<[String]>([])

    var messages: [String] { lines.withLock { $0 } }

    var handler: LogHandler { Handler(log: self) }

    private struct Handler: LogHandler {
        let log: MessageLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.lines.withLock { $0.append("\(event.level) \(event.message)") }
        }
    }
}

/// A TLS client that sends raw bytes (so a test can send part of a message) and can stop
/// reading or vanish without a close_notify, as broken and hostile clients do.
final class RawTLSClient: Sendable {
    let channel: Channel

    private init(channel: Channel) { self.channel = channel }

    static func connect(port: Int, configuration: RuntimeClientConfiguration, group: EventLoopGroup) async throws
        -> RawTLSClient
    {
        let context = try configuration.makeSSLContext()
        let handshake = group.next().makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: handshake.futureResult.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: handshake))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await handshake.futureResult.get()
        return RawTLSClient(channel: channel)
    }

    var isActive: Bool { channel.isActive }

    func send(_ bytes: ByteBuffer) async throws { try await channel.writeAndFlush(bytes).get() }

    /// Reads nothing more: TCP backpressure holds the sender back from here on.
    func stopReading() async throws { try await channel.setOption(.autoRead, value: false).get() }

    /// Gone without a TLS close_notify or FIN: an RST, as when the machine or process dies.
    func vanish() async throws {
        let channel = self.channel
        if let options = channel as? SocketOptionProvider {
            try await options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        }
        try await channel.eventLoop.flatSubmit {
            // Close below the TLS handler, so no close_notify is written.
            guard let tls = try? channel.pipeline.syncOperations.context(handlerType: NIOSSLClientHandler.self) else {
                return channel.close()
            }
            let promise = channel.eventLoop.makePromise(of: Void.self)
            tls.close(promise: promise)
            return promise.futureResult
        }.get()
    }

    private final class HandshakeWaiter: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<Void>
        init(promise: EventLoopPromise<Void>) { self.promise = promise }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case TLSUserEvent.handshakeCompleted = event { promise.succeed(()) }
            context.fireUserInboundEventTriggered(event)
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}  // responses are not looked at
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            promise.fail(error)
            context.close(promise: nil)
        }
        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ChannelError.eof)
            context.fireChannelInactive()
        }
    }
}
