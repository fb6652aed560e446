import Foundation
import NIOCore
import SwiftProtobuf
import XCTest

@testable import TransportProtocol

/// The head a streamed read response begins with, followed by the file, is the response
/// swift-protobuf would have made: checked by decoding it with swift-protobuf itself.
final class StreamedReadResponseTests: XCTestCase {
    func testHeadAndFileDecodeAsTheWholeResponse() throws {
        for (context, size) in [(UInt32(0), 0), (1, 1), (7, 127), (300, 128), (UInt32.max, 16_384), (42, 3_000_000)] {
            let file = Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            var wire = StreamedReadResponse.head(context: context, fileBytes: size)
            wire.writeBytes(file)
            XCTAssertEqual(wire.readableBytes, StreamedReadResponse.wireBytes(context: context, fileBytes: size))
            let length = try XCTUnwrap(wire.readInteger(as: UInt64.self))
            XCTAssertEqual(Int(length), wire.readableBytes, "the prefix counts every byte after it")
            let decoded = try RuntimeManagerResponse(payload: wire)
            var expected = RuntimeManagerResponse()
            expected.status = .success
            expected.context = context
            expected.result = .with { $0.data = file }
            XCTAssertEqual(decoded, expected, "context \(context), \(size) bytes")
            // And swift-protobuf's own serialization is the same size (only the field order differs).
            XCTAssertEqual((try expected.serializedBytes() as [UInt8]).count, Int(length))
        }
    }
}
