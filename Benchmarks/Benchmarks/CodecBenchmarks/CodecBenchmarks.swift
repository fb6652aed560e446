// Micro-benchmarks of the codecs on the hot path, and the seed's unfinished comparison of a length
// prefix against "decode until it works" (issue 5, item 9).
//
// Every benchmark states its unit of work in its name: "×1000 frames" means one iteration handles
// 1,000 frames, so mallocs per frame = the malloc count ÷ 1,000.
import Benchmark
import Foundation
import NIOCore
import SwiftProtobuf
import TransportProtocol
import Yamux

/// 1,000 frames of `payload` bytes each, back to back, as they would arrive on a link.
private func dataFrames(count: Int, payload: Int) -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: count * (YamuxFrameHeader.size + payload))
    let bytes = [UInt8](repeating: 0xAB, count: payload)
    for i in 0..<count {
        buffer.writeYamuxHeader(.data(YamuxStreamID(UInt32(2 * i + 1)), length: UInt32(payload)))
        buffer.writeBytes(bytes)
    }
    return buffer
}

/// One serialized `RuntimeManagerRequest` (write_file) whose file is `bytes` long.
private func requestBytes(_ bytes: Int) -> [UInt8] {
    var request = TransportProtocol_RuntimeManagerRequest()
    request.context = 1
    var data = TransportProtocol_Data()
    data.fileName = "bench/input.bin"
    data.data = Data(repeating: 0x5A, count: bytes)
    request.writeFile = data
    return try! request.serializedBytes()
}

/// The wire bytes (prefix + payload) cut into reads of `chunk` bytes, as a TLS layer hands them up.
private func chunks(of payload: [UInt8], prefixed: Bool, chunk: Int = 16 * 1024) -> [ByteBuffer] {
    var wire = ByteBufferAllocator().buffer(capacity: payload.count + 8)
    if prefixed { writeLengthPrefix(payload.count, into: &wire) }
    wire.writeBytes(payload)
    var out: [ByteBuffer] = []
    while wire.readableBytes > 0 {
        out.append(wire.readSlice(length: min(chunk, wire.readableBytes))!)
    }
    return out
}

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .mallocCountTotal]
    Benchmark.defaultConfiguration = .init(metrics: metrics, maxDuration: .seconds(2), maxIterations: 100_000)

    base64Benchmarks()

    // MARK: yamux header encode

    Benchmark("yamux header encode ×1000") { benchmark in
        var buffer = ByteBufferAllocator().buffer(capacity: 12 * 1000)
        let header = YamuxFrameHeader.data(YamuxStreamID(7), flags: [.syn], length: 16384)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            buffer.clear()
            for _ in 0..<1000 { buffer.writeYamuxHeader(header) }
            blackHole(buffer.readableBytes)
        }
    }

    // MARK: yamux frame decoder

    for payload in [0, 64, 16 * 1024] {
        let input = dataFrames(count: 1000, payload: payload)
        Benchmark("yamux decode ×1000 frames, \(payload) B payload") { benchmark in
            for _ in benchmark.scaledIterations {
                var decoder = YamuxFrameDecoder()
                decoder.append(input)
                var frames = 0
                while let item = try decoder.next() {
                    if case .header = item { frames += 1 }
                }
                precondition(frames == 1000)
                blackHole(frames)
            }
        }
    }

    // A 16 KiB data frame split across 4 KiB reads (header straddles nothing; payload in slices).
    do {
        let whole = dataFrames(count: 1000, payload: 16 * 1024)
        var reads: [ByteBuffer] = []
        var w = whole
        while w.readableBytes > 0 { reads.append(w.readSlice(length: min(4096, w.readableBytes))!) }
        Benchmark("yamux decode ×1000 frames, 16 KiB payload in 4 KiB reads") { benchmark in
            for _ in benchmark.scaledIterations {
                var decoder = YamuxFrameDecoder()
                var frames = 0
                for read in reads {
                    decoder.append(read)
                    while let item = try decoder.next() {
                        if case .header = item { frames += 1 }
                    }
                }
                precondition(frames == 1000)
                blackHole(frames)
            }
        }
    }

    // MARK: length-prefix decoder

    for size in [64, 16 * 1024] {
        var wire = ByteBufferAllocator().buffer(capacity: 1000 * (size + 8))
        let payload = [UInt8](repeating: 1, count: size)
        for _ in 0..<1000 {
            writeLengthPrefix(size, into: &wire)
            wire.writeBytes(payload)
        }
        let input = wire
        Benchmark("length-prefix decode ×1000 messages of \(size) B, one read") { benchmark in
            for _ in benchmark.scaledIterations {
                var decoder = LengthPrefixFrameDecoder()
                decoder.append(input)
                var n = 0
                while let m = try decoder.nextPayload() {
                    n += 1
                    blackHole(m)
                }
                precondition(n == 1000)
            }
        }
    }

    // MARK: item 9 — a 1, 8 and 30 MB message in 16 KB chunks

    for megabytes in [1, 8, 30] {
        let payload = requestBytes(megabytes * 1_000_000)
        let prefixed = chunks(of: payload, prefixed: true)
        let bare = chunks(of: payload, prefixed: false)
        let slow = BenchmarkScalingFactor.one
        let config = Benchmark.Configuration(
            metrics: metrics, scalingFactor: slow, maxDuration: .seconds(3), maxIterations: megabytes >= 8 ? 5 : 50)

        Benchmark("\(megabytes) MB in 16 KB chunks: length prefix, decode once", configuration: config) { benchmark in
            for _ in benchmark.scaledIterations {
                var decoder = LengthPrefixFrameDecoder()
                var decoded = 0
                for chunk in prefixed {
                    decoder.append(chunk)
                    while let message = try decoder.nextPayload() {
                        let request = try TransportProtocol_RuntimeManagerRequest(payload: message)
                        decoded += request.writeFile.data.count
                    }
                }
                precondition(decoded == megabytes * 1_000_000)
            }
        }

        // The old way: keep every byte received so far and try to parse all of it after each chunk;
        // a parse error means "not complete yet". Parsing happens in place (no copy per attempt).
        Benchmark("\(megabytes) MB in 16 KB chunks: decode until it works (parse in place)", configuration: config) {
            benchmark in
            for _ in benchmark.scaledIterations {
                var received: [UInt8] = []
                var attempts = 0
                var done = false
                for chunk in bare {
                    received.append(contentsOf: chunk.readableBytesView)
                    attempts += 1
                    if let request = try? TransportProtocol_RuntimeManagerRequest(serializedBytes: received),
                        request.writeFile.data.count == megabytes * 1_000_000
                    {
                        done = true
                    }
                }
                precondition(done)
                blackHole(attempts)
            }
        }

        // The same, but the accumulated bytes are copied into a fresh buffer for every attempt (what a
        // ByteBuffer → Data / Vec clone per attempt costs): O(n²) bytes copied.
        Benchmark("\(megabytes) MB in 16 KB chunks: decode until it works (copy per attempt)", configuration: config) {
            benchmark in
            for _ in benchmark.scaledIterations {
                var received = ByteBuffer()
                var done = false
                for chunk in bare {
                    var c = chunk
                    received.writeBuffer(&c)
                    let attempt = Data(received.readableBytesView)
                    if let request = try? TransportProtocol_RuntimeManagerRequest(serializedBytes: attempt),
                        request.writeFile.data.count == megabytes * 1_000_000
                    {
                        done = true
                    }
                }
                precondition(done)
            }
        }
    }
}
