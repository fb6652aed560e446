import Logging
import NIOCore
import NIOPosix
import Repeater
import XCTest
import Yamux
import YamuxLink

@testable import LegacyRelayServer

/// Echoes every byte of a stream; after the peer's FIN, finishes with FIN of its own.
final class StreamEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.write(data, promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { context.close(mode: .output, promise: nil) }
    }
}

/// The old HTTP relay as repeaterd composes it, on loopback, in process: an echoing runtime
/// manager stand-in, one link per event loop dialed to it, and the relay opening its sessions'
/// streams on those links.
final class LegacyRelayFixture {
    let group: MultiThreadedEventLoopGroup
    let backend: YamuxLinkListener
    let links: [Link]
    let relay: LegacyHTTPRelay

    init(threads: Int = 2, sessionLimit: SessionLimit? = nil, configure: (inout LegacyHTTPRelay.Configuration) -> Void = { _ in }) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        backend = YamuxLinkListener(
            address: .tcp(host: "127.0.0.1", port: 0), group: group, logger: logger,
            streamInitializer: { channel in
                channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(StreamEchoHandler())
                }
            })
        try backend.start().wait()
        let backendAddress = LinkAddress.tcp(host: "127.0.0.1", port: backend.localAddress!.port!)
        links = group.makeIterator().enumerated().map { index, loop in
            Link(
                index: index, eventLoop: loop,
                configuration: Link.Configuration(backend: backendAddress, yamux: YamuxConfiguration(role: .client)),
                logger: logger)
        }
        try EventLoopFuture.andAllSucceed(links.map { $0.start() }, on: group.next()).wait()
        var configuration = LegacyHTTPRelay.Configuration()
        configure(&configuration)
        let linkByLoop = Dictionary(uniqueKeysWithValues: links.map { (ObjectIdentifier($0.eventLoop), $0) })
        relay = LegacyHTTPRelay(
            configuration: configuration, group: group, logger: logger,
            linkForLoop: { linkByLoop[ObjectIdentifier($0)] }, sessionLimit: sessionLimit)
        try relay.start(listen: .tcp(host: "127.0.0.1", port: 0)).wait()
    }

    var port: Int { relay.localAddress!.port! }

    func shutdown() {
        _ = try? relay.shutdown().wait()
        _ = try? EventLoopFuture.andAllComplete(links.map { $0.stop() }, on: group.next()).wait()
        _ = try? backend.stop().wait()
        try? group.syncShutdownGracefully()
    }
}
