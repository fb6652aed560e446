import XCTest

@testable import CommandLineSupport

/// The bar's line, alone: what `%3d%%  %.1f/%.1f MiB  %.1f MiB/s` printed, without Foundation.
final class ProgressBarTests: XCTestCase {
    func testTheLineReadsAsBefore() {
        let mib = 1024 * 1024
        XCTAssertEqual(
            ProgressBar.render(label: "put", done: 14_470_348, total: 32 * mib, elapsed: 1.12),
            "\rput [############..................]  43%  13.8/32.0 MiB  12.3 MiB/s ")
        XCTAssertEqual(
            ProgressBar.render(label: "get", done: 32 * mib, total: 32 * mib, elapsed: 2),
            "\rget [##############################] 100%  32.0/32.0 MiB  16.0 MiB/s ")
        XCTAssertEqual(
            ProgressBar.render(label: "put", done: 0, total: 8 * mib, elapsed: 0),
            "\rput [..............................]   0%  0.0/8.0 MiB  0.0 MiB/s ")
    }

    func testOneDecimalRounds() {
        XCTAssertEqual(ProgressBar.oneDecimal(0), "0.0")
        XCTAssertEqual(ProgressBar.oneDecimal(12.34), "12.3")
        XCTAssertEqual(ProgressBar.oneDecimal(12.36), "12.4")
        XCTAssertEqual(ProgressBar.oneDecimal(9.96), "10.0")
        XCTAssertEqual(ProgressBar.oneDecimal(1023.95), "1024.0")
    }
}
