import NIOCore
import NIOEmbedded
import XCTest

@testable import Yamux

/// What a stream's held payload keeps alive. The decoder hands out payload as slices of the
/// link's read buffers; a slice held for a client that does not read must not keep its whole
/// 64 KiB read buffer alive, or memory would follow the number of small frames, not the window.
final class HeldPayloadTests: XCTestCase {
    func testASmallSliceIsCopiedAndALargeOneKept() {
        var read = ByteBufferAllocator().buffer(capacity: 65536)
        read.writeRepeatingByte(7, count: 65536)
        XCTAssertEqual(read.storageCapacity, 65536)
        let small = read.getSlice(at: 100, length: 100)!.heldCompactly()
        XCTAssertEqual(small.readableBytesView.count, 100)
        XCTAssertLessThanOrEqual(small.storageCapacity, 200, "a copy of its own size")
        XCTAssertTrue(small.readableBytesView.allSatisfy { $0 == 7 })
        let large = read.getSlice(at: 0, length: 40_000)!
        XCTAssertEqual(large.heldCompactly().storageCapacity, 65536, "most of its read buffer: kept as it is, no copy")
        let half = read.getSlice(at: 0, length: 32768)!
        XCTAssertEqual(half.heldCompactly().storageCapacity, 65536, "exactly half: kept")
        XCTAssertEqual(read.getSlice(at: 0, length: 32767)!.heldCompactly().storageCapacity, 32768)
    }

    /// A link whose reads each carry 100 bytes for two stalled streams (one queued in the relay,
    /// one in its socket's pending writes) and fill the rest of the 64 KiB with a bulk stream
    /// whose client reads everything. After 200 reads the stalled streams hold 20,000 bytes
    /// each; the storage they keep alive must stay within twice that (it was 200 × 64 KiB).
    func testStalledRelaysHoldTheirBytesNotTheLinksReadBuffers() throws {
        let link = EmbeddedChannel()
        let loop = link.embeddedEventLoop
        var configuration = YamuxConfiguration(role: .server)
        configuration.keepAliveInterval = nil
        var sockets: [EmbeddedChannel] = []
        var relays: [YamuxSocketRelay] = []
        let mux = YamuxMultiplexer(
            configuration: configuration,
            inboundRelayConnector: { relay in
                let socket = EmbeddedChannel(loop: loop)
                sockets.append(socket)
                relays.append(relay)
                do {
                    try socket.pipeline.syncOperations.addHandler(relay)
                    return socket.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2))
                } catch {
                    return loop.makeFailedFuture(error)
                }
            })
        try link.pipeline.syncOperations.addHandler(mux)
        try link.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        defer {
            _ = try? link.finish(acceptAlreadyClosed: true)
            for socket in sockets { _ = try? socket.finish(acceptAlreadyClosed: true) }
        }

        let queued = YamuxStreamID(1)
        let pending = YamuxStreamID(3)
        let bulk = [5, 7, 9, 11].map { YamuxStreamID(UInt32($0)) }
        var opens = ByteBuffer()
        for id in [queued, pending] + bulk {
            opens.writeYamuxHeader(YamuxFrameHeader(type: .windowUpdate, flags: .syn, streamID: id, length: 0))
        }
        try link.writeInbound(opens)
        loop.run()
        XCTAssertEqual(sockets.count, 6)
        sockets[0].isWritable = false  // stream 1's client stopped reading: the relay queues

        let small = 100
        for _ in 0..<200 {
            var read = ByteBufferAllocator().buffer(capacity: 65536)
            for id in [queued, pending] {
                read.writeYamuxHeader(YamuxFrameHeader(type: .data, flags: [], streamID: id, length: UInt32(small)))
                read.writeRepeatingByte(1, count: small)
            }
            // The rest of the read: the bulk streams, each well inside its window per read.
            let share = (65536 - read.writerIndex) / bulk.count - YamuxFrameHeader.size
            for id in bulk {
                read.writeYamuxHeader(YamuxFrameHeader(type: .data, flags: [], streamID: id, length: UInt32(share)))
                read.writeRepeatingByte(2, count: share)
            }
            XCTAssertEqual(read.storageCapacity, 65536)
            try link.writeInbound(read)
            link.pipeline.fireChannelReadComplete()
            loop.run()
            // The bulk clients read everything; the multiplexer's window updates are dropped.
            for socket in sockets[2...] { while try socket.readOutbound(as: ByteBuffer.self) != nil {} }
            while try link.readOutbound(as: ByteBuffer.self) != nil {}
            XCTAssertTrue(link.isActive, "the link stays up (no window exceeded)")
        }

        let held = relays[0].heldInbound
        XCTAssertEqual(held.bytes, 200 * small)
        XCTAssertLessThanOrEqual(held.storage, 2 * held.bytes, "queued in the relay: \(held.storage) bytes kept alive")
        var pendingBytes = 0
        var pendingStorage = 0
        while let write = try sockets[1].readOutbound(as: ByteBuffer.self) {
            pendingBytes += write.readableBytes
            pendingStorage += write.storageCapacity
        }
        XCTAssertEqual(pendingBytes, 200 * small)
        XCTAssertLessThanOrEqual(pendingStorage, 2 * pendingBytes, "in the socket's pending writes: \(pendingStorage) bytes kept alive")
    }

    /// The same for a stream channel (the runtime manager's and muxcat's streams) whose pipeline
    /// stopped reading: what waits for it holds its bytes, not the link's reads.
    func testAStreamChannelThatStopsReadingHoldsItsBytesNotTheLinksReadBuffers() throws {
        let link = EmbeddedChannel()
        let loop = link.embeddedEventLoop
        var configuration = YamuxConfiguration(role: .server)
        configuration.keepAliveInterval = nil
        var streams: [YamuxStreamChannel] = []
        let mux = YamuxMultiplexer(configuration: configuration) { stream in
            streams.append(stream as! YamuxStreamChannel)
            // The first stream's pipeline never reads; the others read everything.
            return stream.setOption(ChannelOptions.autoRead, value: streams.count > 1)
        }
        try link.pipeline.syncOperations.addHandler(mux)
        try link.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        defer {
            _ = try? link.finish(acceptAlreadyClosed: true)
            loop.run()
        }
        let stalled = YamuxStreamID(1)
        let bulk = [3, 5, 7, 9].map { YamuxStreamID(UInt32($0)) }
        var opens = ByteBuffer()
        for id in [stalled] + bulk {
            opens.writeYamuxHeader(YamuxFrameHeader(type: .windowUpdate, flags: .syn, streamID: id, length: 0))
        }
        try link.writeInbound(opens)
        loop.run()
        XCTAssertEqual(streams.count, 5)
        for _ in 0..<200 {
            var read = ByteBufferAllocator().buffer(capacity: 65536)
            read.writeYamuxHeader(YamuxFrameHeader(type: .data, flags: [], streamID: stalled, length: 100))
            read.writeRepeatingByte(1, count: 100)
            let share = (65536 - read.writerIndex) / bulk.count - YamuxFrameHeader.size
            for id in bulk {
                read.writeYamuxHeader(YamuxFrameHeader(type: .data, flags: [], streamID: id, length: UInt32(share)))
                read.writeRepeatingByte(2, count: share)
            }
            try link.writeInbound(read)
            link.pipeline.fireChannelReadComplete()
            loop.run()
            while try link.readOutbound(as: ByteBuffer.self) != nil {}
            XCTAssertTrue(link.isActive, "the link stays up (no window exceeded)")
        }
        let held = streams[0].heldInbound
        XCTAssertEqual(held.bytes, 20_000)
        XCTAssertLessThanOrEqual(held.storage, 2 * held.bytes, "\(held.storage) bytes kept alive for \(held.bytes)")
        XCTAssertEqual(streams[1].heldInbound.bytes, 0, "a reading stream holds nothing")
    }
}
