// The old relay's base64 (LegacyRelay's Base64: swift-extras-base64 behind a ByteBuffer API) beside
// the bare library, on what the relay moves: one 16 KiB TLS record per body. The wrapper must cost
// nothing over it (Sources/LegacyRelay/Base64.swift quotes the loop it replaced).
import Benchmark
import ExtrasBase64
import LegacyBase64
import NIOCore

private let record = ByteBuffer(bytes: (0..<16_384).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) })
private let recordText: ByteBuffer = {
    var text = ByteBuffer()
    LegacyBase64.Base64.encode(record, into: &text)
    return text
}()

func base64Benchmarks() {
    Benchmark("base64 encode 16 KiB record ×100: ours, into a ByteBuffer") { benchmark in
        var out = ByteBufferAllocator().buffer(capacity: 22_000 * 100)
        for _ in benchmark.scaledIterations {
            out.clear()
            for _ in 0..<100 { LegacyBase64.Base64.encode(record, into: &out) }
            blackHole(out.readableBytes)
        }
    }
    Benchmark("base64 encode 16 KiB record ×100: swift-extras-base64, into a ByteBuffer (span)") { benchmark in
        var out = ByteBufferAllocator().buffer(capacity: 22_000 * 100)
        let length = ExtrasBase64.Base64.encodedLength(bytesCount: record.readableBytes)
        for _ in benchmark.scaledIterations {
            out.clear()
            for _ in 0..<100 {
                record.withUnsafeReadableBytes { input in
                    _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { raw in
                        var span = raw.bindMemory(to: UInt8.self).mutableSpan
                        return ExtrasBase64.Base64.encode(bytes: input.bindMemory(to: UInt8.self).span, into: &span)
                    }
                }
            }
            blackHole(out.readableBytes)
        }
    }
    Benchmark("base64 encode 16 KiB record ×100: swift-extras-base64, to [UInt8] then copied") { benchmark in
        var out = ByteBufferAllocator().buffer(capacity: 22_000 * 100)
        for _ in benchmark.scaledIterations {
            out.clear()
            for _ in 0..<100 { out.writeBytes(ExtrasBase64.Base64.encodeToBytes(bytes: record.readableBytesView)) }
            blackHole(out.readableBytes)
        }
    }
    Benchmark("base64 decode 16 KiB record ×100: ours, into a new ByteBuffer") { benchmark in
        for _ in benchmark.scaledIterations {
            for _ in 0..<100 { blackHole(try! LegacyBase64.Base64.decode(recordText.readableBytesView).readableBytes) }
        }
    }
    Benchmark("base64 decode 16 KiB record ×100: swift-extras-base64, into a new ByteBuffer (span)") { benchmark in
        let allocator = ByteBufferAllocator()
        let length = ExtrasBase64.Base64.decodedLength(bytesCount: recordText.readableBytes)
        for _ in benchmark.scaledIterations {
            for _ in 0..<100 {
                var out = allocator.buffer(capacity: length)
                recordText.withUnsafeReadableBytes { input in
                    _ = out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { raw in
                        var span = raw.bindMemory(to: UInt8.self).mutableSpan
                        return try! ExtrasBase64.Base64.decode(bytes: input.bindMemory(to: UInt8.self).span, into: &span)
                    }
                }
                blackHole(out.readableBytes)
            }
        }
    }
}
