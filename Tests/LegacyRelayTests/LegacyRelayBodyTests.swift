import Foundation
import LegacyRelay
import NIOCore
import XCTest

final class LegacyRelayBodyTests: XCTestCase {
    private func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    func testBase64MatchesFoundationForEveryLengthAndDecodesBack() throws {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var encoded = ByteBuffer()
            Base64.encode(ByteBuffer(bytes: bytes), into: &encoded)
            XCTAssertEqual(String(buffer: encoded), Data(bytes).base64EncodedString(), "length \(length)")
            let decoded = try Base64.decode(encoded.readableBytesView)
            XCTAssertEqual(Array(decoded.readableBytesView), bytes, "length \(length)")
        }
    }

    func testBase64AcceptsMissingPaddingAndRefusesStrayBytes() throws {
        XCTAssertEqual(String(buffer: try Base64.decode(buffer("aGk").readableBytesView)), "hi")
        XCTAssertEqual(String(buffer: try Base64.decode(buffer("aGk=").readableBytesView)), "hi")
        XCTAssertThrowsError(try Base64.decode(buffer("aG*k").readableBytesView)) { error in
            XCTAssertEqual(error as? Base64.DecodeError, .invalidCharacter(UInt8(ascii: "*"), offset: 2))
        }
        XCTAssertThrowsError(try Base64.decode(buffer("aGk=aGk=").readableBytesView), "padding only at the end") { error in
            XCTAssertEqual(error as? Base64.DecodeError, .invalidCharacter(UInt8(ascii: "="), offset: 3))
        }
        XCTAssertThrowsError(try Base64.decode(buffer("aGk\naGk=").readableBytesView)) { error in
            XCTAssertEqual(error as? Base64.DecodeError, .invalidCharacter(UInt8(ascii: "\n"), offset: 3))
        }
        XCTAssertEqual(String(buffer: try Base64.decode(buffer("aA==").readableBytesView)), "h")
        XCTAssertEqual(String(buffer: try Base64.decode(buffer("aA").readableBytesView)), "h")
        XCTAssertEqual(try Base64.decode(buffer("").readableBytesView).readableBytes, 0)
        XCTAssertThrowsError(try Base64.decode(buffer("aGkab").readableBytesView)) { error in
            XCTAssertEqual(error as? Base64.DecodeError, .truncated(length: 5))
        }
    }

    func testRequestRoundTrip() throws {
        let payload = ByteBuffer(bytes: (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let request = LegacyRelayRequest(sessionID: 4_000_000_000, payload: payload)
        var body = ByteBuffer()
        request.encode(into: &body)
        XCTAssertTrue(String(buffer: body).hasPrefix("4000000000 "))
        XCTAssertEqual(try LegacyRelayRequest(parsing: body), request)
    }

    func testNewSessionAndPollForms() throws {
        let opening = try LegacyRelayRequest(parsing: buffer("0 aGVsbG8="))
        XCTAssertTrue(opening.opensSession)
        XCTAssertEqual(String(buffer: opening.payload), "hello")
        for poll in ["42", "42 ", "42 \r\n", "42\n"] {
            let request = try LegacyRelayRequest(parsing: buffer(poll))
            XCTAssertEqual(request.sessionID, 42, "\(poll.debugDescription)")
            XCTAssertEqual(request.payload.readableBytes, 0, "\(poll.debugDescription) is a poll")
        }
        XCTAssertEqual(String(buffer: try LegacyRelayRequest(parsing: buffer("7 aGk=\n")).payload), "hi", "curl -d @file adds a newline")
    }

    func testResponseRoundTripWithNoneOneAndSeveralChunks() throws {
        for chunkCount in [0, 1, 3] {
            let chunks = (0..<chunkCount).map { index in
                ByteBuffer(bytes: (0..<(100 + index * 17)).map { UInt8(truncatingIfNeeded: $0 + index) })
            }
            let response = LegacyRelayResponse(sessionID: 9, chunks: chunks)
            var body = ByteBuffer()
            response.encode(into: &body)
            XCTAssertEqual(body.readableBytes, response.encodedLength)
            XCTAssertEqual(String(buffer: body).split(separator: " ").count, 1 + chunkCount)
            XCTAssertEqual(try LegacyRelayResponse(parsing: body), response)
        }
        var empty = ByteBuffer()
        LegacyRelayResponse(sessionID: 12, chunks: []).encode(into: &empty)
        XCTAssertEqual(String(buffer: empty), "12", "no chunks: only the session id")
    }

    func testMalformedRequestsSayWhatWasExpected() {
        let cases: [(String, String)] = [
            ("", "empty"),
            ("   \n", "empty"),
            ("abc aGk=", "not a decimal number"),
            ("-1 aGk=", "not a decimal number"),
            ("4294967296 aGk=", "not a decimal number"),
            ("12345678901234567890123 aGk=", "not a decimal number"),
            ("5 aG!k", "not base64"),
            ("5 aGkab", "cut off"),
            ("5 aGk= aGk=", "3 space-separated fields"),
            ("5  aGk=", "two spaces in a row"),
            (" 5 aGk=", "leading space"),
        ]
        for (body, expected) in cases {
            XCTAssertThrowsError(try LegacyRelayRequest(parsing: buffer(body)), "\(body.debugDescription)") { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix("malformed relay body: "), text)
                XCTAssertTrue(text.contains(expected), "\(body.debugDescription): \(text)")
            }
        }
    }
}
