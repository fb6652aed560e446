import Foundation
import NIOCore
import SwiftProtobuf
import TransportProtocol
import XCTest

final class LengthPrefixFrameDecoderTests: XCTestCase {
    private func sampleRequest(bytes: Int = 300) -> RuntimeManagerRequest {
        .with {
            $0.context = 7
            $0.writeFile = .with {
                $0.fileName = "input/data.bin"
                $0.data = Data((0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) })
            }
        }
    }

    /// Feeds `chunks` one by one, draining after each, and returns every payload produced.
    private func payloads(
        of chunks: [ByteBuffer], limit: Int = LengthPrefixFrameDecoder.defaultMaximumMessageBytes,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> [ByteBuffer] {
        var decoder = LengthPrefixFrameDecoder(maximumMessageBytes: limit)
        var out: [ByteBuffer] = []
        for chunk in chunks {
            decoder.append(chunk)
            while let payload = try decoder.nextPayload() { out.append(payload) }
        }
        XCTAssertNil(decoder.errorAtEndOfStream, "bytes left over after the last message", file: file, line: line)
        return out
    }

    func testEverySplitPointDecodesTheSameMessage() throws {
        let message = self.sampleRequest()
        let framed = try message.lengthPrefixedByteBuffer()
        for split in 0...framed.readableBytes {
            var whole = framed
            let head = whole.readSlice(length: split)!
            let got = try self.payloads(of: [head, whole])
            XCTAssertEqual(got.count, 1, "split at \(split)")
            XCTAssertEqual(try RuntimeManagerRequest(payload: got[0]), message, "split at \(split)")
        }
    }

    func testEveryPairOfSplitPointsInsideThePrefixDecodesTheSameMessage() throws {
        let message = self.sampleRequest(bytes: 20)
        let framed = try message.lengthPrefixedByteBuffer()
        for first in 0...8 {
            for second in first...9 {
                var rest = framed
                let a = rest.readSlice(length: first)!
                let b = rest.readSlice(length: second - first)!
                let got = try self.payloads(of: [a, b, rest])
                XCTAssertEqual(got.count, 1, "splits at \(first), \(second)")
                XCTAssertEqual(try RuntimeManagerRequest(payload: got[0]), message)
            }
        }
    }

    func testOneByteAtATime() throws {
        let message = self.sampleRequest()
        var framed = try message.lengthPrefixedByteBuffer()
        var chunks: [ByteBuffer] = []
        while let byte = framed.readSlice(length: 1) { chunks.append(byte) }
        let got = try self.payloads(of: chunks)
        XCTAssertEqual(got.count, 1)
        XCTAssertEqual(try RuntimeManagerRequest(payload: got[0]), message)
    }

    func testSeveralMessagesInOneRead() throws {
        let messages = (0..<5).map { index in self.sampleRequest(bytes: index * 10) }
        var all = ByteBuffer()
        for message in messages {
            var framed = try message.lengthPrefixedByteBuffer()
            all.writeBuffer(&framed)
        }
        let got = try self.payloads(of: [all])
        XCTAssertEqual(try got.map { try RuntimeManagerRequest(payload: $0) }, messages)
    }

    func testPrefixThenPartialPayloadYieldsNothingUntilComplete() throws {
        var decoder = LengthPrefixFrameDecoder()
        var prefix = ByteBuffer()
        prefix.writeInteger(UInt64(10), endianness: .big)
        decoder.append(prefix)
        XCTAssertNil(try decoder.nextPayload())
        decoder.append(ByteBuffer(bytes: [1, 2, 3, 4]))
        XCTAssertNil(try decoder.nextPayload())
        XCTAssertEqual(decoder.partialPayloadProgress?.received, 4)
        XCTAssertEqual(decoder.partialPayloadProgress?.expected, 10)
        decoder.append(ByteBuffer(bytes: [5, 6, 7, 8, 9]))
        XCTAssertNil(try decoder.nextPayload())
        decoder.append(ByteBuffer(bytes: [10, 99]))
        XCTAssertEqual(try decoder.nextPayload(), ByteBuffer(bytes: Array(1...10)))
        // The 99 is the first byte of the next prefix, not a message.
        XCTAssertNil(try decoder.nextPayload())
        XCTAssertEqual(decoder.errorAtEndOfStream, .truncatedMessage(received: 1, expected: nil))
    }

    func testShortPrefixIsAPartialReadNotAZeroLength() throws {
        var decoder = LengthPrefixFrameDecoder()
        decoder.append(ByteBuffer(bytes: [0, 0, 0, 0]))
        XCTAssertNil(try decoder.nextPayload())
        XCTAssertEqual(decoder.errorAtEndOfStream, .truncatedMessage(received: 4, expected: nil))
    }

    func testZeroLengthMessage() throws {
        var framed = ByteBuffer()
        framed.writeInteger(UInt64(0), endianness: .big)
        let got = try self.payloads(of: [framed])
        XCTAssertEqual(got, [ByteBuffer()])
        // An empty protobuf payload is the default message: an unset request.
        XCTAssertEqual(try RuntimeManagerRequest(payload: got[0]), RuntimeManagerRequest())
        XCTAssertEqual(try RuntimeManagerRequest().lengthPrefixedByteBuffer(), framed)
    }

    func testHugePrefixIsRefusedAtOnceWithLengthAndLimit() throws {
        var decoder = LengthPrefixFrameDecoder()
        var prefix = ByteBuffer()
        prefix.writeInteger(UInt64(1) << 63, endianness: .big)
        prefix.writeBytes([1, 2, 3])
        decoder.append(prefix)
        XCTAssertThrowsError(try decoder.nextPayload()) { error in
            XCTAssertEqual(
                error as? TransportProtocolError,
                .messageTooLarge(length: UInt64(1) << 63, limit: 64 * 1024 * 1024)
            )
            let text = "\(error)"
            XCTAssertTrue(text.contains("9223372036854775808"), text)
            XCTAssertTrue(text.contains("67108864"), text)
        }
        XCTAssertEqual(decoder.gatheredCapacity, 0)
        // The decoder stays failed: later bytes cannot resynchronise a broken stream.
        decoder.append(ByteBuffer(bytes: [0, 0, 0, 0, 0, 0, 0, 0]))
        XCTAssertThrowsError(try decoder.nextPayload())
    }

    func testLengthJustOverTheLimitIsRefusedAndTheLimitItselfIsAccepted() throws {
        let limit = 1000
        var over = ByteBuffer()
        over.writeInteger(UInt64(limit + 1), endianness: .big)
        XCTAssertThrowsError(try self.payloads(of: [over], limit: limit)) { error in
            XCTAssertEqual(error as? TransportProtocolError, .messageTooLarge(length: UInt64(limit + 1), limit: limit))
        }
        var exact = ByteBuffer()
        exact.writeInteger(UInt64(limit), endianness: .big)
        exact.writeRepeatingByte(7, count: limit)
        XCTAssertEqual(try self.payloads(of: [exact], limit: limit).first?.readableBytes, limit)
    }

    func testAClaimedLengthIsNotAllocatedBeforeTheBytesArrive() throws {
        var decoder = LengthPrefixFrameDecoder()
        var head = ByteBuffer()
        head.writeInteger(UInt64(60 * 1024 * 1024), endianness: .big)
        head.writeRepeatingByte(1, count: 100)
        decoder.append(head)
        XCTAssertNil(try decoder.nextPayload())
        XCTAssertLessThanOrEqual(decoder.gatheredCapacity, 1024, "memory must follow what arrived, not the claim")

        // Growth stays within twice what has arrived.
        let chunk = ByteBuffer(repeating: 2, count: 64 * 1024)
        for _ in 0..<16 {
            decoder.append(chunk)
            XCTAssertNil(try decoder.nextPayload())
        }
        let arrived = 100 + 16 * 64 * 1024
        XCTAssertLessThanOrEqual(decoder.gatheredCapacity, 2 * arrived + 1024)
    }

    func testLargeMessageInOneReadIsASliceNotACopy() throws {
        var framed = ByteBuffer()
        framed.writeInteger(UInt64(1 << 20), endianness: .big)
        framed.writeRepeatingByte(3, count: 1 << 20)
        var decoder = LengthPrefixFrameDecoder()
        decoder.append(framed)
        let payload = try XCTUnwrap(try decoder.nextPayload())
        XCTAssertEqual(payload.readableBytes, 1 << 20)
        let payloadStart = payload.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let frameStart = framed.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(payloadStart, frameStart + 8, "the payload should share the read's storage")
    }
}
