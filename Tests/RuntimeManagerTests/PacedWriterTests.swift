import NIOCore
import NIOEmbedded
import XCTest

@testable import RuntimeManager

/// The runtime manager hands large responses to TLS in slices, in order, a few per loop turn.
final class PacedWriterTests: XCTestCase {
    func testALargeWriteLeavesInSlicesInOrderAndASmallOneAfterItStaysBehindIt() throws {
        let channel = EmbeddedChannel(handler: PacedWriter())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var large = ByteBuffer()
        for i in 0..<(1_100_000 / 4) { large.writeInteger(UInt32(i)) }
        let largeWritten = channel.eventLoop.makePromise(of: Void.self)
        var done = false
        largeWritten.futureResult.assumeIsolated().whenSuccess { done = true }
        channel.write(large, promise: largeWritten)
        channel.write(ByteBuffer(string: "after"), promise: nil)
        channel.flush()

        var slices: [ByteBuffer] = []
        while let slice = try channel.readOutbound(as: ByteBuffer.self) { slices.append(slice) }
        XCTAssertEqual(slices.count, PacedWriter.slicesPerTurn, "a few slices per turn, then the loop is yielded")
        XCTAssertFalse(done)
        channel.embeddedEventLoop.run()  // the next turns
        while let slice = try channel.readOutbound(as: ByteBuffer.self) { slices.append(slice) }

        XCTAssertTrue(slices.dropLast().allSatisfy { $0.readableBytes <= PacedWriter.sliceBytes })
        var joined = ByteBuffer()
        for var slice in slices.dropLast() { joined.writeBuffer(&slice) }
        XCTAssertEqual(joined, large, "every byte, in order")
        XCTAssertEqual(slices.last.map { String(buffer: $0) }, "after", "a later small write stays behind")
        XCTAssertTrue(done, "the large write's promise completes with its last slice")
        XCTAssertNoThrow(try channel.finish())
    }

    func testSmallWritesPassStraightThrough() throws {
        let channel = EmbeddedChannel(handler: PacedWriter())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.writeAndFlush(ByteBuffer(string: "small"), promise: nil)
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) }, "small")
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self))
        XCTAssertNoThrow(try channel.finish())
    }

    func testPendingWritesFailWhenTheChannelCloses() throws {
        let channel = EmbeddedChannel(handler: PacedWriter())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let promise = channel.eventLoop.makePromise(of: Void.self)
        var failed = false
        promise.futureResult.assumeIsolated().whenFailure { _ in failed = true }
        channel.write(ByteBuffer(repeating: 1, count: 4 << 20), promise: promise)
        channel.flush()
        _ = try channel.finish(acceptAlreadyClosed: true)
        XCTAssertTrue(failed, "a response that can no longer be written must not leave its writer waiting")
    }
}
