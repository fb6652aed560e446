import Foundation
import NIOCore
import SwiftProtobuf
import XCTest

@testable import TransportProtocol

/// The streaming response decoder alone: the file of a read comes out as it arrives, whatever
/// the field order and however the bytes are cut; everything else decodes as swift-protobuf
/// decodes it; bad framing and bad fields are refused.
final class ResponseStreamDecoderTests: XCTestCase {
    private func responses() -> [RuntimeManagerResponse] {
        let file = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        return [
            .with {
                $0.status = .success
                $0.context = 3
                $0.result = .with { $0.data = file }
            },
            .with {
                $0.status = .success
                $0.context = 4
                $0.result = .init()
            },  // an empty file
            .failure(.failedInvalidRole, context: 5, message: "denied: \"x\" is not yours"),
            .with {
                $0.status = .success
                $0.context = 6
                $0.piHash = .with { $0.data = Data(repeating: 0xAB, count: 32) }
            },
            .with {
                $0.status = .success
                $0.policyHash = .with { $0.data = Data(repeating: 1, count: 32) }
            },
        ]
    }

    /// Feeds `stream` in reads of `chunk` bytes: (file bytes in order, responses).
    private func decode(_ stream: ByteBuffer, chunk: Int, limit: Int = 1 << 30) throws -> ([UInt8], [(RuntimeManagerResponse, Int)]) {
        var decoder = ResponseStreamDecoder(maximumMessageBytes: limit)
        var file: [UInt8] = []
        var responses: [(RuntimeManagerResponse, Int)] = []
        var offset = 0
        while offset < stream.readableBytes {
            let count = min(chunk, stream.readableBytes - offset)
            decoder.append(stream.getSlice(at: stream.readerIndex + offset, length: count)!)
            offset += count
            while let event = try decoder.next() {
                switch event {
                case .fileBytes(let bytes): file += Array(bytes.readableBytesView)
                case .response(let response, let fileBytes): responses.append((response, fileBytes))
                }
            }
        }
        XCTAssertNil(decoder.errorAtEndOfStream)
        return (file, responses)
    }

    func testEveryResponseDecodesInAnyCutAndTheFileComesOutAsItArrives() throws {
        for original in self.responses() {
            let wire = try original.lengthPrefixedByteBuffer()
            for chunk in [1, 7, 4096, 1 << 30] where !(chunk == 1 && wire.readableBytes > 50_000) {
                let (file, decoded) = try self.decode(wire, chunk: chunk)
                XCTAssertEqual(decoded.count, 1)
                var expected = original
                if case .result = original.messageOneof { expected.result = .init() }
                XCTAssertEqual(decoded.first?.0, expected, "chunk \(chunk)")
                XCTAssertEqual(file, Array(original.result.data), "chunk \(chunk)")
                XCTAssertEqual(decoded.first?.1, original.result.data.count)
            }
        }
    }

    func testTheStreamedOrderAndSeveralMessagesInARow() throws {
        let file = Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0) })
        var wire = StreamedReadResponse.head(context: 9, fileBytes: file.count)
        wire.writeBytes(file)
        var next = try RuntimeManagerResponse.failure(.failedGeneric, context: 10, message: "no such file").lengthPrefixedByteBuffer()
        wire.writeBuffer(&next)
        let (bytes, decoded) = try self.decode(wire, chunk: 1000)
        XCTAssertEqual(bytes, Array(file))
        XCTAssertEqual(decoded.map(\.0.context), [9, 10])
        XCTAssertEqual(decoded[0].0.status, .success)
        XCTAssertEqual(decoded[1].0.errorMessage, "no such file")
    }

    /// The limit bounds what is kept, not the file: a 200,000-byte file comes through a decoder
    /// limited to 1,000 bytes, while a 1,001-byte error message does not, and a prefix too large
    /// for any arithmetic is refused at once.
    func testTheLimitBoundsWhatIsKeptNotTheFile() throws {
        let wire = try self.responses()[0].lengthPrefixedByteBuffer()
        let (bytes, decoded) = try self.decode(wire, chunk: 4096, limit: 1000)
        XCTAssertEqual(bytes.count, 200_000)
        XCTAssertEqual(decoded.map(\.1), [200_000])

        let long = try RuntimeManagerResponse.failure(.failedGeneric, context: 1, message: String(repeating: "x", count: 1001))
            .lengthPrefixedByteBuffer()
        XCTAssertThrowsError(try self.decode(long, chunk: 100, limit: 1000)) {
            XCTAssertEqual($0 as? TransportProtocolError, .messageTooLarge(length: UInt64(long.readableBytes - 8), limit: 1000))
        }

        var decoder = ResponseStreamDecoder(maximumMessageBytes: 1000)
        var prefix = ByteBuffer()
        prefix.writeInteger(UInt64(1) << 63)
        decoder.append(prefix)
        XCTAssertThrowsError(try decoder.next()) {
            XCTAssertEqual($0 as? TransportProtocolError, .messageTooLarge(length: UInt64(1) << 63, limit: 1000))
        }
    }

    func testAResponseCutShortIsTruncatedAtTheEnd() throws {
        let wire = try self.responses()[0].lengthPrefixedByteBuffer()
        var decoder = ResponseStreamDecoder()
        decoder.append(wire.getSlice(at: 0, length: 5000)!)
        var fileBytes = 0
        while let event = try decoder.next() {
            if case .fileBytes(let bytes) = event { fileBytes += bytes.readableBytes }
        }
        XCTAssertGreaterThan(fileBytes, 4000)
        XCTAssertEqual(decoder.errorAtEndOfStream, .truncatedMessage(received: 4992, expected: wire.readableBytes - 8))
    }

    func testFieldsThatRunPastWhatContainsThemAreRefused() {
        func message(_ fields: [UInt8]) -> ByteBuffer {
            var buffer = ByteBuffer()
            buffer.writeInteger(UInt64(fields.count))
            buffer.writeBytes(fields)
            return buffer
        }
        let cases: [([UInt8], String)] = [
            ([0x22, 0x05, 0x0A, 0x09, 1, 2, 3], "field 1 of 9 bytes runs past its message"),  // data longer than result
            ([0x22, 0x7F, 0x0A, 0x01, 1], "field 4 of 127 bytes runs past its message"),  // result longer than the message
            ([0x08], "a field header runs past its message"),  // a varint cut by the message's end
            ([0x22, 0x04, 0x0A, 0x01, 1, 0x0A, 0x00], "a field header runs past its message"),  // a header cut by the end of result
            ([0x22, 0x06, 0x0A, 0x01, 1, 0x0A, 0x01, 2], "result carries its data twice"),
            ([0x0B], "field 1 has wire type 3"),
            ([0x00], "field number 0"),
        ]
        for (fields, reason) in cases {
            var decoder = ResponseStreamDecoder()
            decoder.append(message(fields))
            var error: Error?
            do {
                while try decoder.next() != nil {}
            } catch let thrown {
                error = thrown
            }
            XCTAssertEqual(
                error as? TransportProtocolError,
                .malformedMessage(type: RuntimeManagerResponse.protoMessageName, reason: reason), "\(fields)")
            XCTAssertThrowsError(try decoder.next(), "a failed decoder stays failed")
        }
    }
}
