import Foundation
import JSONText
import Logging
import Synchronization
import XCTest

@testable import CommandLineSupport

/// `--log-format json`: every line one JSON object a parser reads back exactly, whatever the
/// message holds.
final class JSONLogHandlerTests: XCTestCase {
    /// Logs through a real `Logger` into collected lines.
    private func logged(_ body: (inout Logger) -> Void) -> [String] {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "repeaterd") { label in
            JSONLogHandler(label: label, output: .lines({ line in lines.withLock { $0.append(line) } }), metadataProvider: nil)
        }
        logger.logLevel = .trace
        body(&logger)
        return lines.withLock { $0 }
    }

    private func object(_ line: String, file: StaticString = #filePath, line number: UInt = #line) throws -> [String: Any] {
        let parsed = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try XCTUnwrap(parsed as? [String: Any], "not an object: \(line)", file: file, line: number)
    }

    func testAMessageWithQuotesNewlinesControlsAndNonASCIIComesBackExactly() throws {
        let message = "client said \"hi\"\nthen \\ left\t\u{1}\u{7F} café 漢字 🚀 \u{2028}end"
        let lines = logged { $0.warning("\(message)", metadata: ["session": "7", "peer": "[::1]:4000 \"x\"\n"]) }
        XCTAssertEqual(lines.count, 1)
        XCTAssertFalse(lines[0].contains("\n"), "one line: \(lines[0])")
        let fields = try object(lines[0])
        XCTAssertEqual(fields["msg"] as? String, message)
        XCTAssertEqual(fields["level"] as? String, "warning")
        XCTAssertEqual(fields["logger"] as? String, "repeaterd")
        XCTAssertEqual(fields["session"] as? String, "7")
        XCTAssertEqual(fields["peer"] as? String, "[::1]:4000 \"x\"\n")
    }

    func testTimestampIsRFC3339InUTCWithMicroseconds() throws {
        let before = Date()
        let fields = try object(logged { $0.info("x") }[0])
        let ts = try XCTUnwrap(fields["ts"] as? String)
        XCTAssertNotNil(ts.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"#, options: .regularExpression), ts)
        let numbers = ts.split(whereSeparator: { "-T:.Z".contains($0) }).map { Int($0)! }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parsed = try XCTUnwrap(
            calendar.date(
                from: DateComponents(
                    year: numbers[0], month: numbers[1], day: numbers[2], hour: numbers[3], minute: numbers[4], second: numbers[5])))
        XCTAssertLessThan(abs(parsed.timeIntervalSince(before)), 5, "\(ts) is now")
        XCTAssertEqual(JSONText.rfc3339(secondsSinceEpoch: 0, microseconds: 0), "1970-01-01T00:00:00.000000Z")
        XCTAssertEqual(JSONText.rfc3339(secondsSinceEpoch: 1_796_300_436, microseconds: 7), "2026-12-03T12:20:36.000007Z")
        XCTAssertEqual(JSONText.rfc3339(secondsSinceEpoch: 1_709_208_059, microseconds: 999_999), "2024-02-29T12:00:59.999999Z")
    }

    func testMetadataFromTheLoggerAndTheLineNestedValuesAndFieldsItMayNotShadow() throws {
        struct Described: CustomStringConvertible, Sendable { var description: String { "described" } }
        let lines = logged { logger in
            logger[metadataKey: "link"] = "0"
            logger[metadataKey: "session"] = "from the logger"
            logger.error(
                "stream reset",
                metadata: [
                    "session": "from the line", "stream": .stringConvertible(Described()),
                    "window": ["sent": "1", "limit": ["262144", "16777216"]], "msg": "not the message", "ts": "not the time",
                ])
        }
        let fields = try object(lines[0])
        XCTAssertEqual(fields["msg"] as? String, "stream reset")
        XCTAssertEqual(fields["metadata.msg"] as? String, "not the message")
        XCTAssertEqual(fields["metadata.ts"] as? String, "not the time")
        XCTAssertNotEqual(fields["ts"] as? String, "not the time")
        XCTAssertEqual(fields["link"] as? String, "0")
        XCTAssertEqual(fields["session"] as? String, "from the line", "the line's metadata wins over the logger's")
        XCTAssertEqual(fields["stream"] as? String, "described")
        let window = try XCTUnwrap(fields["window"] as? [String: Any])
        XCTAssertEqual(window["sent"] as? String, "1")
        XCTAssertEqual(window["limit"] as? [String], ["262144", "16777216"])
    }

    /// Ids and counts logged as integers are JSON numbers (`jq 'select(.stream == 3)'`), the
    /// largest of each width exactly; the same digits written as a string stay a string.
    func testIntegersAreJSONNumbersAndStringsStayStrings() throws {
        let lines = logged { logger in
            logger.info(
                "x",
                metadata: [
                    "stream": .stringConvertible(UInt32(3)), "session": .stringConvertible(UInt64.max),
                    "attempts": .stringConvertible(-2), "closed": .stringConvertible(true), "link": "00012345",
                ])
        }
        XCTAssertTrue(lines[0].contains(#""stream":3"#) && lines[0].contains(#""session":18446744073709551615"#), lines[0])
        XCTAssertTrue(lines[0].contains(#""attempts":-2"#) && lines[0].contains(#""closed":true"#), lines[0])
        XCTAssertTrue(lines[0].contains(#""link":"00012345""#), lines[0])
    }

    func testAMetadataProviderAddsItsFields() throws {
        let lines = Mutex<[String]>([])
        let provider = Logger.MetadataProvider { ["request": "42"] }
        let logger = Logger(label: "runtime-manager") { label in
            JSONLogHandler(label: label, output: .lines({ line in lines.withLock { $0.append(line) } }), metadataProvider: provider)
        }
        logger.info("session started")
        let fields = try object(lines.withLock { $0[0] })
        XCTAssertEqual(fields["request"] as? String, "42")
        XCTAssertEqual(fields["msg"] as? String, "session started")
    }
}

/// The JSON writer alone: exact text, escapes, key order, numbers.
final class JSONLineTests: XCTestCase {
    func testExactTextWithSortedKeysNumbersNestingAndEscapes() {
        var line = JSONLine()
        line.writeObject([
            (key: "msg", value: .string("a \"quoted\" \\ line\n\t\u{1}\u{8}\u{C}\r / café 🚀")),
            (key: "bytes", value: .stringConvertible(302_481)),
            (key: "negative", value: .stringConvertible(-7)),
            (key: "big", value: .stringConvertible(UInt64.max)),
            (key: "flag", value: .stringConvertible(true)),
            (key: "ratio", value: .stringConvertible(0.5)),
            (key: "requests", value: .dictionary(["write_file": .stringConvertible(2), "read_file": .stringConvertible(1)])),
            (key: "limits", value: .array([.string("a"), .stringConvertible(3)])),
            (key: "empty", value: .dictionary([:])),
        ])
        XCTAssertEqual(
            line.text,
            #"{"big":18446744073709551615,"bytes":302481,"empty":{},"flag":true,"limits":["a",3],"#
                + #""msg":"a \"quoted\" \\ line\n\t\u0001\b\f\r / café 🚀","negative":-7,"ratio":"0.5","#
                + #""requests":{"read_file":1,"write_file":2}}"#)
    }

    func testEveryControlCharacterIsEscapedAndTheTextParsesBack() throws {
        let all = String(String.UnicodeScalarView((0..<0x80).compactMap(Unicode.Scalar.init)))
        var line = JSONLine()
        line.writeObject([(key: "all", value: .string(all))])
        XCTAssertFalse(line.text.unicodeScalars.contains { $0.value < 0x20 }, line.text)
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.text.utf8)) as? [String: String])
        XCTAssertEqual(parsed["all"], all)
    }
}
