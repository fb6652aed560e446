import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ProcessTestSupport
import Synchronization
import XCTest
import Yamux
import YamuxLink

#if canImport(Glibc)
import Glibc
#endif

/// 1,000 clients of a real `repeaterd` stop reading while the link keeps delivering to them
/// until flow control stops it: the memory repeaterd holds stays within what the window, the
/// socket write watermark and the session count promise (docs/SECURITY.md), and stops growing
/// once the windows are full.
///
/// What makes a held byte cost more than a byte, slices pinning whole link reads, needs reads
/// that mix a stalled stream's small frames with bytes that move on; that mix is tested in
/// `HeldPayloadTests` (it fails there without the fix). Here the stalled streams fill the reads
/// themselves, so this test holds the bound on the real process, not the pinning.
final class StalledSessionMemoryTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    /// The far end: writes 16 KiB to every stream whenever the stream can take it, for ever.
    private final class Backend: Sendable {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let streams = Atomic<Int>(0)
        let listener: YamuxLinkListener

        init() throws {
            let streams = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)
            listener = YamuxLinkListener(
                address: .tcp(host: "127.0.0.1", port: 0), group: group,
                streamInitializer: { stream in
                    streams.withLockedValue { $0 }?()
                    return stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(Flooder()) }
                })
            streams.withLockedValue { $0 = { [weak self] in self?.streams.add(1, ordering: .relaxed) } }
            try listener.start().wait()
        }

        var port: Int { listener.localAddress!.port! }

        func stop() {
            _ = try? listener.stop().wait()
            try? group.syncShutdownGracefully()
        }
    }

    private final class Flooder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        func channelActive(context: ChannelHandlerContext) {
            flood(context: context)
            context.fireChannelActive()
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            flood(context: context)
            context.fireChannelWritabilityChanged()
        }

        private func flood(context: ChannelHandlerContext) {
            while context.channel.isActive && context.channel.isWritable {
                context.writeAndFlush(NIOAny(ByteBuffer(repeating: 0x73, count: 16 * 1024)), promise: nil)
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }

    func testAThousandClientsThatStopReadingHoldWhatTheLimitsPromise() throws {
        let sessions = 1000
        let window = 262_144
        let backend = try Backend()
        defer { backend.stop() }
        let adminPort = freePort()
        let (repeater, port) = try deployment.repeaterWithLinkUp(
            backendPort: backend.port,
            ["--threads", "1", "--max-stream-window", "\(window)", "--admin", "127.0.0.1:\(adminPort)"])
        let pid = repeater.process.processIdentifier
        let baseline = try XCTUnwrap(residentKiB(pid: pid))
        func delivered() throws -> Int {
            let metrics = try deployment.samples(try deployment.adminGet(adminPort, "/metrics").body)
            return Int(metrics["repeater_bytes_total{direction=link_to_client}"] ?? 0)
        }

        var stalled: [RawSocket] = []
        defer { for socket in stalled { socket.close() } }
        // Clients that never read, with small receive buffers: they stop taking bytes early.
        for _ in 0..<sessions { stalled.append(try RawSocket.connect(port: port, receiveBuffer: 4096)) }
        XCTAssertTrue(eventually(timeout: 30) { backend.streams.load(ordering: .relaxed) == sessions })

        // Until the flow stops: no new byte delivered to the clients for a second.
        var last = -1
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let now = try delivered()
            if now == last { break }
            last = now
            Thread.sleep(forTimeInterval: 1)
        }
        let full = try XCTUnwrap(residentKiB(pid: pid))
        Thread.sleep(forTimeInterval: 2)
        let later = try XCTUnwrap(residentKiB(pid: pid))
        let peak = try XCTUnwrap(residentKiB(pid: pid, field: "VmHWM:"))
        let stillDelivered = try delivered()
        // docs/SECURITY.md: per stalled session at most 2 x (window + 64 KiB socket write high
        // watermark) of payload memory, plus its own state (~8 KiB measured when idle: 16 KiB here).
        let promised = sessions * (2 * (window + 64 * 1024) + 16 * 1024)
        let grew = (peak - baseline) * 1024
        print(
            "stalled sessions: \(sessions); delivered to them \(last >> 20) MiB (the rest of it in their kernels' buffers); "
                + "repeaterd RSS \(baseline / 1024) MiB -> \(full / 1024) MiB when full, \(later / 1024) MiB 2 s later, peak \(peak / 1024) MiB "
                + "(+\(grew >> 20) MiB; promised at most +\(promised >> 20) MiB)")
        XCTAssertEqual(stillDelivered, last, "flow control stopped the flow")
        XCTAssertGreaterThan(last, sessions * window, "each stalled session received at least its window")
        XCTAssertLessThanOrEqual(grew, promised, "repeaterd's memory stays within what the limits promise")
        XCTAssertLessThanOrEqual(later - full, 4 * 1024, "no growth once the windows are full")
        XCTAssertTrue(repeater.process.isRunning)
    }
}
