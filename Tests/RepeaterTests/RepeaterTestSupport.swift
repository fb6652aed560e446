import Logging
import NIOCore
import NIOPosix
import XCTest
import Yamux
import YamuxLink

@testable import Repeater

#if canImport(Glibc)
import Glibc
#endif

/// Echoes every byte of a stream; after the peer's FIN, finishes with FIN of its own.
final class StreamEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.write(data, promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { context.close(mode: .output, promise: nil) }
    }
}

/// A runtime manager stand-in and a repeater in front of it, on loopback, in process.
final class RepeaterFixture {
    let group: MultiThreadedEventLoopGroup
    let backend: YamuxLinkListener
    let repeater: RepeaterServer

    init(
        threads: Int = 2,
        configure: (inout RepeaterServer.Configuration) -> Void = { _ in },
        streamInitializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void> = { channel in
            channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                try channel.pipeline.syncOperations.addHandler(StreamEchoHandler())
            }
        }
    ) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        backend = YamuxLinkListener(
            address: .tcp(host: "127.0.0.1", port: 0), group: group, logger: logger,
            streamInitializer: streamInitializer)
        try backend.start().wait()
        var configuration = RepeaterServer.Configuration()
        configuration.listen = .tcp(host: "127.0.0.1", port: 0)
        configuration.backend = .tcp(host: "127.0.0.1", port: backend.localAddress!.port!)
        configure(&configuration)
        repeater = RepeaterServer(configuration: configuration, group: group, logger: logger)
        try repeater.start().wait()
        try repeater.linksUp().wait()
    }

    var port: Int { repeater.localAddress!.port! }

    func shutdown() {
        _ = try? repeater.shutdown().wait()
        _ = try? backend.stop().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Sends a payload over a fresh TCP connection, half-closes, and collects everything that comes back until EOF.
final class SendAndCollectHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var payload: ByteBuffer
    private var received: ByteBuffer
    private let done: EventLoopPromise<ByteBuffer>
    private var finished = false

    init(payload: ByteBuffer, done: EventLoopPromise<ByteBuffer>) {
        self.payload = payload
        self.received = ByteBuffer()
        self.received.reserveCapacity(payload.readableBytes)
        self.done = done
    }

    func channelActive(context: ChannelHandlerContext) { sendMore(context: context) }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { sendMore(context: context) }
    }

    private func sendMore(context: ChannelHandlerContext) {
        while context.channel.isWritable, payload.readableBytes > 0 {
            let chunk = payload.readSlice(length: min(65536, payload.readableBytes))!
            context.write(wrapOutboundOut(chunk), promise: nil)
        }
        context.flush()
        if payload.readableBytes == 0 && !finished {
            finished = true
            context.close(mode: .output, promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received.writeBuffer(&buffer)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            done.succeed(received)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.succeed(received)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        done.fail(error)
        context.close(promise: nil)
    }
}

func sendAndCollect(port: Int, payload: ByteBuffer, group: EventLoopGroup) -> EventLoopFuture<ByteBuffer> {
    let loop = group.next()
    let done = loop.makePromise(of: ByteBuffer.self)
    ClientBootstrap(group: loop)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(SendAndCollectHandler(payload: payload, done: done))
            }
        }
        .connect(host: "127.0.0.1", port: port)
        .whenFailure { done.fail($0) }
    return done.futureResult
}

func pattern(_ count: Int, seed: Int = 0) -> ByteBuffer {
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { storage, initialized in
        for i in 0..<count { storage[i] = UInt8(truncatingIfNeeded: i &* 31 &+ seed &+ i >> 8) }
        initialized = count
    }
    return ByteBuffer(bytes: bytes)
}

/// A blocking TCP socket, for tests about exact write patterns (write, write, read). Every wait
/// has a deadline: a broken relay fails the test instead of hanging it.
struct BlockingSocket {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw POSIXError(code: code)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sends every byte (MSG_NOSIGNAL: a peer that closed makes this a no-op, not a SIGPIPE).
    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Waits up to `timeout` for the socket to become readable (data, EOF or an error).
    private func readable(by deadline: Date) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return false }
            if poll(&poller, 1, Int32(max(1, left * 1000))) > 0 { return true }
        }
    }

    /// Reads exactly `count` bytes (or fewer at EOF or on a reset). Fails the test if they have
    /// not all arrived, and the peer has not closed, within `timeout`.
    func receive(_ count: Int, timeout: TimeInterval = 30, file: StaticString = #filePath, line: UInt = #line) -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: min(max(count, 1), 1 << 20))
        while result.count < count {
            guard readable(by: deadline) else {
                XCTFail("\(result.count) of \(count) bytes arrived within \(timeout) s, and the peer did not close", file: file, line: line)
                break
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - result.count), 0) }
            if n <= 0 { break }
            result += buffer[0..<n]
        }
        return result
    }

    /// Waits for the peer to close (EOF or reset): true if it did within `timeout`, false if the
    /// socket is still open then or bytes arrived instead.
    func waitForClose(timeout: TimeInterval) -> Bool {
        guard readable(by: Date().addingTimeInterval(timeout)) else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) <= 0
    }

    func shutdownWrite() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    func close() { _ = Glibc.close(fd) }
}

/// Polls `condition` every 10 ms until it holds; fails the test saying `what` did not happen if it
/// still does not hold after `timeout` (a deadline far beyond the expected time: it only bounds a
/// broken run).
@discardableResult
func waitUntil(
    _ what: String, timeout: TimeInterval = 20, file: StaticString = #filePath, line: UInt = #line,
    _ condition: () throws -> Bool
) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    if try condition() { return true }
    XCTFail("\(what) did not happen within \(timeout) s", file: file, line: line)
    return false
}

struct POSIXError: Error {
    var code: Int32
}
