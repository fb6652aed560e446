import TransportProtocol
import XCTest

/// The limit in a refusal reads in MiB, with one decimal when it is not whole (written without
/// Foundation's `String(format:)`).
final class TransportProtocolErrorTests: XCTestCase {
    func testTheLimitReadsInMebibytes() {
        let whole = "\(TransportProtocolError.messageTooLarge(length: 80 << 20, limit: 64 << 20))"
        XCTAssertTrue(whole.contains("(64 MiB)"), whole)
        let fraction = "\(TransportProtocolError.messageTooLarge(length: 80 << 20, limit: 3 << 19))"
        XCTAssertTrue(fraction.contains("(1.5 MiB)"), fraction)
        let rounded = "\(TransportProtocolError.messageTooLarge(length: 80 << 20, limit: 1_100_000))"
        XCTAssertTrue(rounded.contains("(1.0 MiB)"), rounded)
    }
}
