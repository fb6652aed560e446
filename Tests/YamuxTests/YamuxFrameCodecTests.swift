import NIOCore
import XCTest

@testable import Yamux

final class YamuxFrameCodecTests: XCTestCase {
    func testEveryTypeAndFlagRoundTrips() throws {
        let types: [YamuxFrameType] = [.data, .windowUpdate, .ping, .goAway]
        for type in types {
            for rawFlags in UInt16(0)...15 {
                let header = YamuxFrameHeader(
                    type: type, flags: YamuxFlags(rawValue: rawFlags), streamID: YamuxStreamID(0xDEAD_BEEF),
                    length: type == .data ? 3 : 0xCAFE_F00D)
                var buffer = ByteBuffer()
                buffer.writeYamuxHeader(header)
                XCTAssertEqual(buffer.readableBytes, 12)
                if type == .data { buffer.writeString("abc") }
                var decoder = YamuxFrameDecoder()
                decoder.append(buffer)
                XCTAssertEqual(try decoder.next(), .header(header))
                if type == .data {
                    XCTAssertEqual(try decoder.next(), .payload(ByteBuffer(string: "abc"), isLast: true))
                }
                XCTAssertNil(try decoder.next())
                XCTAssertFalse(decoder.isMidFrame)
            }
        }
    }

    func testWireLayoutIsBigEndian() {
        var buffer = ByteBuffer()
        buffer.writeYamuxHeader(.windowUpdate(YamuxStreamID(0x0102_0304), flags: [.syn, .fin], delta: 0x0A0B_0C0D))
        XCTAssertEqual(Array(buffer.readableBytesView), [0, 1, 0, 5, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D])
    }

    func testBadVersionIsRejectedWithOffset() {
        var decoder = YamuxFrameDecoder()
        var buffer = ByteBuffer()
        buffer.writeYamuxHeader(.ping(flags: .syn, opaque: 1))
        buffer.writeBytes([1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        decoder.append(buffer)
        XCTAssertNotNil(try decoder.next())
        XCTAssertThrowsError(try decoder.next()) { error in
            XCTAssertEqual(error as? YamuxError, YamuxError(.badVersion(1)))
            XCTAssertEqual((error as? YamuxError)?.offset, 12)
            XCTAssertTrue("\(error)".contains("bad version 1"))
        }
        // The decoder stays failed: no later frame is accepted after garbage.
        XCTAssertThrowsError(try decoder.next())
    }

    func testUnknownTypeIsRejected() {
        var decoder = YamuxFrameDecoder()
        decoder.append(ByteBuffer(bytes: [0, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]))
        XCTAssertThrowsError(try decoder.next()) { error in
            XCTAssertEqual(error as? YamuxError, YamuxError(.unknownFrameType(4)))
        }
    }

    func testOversizedDataLengthIsRejectedBeforeAnyPayload() {
        var decoder = YamuxFrameDecoder(maximumDataLength: 1024)
        var buffer = ByteBuffer()
        buffer.writeYamuxHeader(.data(YamuxStreamID(1), length: UInt32.max))
        decoder.append(buffer)
        XCTAssertThrowsError(try decoder.next()) { error in
            XCTAssertEqual(error as? YamuxError, YamuxError(.dataFrameTooLarge(length: UInt32.max, limit: 1024)))
        }
    }

    func testLengthOfNonDataFramesIsNotPayload() throws {
        var decoder = YamuxFrameDecoder(maximumDataLength: 16)
        var buffer = ByteBuffer()
        buffer.writeYamuxHeader(.windowUpdate(YamuxStreamID(1), delta: UInt32.max))
        buffer.writeYamuxHeader(.goAway(.protocolError))
        decoder.append(buffer)
        XCTAssertEqual(try decoder.next(), .header(.windowUpdate(YamuxStreamID(1), delta: UInt32.max)))
        XCTAssertEqual(try decoder.next(), .header(.goAway(.protocolError)))
        XCTAssertNil(try decoder.next())
    }

    /// Every split point of a stream of frames yields the same headers and the same payload bytes.
    func testEverySplitPointDecodesTheSame() throws {
        var wire = ByteBuffer()
        wire.writeYamuxHeader(.data(YamuxStreamID(1), flags: .syn, length: 5))
        wire.writeString("hello")
        wire.writeYamuxHeader(.ping(flags: .syn, opaque: 7))
        wire.writeYamuxHeader(.data(YamuxStreamID(3), flags: .fin, length: 3))
        wire.writeString("abc")
        let expected = try decodeAll([wire])
        XCTAssertEqual(expected.headers.count, 3)
        for split in 0...wire.readableBytes {
            let first = wire.getSlice(at: 0, length: split)!
            let second = wire.getSlice(at: split, length: wire.readableBytes - split)!
            let got = try decodeAll([first, second])
            XCTAssertEqual(got.headers, expected.headers, "split at \(split)")
            XCTAssertEqual(got.payload, expected.payload, "split at \(split)")
        }
        // One byte at a time, too.
        let bytes = (0..<wire.readableBytes).map { wire.getSlice(at: $0, length: 1)! }
        let got = try decodeAll(bytes)
        XCTAssertEqual(got.headers, expected.headers)
        XCTAssertEqual(got.payload, expected.payload)
    }

    func testTruncatedInputIsReportedAsMidFrame() throws {
        var decoder = YamuxFrameDecoder()
        var wire = ByteBuffer()
        wire.writeYamuxHeader(.data(YamuxStreamID(1), length: 10))
        wire.writeString("abc")
        decoder.append(wire)
        _ = try decoder.next()
        _ = try decoder.next()
        XCTAssertNil(try decoder.next())
        XCTAssertTrue(decoder.isMidFrame)
        XCTAssertEqual(decoder.bytesMissing, 7)

        var half = YamuxFrameDecoder()
        half.append(ByteBuffer(bytes: [0, 0, 0]))
        XCTAssertNil(try half.next())
        XCTAssertTrue(half.isMidFrame)
        XCTAssertEqual(half.bytesMissing, 9)
    }

    func testFlagNames() {
        XCTAssertEqual(YamuxFlags([.syn, .ack]).description, "SYN|ACK")
        XCTAssertEqual(YamuxFlags([]).description, "-")
        XCTAssertEqual(YamuxFlags(rawValue: 0x18).description, "RST|0x10")
    }

    private func decodeAll(_ chunks: [ByteBuffer]) throws -> (headers: [YamuxFrameHeader], payload: [UInt8]) {
        var decoder = YamuxFrameDecoder()
        var headers: [YamuxFrameHeader] = []
        var payload: [UInt8] = []
        for chunk in chunks {
            decoder.append(chunk)
            while let item = try decoder.next() {
                switch item {
                case .header(let header): headers.append(header)
                case .payload(let bytes, _): payload += Array(bytes.readableBytesView)
                }
            }
        }
        return (headers, payload)
    }
}
