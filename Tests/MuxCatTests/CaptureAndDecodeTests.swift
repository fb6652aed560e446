import NIOCore
import ProcessTestSupport
import XCTest
import Yamux

@testable import MuxCat

/// Wire bytes of frames, for hand-made inputs.
func frameBytes(_ header: YamuxFrameHeader, payload: [UInt8] = []) -> [UInt8] {
    var buffer = ByteBuffer()
    buffer.writeYamuxHeader(header)
    buffer.writeBytes(payload)
    return Array(buffer.readableBytesView)
}

/// Runs the whole input through a decode run, split into `chunk`-byte pieces.
func decodeAll(_ bytes: [UInt8], chunk: Int = 7) -> (lines: [String], run: FrameDecodeRun) {
    var run = FrameDecodeRun()
    var lines: [String] = []
    var start = 0
    while start < bytes.count {
        let end = min(start + chunk, bytes.count)
        lines += run.feed(ByteBuffer(bytes: bytes[start..<end]))
        start = end
    }
    lines += run.finish()
    return (lines, run)
}

final class FrameReassemblerTests: XCTestCase {
    func testFramesComeOutWholeHoweverTheBytesAreSplit() {
        let frames = [
            frameBytes(.windowUpdate(YamuxStreamID(1), flags: .syn, delta: 0)),
            frameBytes(.data(YamuxStreamID(1), length: 5), payload: Array("hello".utf8)),
            frameBytes(.data(YamuxStreamID(1), flags: .fin, length: 0)),
            frameBytes(.ping(flags: .syn, opaque: 7)),
        ]
        let wire = frames.flatMap { $0 }
        for split in [1, 3, 12, 13, 100] {
            var reassembler = FrameReassembler()
            var pieces: [FrameReassembler.Piece] = []
            var start = 0
            while start < wire.count {
                let end = min(start + split, wire.count)
                pieces += reassembler.append(ByteBuffer(bytes: wire[start..<end]))
                start = end
            }
            XCTAssertNil(reassembler.finish())
            XCTAssertEqual(pieces, frames.map { .frame(ByteBuffer(bytes: $0)) }, "split \(split)")
        }
    }

    func testBytesAfterAMalformedHeaderAreUnframed() {
        var reassembler = FrameReassembler()
        let good = frameBytes(.ping(flags: .syn, opaque: 1))
        var bad = frameBytes(.ping(flags: .syn, opaque: 2))
        bad[0] = 1  // version 1
        let pieces = reassembler.append(ByteBuffer(bytes: good + bad))
        XCTAssertEqual(pieces, [.frame(ByteBuffer(bytes: good)), .unframed(ByteBuffer(bytes: bad))])
        XCTAssertEqual(reassembler.append(ByteBuffer(bytes: [1, 2, 3])), [.unframed(ByteBuffer(bytes: [1, 2, 3]))])
    }

    func testAPartialFrameAtTheEndIsUnframed() {
        var reassembler = FrameReassembler()
        let partial = Array(frameBytes(.data(YamuxStreamID(3), length: 10), payload: Array(repeating: 0x41, count: 10)).prefix(15))
        XCTAssertEqual(reassembler.append(ByteBuffer(bytes: partial)), [])
        XCTAssertEqual(reassembler.finish(), .unframed(ByteBuffer(bytes: partial)))
    }
}

final class CaptureFormatTests: XCTestCase {
    func testRecordsRoundTripThroughTheReaderByteByByte() throws {
        var file = ByteBuffer()
        CaptureFormat.writeFileHeader(role: .server, into: &file)
        let records = [
            CaptureRecord(
                direction: .received, link: 1, timestamp: 1_700_000_000_123_456,
                bytes: ByteBuffer(bytes: frameBytes(.ping(flags: .syn, opaque: 9)))),
            CaptureRecord(
                direction: .sent, unframed: true, link: 2, timestamp: 1_700_000_000_200_000, bytes: ByteBuffer(bytes: [0xFF, 0x00])),
        ]
        for record in records { CaptureFormat.writeRecord(record, into: &file) }
        XCTAssertEqual(Array(file.readableBytesView.prefix(8)), Array("\u{89}MUXCAP\n".unicodeScalars.map { UInt8($0.value) }))
        XCTAssertEqual(file.readableBytes, 12 + 18 + 12 + 18 + 2)

        var reader = CaptureReader()
        var items: [CaptureReader.Item] = []
        for byte in file.readableBytesView {
            reader.append(ByteBuffer(bytes: [byte]))
            while let item = try reader.next() { items.append(item) }
        }
        try reader.finish()
        XCTAssertEqual(items, [.fileHeader(role: .server), .record(records[0], bytesOffset: 30), .record(records[1], bytesOffset: 60)])
    }

    func testATruncatedRecordIsReportedWithItsOffset() throws {
        var file = ByteBuffer()
        CaptureFormat.writeFileHeader(role: .client, into: &file)
        CaptureFormat.writeRecord(
            CaptureRecord(direction: .sent, link: 1, timestamp: 0, bytes: ByteBuffer(bytes: frameBytes(.goAway(.normal)))),
            into: &file)
        var reader = CaptureReader()
        reader.append(file.getSlice(at: 0, length: file.readableBytes - 4)!)
        XCTAssertEqual(try reader.next(), .fileHeader(role: .client))
        XCTAssertNil(try reader.next())
        XCTAssertThrowsError(try reader.finish()) { error in
            XCTAssertEqual(
                "\(error)",
                "malformed capture file at byte offset 12: truncated record: 8 of its 12 frame bytes (was muxcat killed while writing?)")
        }
    }

    func testAnUnknownVersionIsRefused() {
        var file = ByteBuffer()
        CaptureFormat.writeFileHeader(role: .client, into: &file)
        file.setInteger(UInt8(9), at: 8)
        var reader = CaptureReader()
        reader.append(file)
        XCTAssertThrowsError(try reader.next()) { error in
            XCTAssertEqual(
                "\(error)",
                "malformed capture file at byte offset 8: capture format version 9 is not supported (this muxcat reads version 1)")
        }
    }
}

final class DecodeTests: XCTestCase {
    func testRawFramesBecomeOneLineEachAndASummary() {
        let input =
            frameBytes(.windowUpdate(YamuxStreamID(1), flags: .syn, delta: 262_144))
            + frameBytes(.data(YamuxStreamID(1), length: 6), payload: Array("hello\n".utf8))
            + frameBytes(.data(YamuxStreamID(1), flags: .fin, length: 0))
            + frameBytes(.windowUpdate(YamuxStreamID(3), flags: .syn, delta: 0))
            + frameBytes(.windowUpdate(YamuxStreamID(3), flags: .rst, delta: 0))
            + frameBytes(.ping(flags: .syn, opaque: 42))
            + frameBytes(.ping(flags: .ack, opaque: 42))
            + frameBytes(.goAway(.protocolError))
        let (lines, run) = decodeAll(input)
        XCTAssertFalse(run.failed)
        XCTAssertEqual(
            lines,
            [
                "@0      WINDOW_UPDATE flags=SYN     stream=1   delta=262144",
                "@12     DATA          flags=-       stream=1   length=6  68 65 6c 6c 6f 0a |hello.|",
                "@30     DATA          flags=FIN     stream=1   length=0",
                "@42     WINDOW_UPDATE flags=SYN     stream=3   delta=0",
                "@54     WINDOW_UPDATE flags=RST     stream=3   delta=0",
                "@66     PING          flags=SYN     stream=0   opaque=42",
                "@78     PING          flags=ACK     stream=0   opaque=42",
                "@90     GO_AWAY       flags=-       stream=0   code=1 (protocol error)",
            ])
        XCTAssertEqual(
            run.summary.lines,
            [
                "-- summary",
                "frames: 8 (2 DATA, 3 WINDOW_UPDATE, 2 PING, 1 GO_AWAY)",
                "streams: 2 opened, 1 finished (FIN), 1 reset, 0 without FIN (one direction only)",
                "  stream 1: 6 bytes; opened; finished (FIN)",
                "  stream 3: 0 bytes; opened; reset (RST)",
                "window updates: 3",
                "pings: 1 requests, 1 replies",
                "go away: code 1 (protocol error)",
            ])
    }

    func testLongPayloadsShowTheirFirstSixteenBytes() {
        let payload = Array(0..<40).map { UInt8($0) }
        let (lines, _) = decodeAll(frameBytes(.data(YamuxStreamID(5), flags: [.syn, .ack], length: 40), payload: payload), chunk: 5)
        XCTAssertEqual(
            lines,
            [
                "@0      DATA          flags=SYN|ACK stream=5   length=40  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f |................| ..."
            ])
    }

    func testBadVersion() {
        var input = frameBytes(.ping(flags: .syn, opaque: 1))
        input[0] = 1
        let (lines, run) = decodeAll(input)
        XCTAssertEqual(
            lines,
            [
                "ERROR: malformed frame at byte offset 0: bad version 1 (yamux v0 frames start with 0); the input is neither a muxcat capture (\\x89MUXCAP\\n) nor yamux frames"
            ])
        XCTAssertEqual(run.problems.map(\.offset), [0])
    }

    func testUnknownTypeAfterAGoodFrame() {
        var bad = frameBytes(.ping(flags: .syn, opaque: 1))
        bad[1] = 7
        let (lines, run) = decodeAll(frameBytes(.ping(flags: .syn, opaque: 1)) + bad)
        XCTAssertEqual(
            lines,
            [
                "@0      PING          flags=SYN     stream=0   opaque=1",
                "ERROR: malformed frame at byte offset 12: unknown frame type 7 (expected 0 DATA, 1 WINDOW_UPDATE, 2 PING or 3 GO_AWAY)",
            ])
        XCTAssertTrue(run.failed)
    }

    func testTruncatedHeader() {
        let input = frameBytes(.ping(flags: .syn, opaque: 1)) + [0, 0, 0, 0, 0]
        let (lines, run) = decodeAll(input)
        XCTAssertEqual(lines.last, "ERROR: truncated frame header at byte offset 12: 5 of 12 bytes before the end of input")
        XCTAssertEqual(run.problems.map(\.offset), [12])
    }

    func testTruncatedPayload() {
        let input = Array(frameBytes(.data(YamuxStreamID(1), length: 10), payload: Array(repeating: 0x61, count: 10)).prefix(15))
        let (lines, run) = decodeAll(input)
        XCTAssertEqual(
            lines,
            ["ERROR: truncated DATA payload in the frame at byte offset 0 (stream 1): 3 of 10 bytes before the end of input"])
        XCTAssertTrue(run.failed)
    }

    func testACaptureShowsTimeLinkAndDirection() {
        var file = ByteBuffer()
        CaptureFormat.writeFileHeader(role: .server, into: &file)
        let t0: UInt64 = 1_767_225_600_000_000 + 3_723_000_042  // 2026-01-01 01:02:03.000042 UTC
        let frames: [(CaptureDirection, [UInt8])] = [
            (.received, frameBytes(.windowUpdate(YamuxStreamID(1), flags: .syn, delta: 0))),
            (.sent, frameBytes(.windowUpdate(YamuxStreamID(1), flags: .ack, delta: 0))),
            (.received, frameBytes(.data(YamuxStreamID(1), flags: .fin, length: 2), payload: [0x68, 0x69])),
            (.sent, frameBytes(.data(YamuxStreamID(1), flags: .fin, length: 2), payload: [0x68, 0x69])),
        ]
        for (index, (direction, bytes)) in frames.enumerated() {
            CaptureFormat.writeRecord(
                CaptureRecord(direction: direction, link: 1, timestamp: t0 + UInt64(index) * 1000, bytes: ByteBuffer(bytes: bytes)),
                into: &file)
        }
        let (lines, run) = decodeAll(Array(file.readableBytesView), chunk: 11)
        XCTAssertFalse(run.failed)
        XCTAssertEqual(
            lines,
            [
                "# muxcat capture written by muxcat listen (yamux server, the runtime manager's side); \"in\" = received by it, \"out\" = sent by it",
                "01:02:03.000042 link 1 in  @30     WINDOW_UPDATE flags=SYN     stream=1   delta=0",
                "01:02:03.001042 link 1 out @60     WINDOW_UPDATE flags=ACK     stream=1   delta=0",
                "01:02:03.002042 link 1 in  @90     DATA          flags=FIN     stream=1   length=2  68 69 |hi|",
                "01:02:03.003042 link 1 out @122    DATA          flags=FIN     stream=1   length=2  68 69 |hi|",
            ])
        XCTAssertEqual(
            run.summary.lines,
            [
                "-- summary",
                "frames: 4 (2 DATA, 2 WINDOW_UPDATE, 0 PING, 0 GO_AWAY)",
                "time: 2026-01-01 01:02:03 UTC to 2026-01-01 01:02:03 UTC (0.003 s)",
                "links: 1",
                "streams: 1 opened, 1 closed (FIN both ways), 0 reset, 0 still open",
                "  link 1 stream 1: 2 bytes in, 2 bytes out; opened in; closed (FIN both ways)",
                "window updates: 2 (1 in, 1 out)",
                "pings: 0 requests, 0 replies",
                "go away: none",
            ])
    }

    func testUnframedCaptureRecordsSayWhatWasWrong() {
        var file = ByteBuffer()
        CaptureFormat.writeFileHeader(role: .server, into: &file)
        CaptureFormat.writeRecord(
            CaptureRecord(direction: .received, unframed: true, link: 2, timestamp: 0, bytes: ByteBuffer(string: "GET / HTTP/1.1\r\n")),
            into: &file)
        let partial = Array(frameBytes(.data(YamuxStreamID(1), length: 100)).prefix(12)) + [1, 2, 3]
        CaptureFormat.writeRecord(
            CaptureRecord(direction: .sent, unframed: true, link: 2, timestamp: 0, bytes: ByteBuffer(bytes: partial)),
            into: &file)
        let (lines, run) = decodeAll(Array(file.readableBytesView))
        XCTAssertEqual(
            Array(lines.dropFirst()),
            [
                "ERROR: malformed frame at byte offset 30: bad version 71 (yamux v0 frames start with 0) (link 2 in)",
                "ERROR: truncated DATA payload in the frame at byte offset 64 (stream 1): 3 of 100 bytes before the end of input (link 2 out; the link closed mid-frame)",
            ])
        XCTAssertEqual(run.problems.count, 2)
    }
}

final class FormattingTests: XCTestCase {
    func testTextChunksAreMarkedLineByLine() {
        var formatter = ChunkFormatter(link: 1, stream: 3, forceHex: false)
        XCTAssertEqual(formatter.format(ByteBuffer(string: "hello\nworld")), "[link 1 stream 3] hello\n[link 1 stream 3] world\n")
        XCTAssertEqual(formatter.format(ByteBuffer(string: "tab\there\r\n")), "[link 1 stream 3] tab\there\r\n")
        XCTAssertEqual(formatter.streamOffset, 21)
    }

    func testBinaryChunksAreDumpedWithStreamOffsets() {
        var formatter = ChunkFormatter(link: 2, stream: 1, forceHex: false)
        _ = formatter.format(ByteBuffer(string: "0123456789"))
        let dump = formatter.format(ByteBuffer(bytes: [0x16, 0x03, 0x01] + Array("abcdefghijklmnop".utf8)))
        XCTAssertEqual(
            dump,
            "[link 2 stream 1] 0000000a  16 03 01 61 62 63 64 65  66 67 68 69 6a 6b 6c 6d  |...abcdefghijklm|\n"
                + "[link 2 stream 1] 0000001a  6e 6f 70                                          |nop|\n"
                + "[link 2 stream 1] 0000001d\n")
        XCTAssertEqual(formatter.streamOffset, 0x1d)
    }

    func testHexIsForcedWhenAsked() {
        var formatter = ChunkFormatter(link: 1, stream: 1, forceHex: true)
        XCTAssertEqual(
            formatter.format(ByteBuffer(string: "hi")),
            "[link 1 stream 1] 00000000  68 69                                             |hi|\n[link 1 stream 1] 00000002\n")
    }

    func testInvalidUTF8IsNotText() {
        XCTAssertNil(ChunkFormatter.printableText([0xC3]))
        XCTAssertEqual(ChunkFormatter.printableText(Array("héllo".utf8)), "héllo")
        XCTAssertNil(ChunkFormatter.printableText([0x1B, 0x5B]))
    }

    func testStreamCloseLines() {
        var tally = StreamTally(link: 1, stream: YamuxStreamID(5))
        tally.bytesIn = 10
        tally.bytesOut = 10
        tally.finishedLocally = true
        tally.peerFinished = true
        XCTAssertEqual(tally.closedLine, "link 1 stream 5: closed, 10 bytes in, 10 bytes out, closed cleanly (FIN sent, FIN received)")
        tally.failed(YamuxError(.streamReset(stream: YamuxStreamID(5))))
        tally.failed(YamuxError(.linkClosed))
        XCTAssertEqual(tally.closedLine, "link 1 stream 5: closed, 10 bytes in, 10 bytes out, reset (RST)")
    }

    func testSYNsOutOfIdOrderAreAccepted() {
        // Go's yamux sends SYNs from concurrent goroutines: 77 may come before 19.
        var session = YamuxSessionStateMachine<Void>(role: .server)
        for id: UInt32 in [1, 77, 19] {
            guard case .stream(let event) = session.receive(.windowUpdate(YamuxStreamID(id), flags: .syn, delta: 0)) else {
                return XCTFail("SYN for stream \(id) was not accepted")
            }
            XCTAssertTrue(event.opened)
        }
        guard case .sessionError = session.receive(.windowUpdate(YamuxStreamID(19), flags: .syn, delta: 0)) else {
            return XCTFail("a SYN for a stream in use must still be a protocol error")
        }
    }
}
