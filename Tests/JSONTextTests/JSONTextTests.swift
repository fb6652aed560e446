import JSONText
import XCTest

final class JSONTextTests: XCTestCase {
    func testValuesAreWrittenOnOneLineInTheOrderGiven() {
        let value = JSONValue.object([
            "state": .string("up"), "rtt_ms": .double(0.25), "streams": .int(3), "peer": .null, "draining": .bool(false),
            "events": .array([.object(["kind": .string("down")]), .int(-1)]),
        ])
        XCTAssertEqual(
            value.text,
            #"{"state":"up","rtt_ms":0.25,"streams":3,"peer":null,"draining":false,"events":[{"kind":"down"},-1]}"#)
    }

    func testNumbersJSONCannotHoldAreNull() {
        XCTAssertEqual(JSONValue.array([.double(.nan), .double(.infinity), .double(1e-5)]).text, "[null,null,1e-05]")
        XCTAssertEqual(JSONValue.optional(Int?.none, JSONValue.int).text, "null")
        XCTAssertEqual(JSONValue.optional(Int?.some(4), JSONValue.int).text, "4")
    }

    func testStringsAreEscapedAsRFC8259Requires() {
        let text = JSONValue.string("a\"b\\c\n\t\u{01}/é").text
        XCTAssertEqual(text, #""a\"b\\c\n\t\u0001/é""#)
        var appended = "x"
        JSONText.appendQuoted("q\"", to: &appended)
        XCTAssertEqual(appended, #"x"q\"""#)
    }

    func testRFC3339InUTCWithMicroseconds() {
        XCTAssertEqual(JSONText.rfc3339(secondsSinceEpoch: 0, microseconds: 0), "1970-01-01T00:00:00.000000Z")
        XCTAssertEqual(JSONText.rfc3339(secondsSinceEpoch: 1_796_300_436, microseconds: 7), "2026-12-03T12:20:36.000007Z")
    }
}
