import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import YamuxLink

/// `--admin HOST:PORT`: plain HTTP/1.1 for `/healthz`, `/readyz` and `/metrics`, on the daemon's
/// own event loops, answered by ``AdminRoutes``.
///
/// Built to be reached by a balancer and a scraper, and to shrug off anything else: one request
/// per connection (the response says `Connection: close`, so a pipelined flood gets one answer),
/// at most 8 KiB of request, and 10 s from accept to the end of the request, however slowly it
/// drips in. A malformed request gets a 400 from NIO's error handler and closes only its own
/// connection. The README recommends loopback or a private interface: nothing here is secret,
/// but nothing here is authenticated either.
public final class AdminServer: Sendable {
    public static let maximumRequestBytes = 8 * 1024
    public static let requestDeadline: TimeAmount = .seconds(10)

    private let address: LinkAddress
    private let group: any EventLoopGroup
    private let routes: AdminRoutes
    private let logger: Logger
    private let listener = Mutex<(any Channel)?>(nil)

    public init(address: LinkAddress, group: any EventLoopGroup, routes: AdminRoutes, logger: Logger) {
        self.address = address
        self.group = group
        self.routes = routes
        self.logger = logger
    }

    /// Binds and serves; returns the bound address (the real port when 0 was asked for).
    @discardableResult
    public func start() async throws -> SocketAddress? {
        let routes = self.routes
        let channel = try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(AdminConnectionGuard())
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                    try sync.addHandler(AdminHTTPHandler(routes: routes))
                }
            }
            .bind(to: self.address)
            .get()
        self.listener.withLock { $0 = channel }
        let paths = routes.status == nil ? "/healthz /readyz /metrics" : "/healthz /readyz /metrics /status /status.json"
        self.logger.notice("admin endpoint on \(channel.localAddress.map(\.commandLineForm) ?? "\(self.address)"): \(paths)")
        return channel.localAddress
    }

    public func stop() async {
        let channel = self.listener.withLock { listener -> (any Channel)? in
            defer { listener = nil }
            return listener
        }
        try? await channel?.close()
    }
}

/// First in each admin connection's pipeline: closes it when the request grows past 8 KiB (with a
/// 413, written raw, since it sits before the HTTP codec) or is not complete 10 s after accept.
final class AdminConnectionGuard: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var received = 0
    private var deadline: Scheduled<Void>?
    private var refused = false

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        self.deadline = context.eventLoop.scheduleTask(in: AdminServer.requestDeadline) {
            loopBound.value.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.deadline?.cancel()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.refused else { return }
        self.received += self.unwrapInboundIn(data).readableBytes
        guard self.received <= AdminServer.maximumRequestBytes else {
            self.refused = true
            let body = "request larger than \(AdminServer.maximumRequestBytes) bytes\n"
            let response =
                "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(channel.allocator.buffer(string: response)))
                .whenComplete { _ in channel.close(promise: nil) }
            return
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // After a 413 the HTTP codec may still answer what it had parsed: only one response goes out.
        guard !self.refused else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }
}

/// Answers one request with ``AdminRoutes`` and closes.
final class AdminHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: AdminRoutes
    private var request: HTTPRequestHead?
    private var answered = false

    init(routes: AdminRoutes) {
        self.routes = routes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.request = head
        case .body:
            break  // bounded by AdminConnectionGuard; no endpoint takes a body
        case .end:
            guard let request = self.request, !self.answered else { return }
            self.answered = true
            let channel = context.channel
            self.routes.respond(method: request.method, uri: request.uri, on: context.eventLoop).whenSuccess { response in
                Self.write(response, to: channel)
            }
        }
    }

    /// Through the channel (this handler is its last), so that an answer that waited for the
    /// daemon's loops still goes out the same way.
    private static func write(_ response: AdminRoutes.Response, to channel: any Channel) {
        var headers = HTTPHeaders(response.headers)
        if !headers.contains(name: "Content-Length") { headers.add(name: "Content-Length", value: "\(response.body.count)") }
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        if !response.body.isEmpty {
            channel.write(HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(bytes: response.body))), promise: nil)
        }
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
    }
}
