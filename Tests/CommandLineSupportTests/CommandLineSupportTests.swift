import ArgumentParser
import CommandLineSupport
import NIOCore
import XCTest
import YamuxLink

/// What every command line shares: seconds, range checks and addresses, refused in one line
/// that names the option.
final class CommandLineSupportTests: XCTestCase {
    func testSecondsTakeFractionsAndZeroMeansOff() {
        XCTAssertEqual(CommandLineSupport.seconds(1.5), .milliseconds(1500))
        XCTAssertEqual(CommandLineSupport.seconds(0.000_000_001), .nanoseconds(1))
        XCTAssertNil(CommandLineSupport.secondsOrOff(0))
        XCTAssertEqual(CommandLineSupport.secondsOrOff(30), .seconds(30))
    }

    func testRangeChecksNameTheOptionTheRangeAndTheValue() {
        XCTAssertNoThrow(try OptionRange.check("--max-sessions", 1, atLeast: 1))
        XCTAssertThrowsError(try OptionRange.check("--max-sessions", -1, atLeast: 1)) { error in
            XCTAssertEqual((error as? ValidationError)?.message, "--max-sessions must be at least 1, got -1")
        }
        XCTAssertThrowsError(try OptionRange.checkSecondsAboveZero("--drain-timeout", 0)) { error in
            XCTAssertEqual((error as? ValidationError)?.message, "--drain-timeout must be a number of seconds above 0, got 0")
        }
        XCTAssertThrowsError(try OptionRange.checkSecondsAboveZero("--drain-timeout", .infinity))
        XCTAssertNoThrow(try OptionRange.checkSecondsFromZero("--idle-timeout", 0, zeroMeans: "turns it off"))
        XCTAssertThrowsError(try OptionRange.checkSecondsFromZero("--idle-timeout", -2, zeroMeans: "turns it off")) { error in
            XCTAssertEqual(
                (error as? ValidationError)?.message, "--idle-timeout must be a number of seconds from 0 on (0 turns it off), got -2")
        }
    }

    func testTCPOnlyOptionsRefuseAUnixSocket() {
        XCTAssertEqual(try LinkAddress.parseTCPArgument("127.0.0.1:3011").hostAndPort?.port, 3011)
        XCTAssertThrowsError(try LinkAddress.parseTCPArgument("unix:/tmp/x.sock")) { error in
            XCTAssertEqual(
                (error as? ValidationError)?.message, "invalid address 'unix:/tmp/x.sock': expected HOST:PORT (TCP), e.g. 127.0.0.1:3011")
        }
        XCTAssertThrowsError(try LinkAddress.parseArgument("nonsense"))
    }
}
