import NIOCore
import NIOEmbedded
import Synchronization
import TransportProtocol
import XCTest

@testable import RuntimeClient

/// A get's file goes to its sink off the event loop (the sink's writes block): the decoder holds
/// the channel's reads while too much waits to be written, and lets a read's response (and the
/// connection's end) go on only once the file is written, since the caller commits it then.
final class StreamingResponseDecoderTests: XCTestCase {
    /// Writes that the test completes by hand, on the embedded loop's one thread.
    private final class HeldWriter: DownloadWriter, @unchecked Sendable {  // EmbeddedEventLoop: one thread
        var held: [(bytes: ByteBuffer, sink: any DownloadSink, promise: EventLoopPromise<Void>)] = []

        func write(_ bytes: ByteBuffer, to sink: any DownloadSink, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
            let promise = eventLoop.makePromise(of: Void.self)
            held.append((bytes, sink, promise))
            return promise.futureResult
        }

        /// Writes the oldest held bytes to their sink (or fails them) and completes that write.
        func completeFirst(failing error: (any Error)? = nil) throws {
            let first = held.removeFirst()
            if let error {
                first.promise.fail(error)
            } else {
                try first.sink.write(first.bytes)
                first.promise.succeed()
            }
        }
    }

    private final class MemorySink: DownloadSink {
        let received = Mutex<[UInt8]>([])
        func write(_ bytes: ByteBuffer) throws { received.withLock { $0 += bytes.readableBytesView } }
    }

    /// Counts the reads that get past the decoder toward the socket.
    private final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    /// What reaches the handlers behind the decoder, in order.
    private final class EventRecorder: ChannelInboundHandler {
        typealias InboundIn = RuntimeManagerResponse
        var events: [String] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            events.append("response \(self.unwrapInboundIn(data).status)")
        }
        func channelInactive(context: ChannelHandlerContext) { events.append("inactive") }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { events.append("error") }
    }

    private var channel: EmbeddedChannel!
    private var writer: HeldWriter!
    private var sink: MemorySink!
    private var counter: ReadCounter!
    private var recorder: EventRecorder!

    override func setUpWithError() throws {
        writer = HeldWriter()
        sink = MemorySink()
        counter = ReadCounter()
        recorder = EventRecorder()
        let slot = DownloadSlot()
        slot.set(sink)
        let decoder = StreamingResponseDecoder(maximumMessageBytes: 1 << 20, slot: slot, progress: nil, writer: writer)
        channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([counter, decoder, recorder])
    }

    override func tearDown() { _ = try? channel.finish() }

    private func file(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) } }

    func testReadsAreHeldWhileMoreThanTheLimitWaitsAndTheResponseWaitsForTheLastWrite() throws {
        let size = StreamingResponseDecoder.holdReadsAbove + (2 << 20)
        let bytes = file(size)
        let cut = StreamingResponseDecoder.holdReadsAbove + 1000
        try channel.writeInbound(StreamedReadResponse.head(context: 0, fileBytes: size))
        try channel.writeInbound(ByteBuffer(bytes: bytes[..<cut]))
        XCTAssertEqual(writer.held.count, 1, "one write in flight; what arrives meanwhile gathers behind it")

        channel.read()
        XCTAssertEqual(counter.reads, 0, "over the limit waits to be written: the read is held")
        try writer.completeFirst()
        XCTAssertEqual(counter.reads, 1, "written: the held read goes on")

        try channel.writeInbound(ByteBuffer(bytes: bytes[cut...]))
        XCTAssertEqual(recorder.events, [], "the response waits until its file is written")
        channel.read()
        XCTAssertEqual(counter.reads, 1, "and nothing more is read meanwhile")
        while !writer.held.isEmpty { try writer.completeFirst() }
        XCTAssertEqual(recorder.events, ["response success"])
        XCTAssertEqual(counter.reads, 2)
        XCTAssertEqual(sink.received.withLock { $0 }, bytes, "every byte, in order, in the sink")
    }

    func testTheConnectionsEndWaitsForTheFileToo() throws {
        let bytes = file(100_000)
        var whole = StreamedReadResponse.head(context: 0, fileBytes: bytes.count)
        whole.writeBytes(bytes)
        try channel.writeInbound(whole)
        channel.pipeline.fireChannelInactive()
        XCTAssertEqual(recorder.events, [])
        try writer.completeFirst()
        XCTAssertEqual(recorder.events, ["response success", "inactive"])
        XCTAssertEqual(sink.received.withLock { $0 }, bytes)
    }

    /// A closed channel's handlers are removed right after its end (on the next loop tick): an
    /// end still waiting for the file's writes then would reach nobody, and the read would wait
    /// forever. It goes on at the removal instead, and the read fails (its file is not committed).
    func testAConnectionTornDownWhileTheFileIsWrittenStillEndsTheRead() throws {
        let bytes = file(100_000)
        var whole = StreamedReadResponse.head(context: 0, fileBytes: bytes.count)
        whole.writeBytes(bytes)
        try channel.writeInbound(whole)
        try channel.close().wait()
        channel.embeddedEventLoop.run()
        XCTAssertEqual(recorder.events, ["inactive"], "the end, before the handlers are gone; no response for an unwritten file")
        try writer.completeFirst()
        XCTAssertEqual(recorder.events, ["inactive"], "a write that completes afterwards changes nothing")
    }

    func testAFailedWriteFailsTheDownloadAndNoResponseFollows() throws {
        let bytes = file(50_000)
        var whole = StreamedReadResponse.head(context: 0, fileBytes: bytes.count)
        whole.writeBytes(bytes)
        try channel.writeInbound(whole)
        struct DiskFull: Error {}
        try writer.completeFirst(failing: DiskFull())
        XCTAssertEqual(recorder.events, ["error"])
        channel.read()
        XCTAssertEqual(counter.reads, 1, "a failed decoder holds nothing back")
    }
}
