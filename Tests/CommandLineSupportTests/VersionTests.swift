import CommandLineSupport
import Foundation
import ProcessTestSupport
import XCTest

/// One version, written once (`RepeaterVersion`), printed by every binary; tools/package.sh
/// names the packages after what `repeaterd --version` says.
final class VersionTests: XCTestCase {
    func testEveryBinaryPrintsTheOneVersion() throws {
        XCTAssertNotNil(
            RepeaterVersion.current.range(of: #"^\d+\.\d+\.\d+$"#, options: .regularExpression),
            "a Debian-native version, MAJOR.MINOR.PATCH: \(RepeaterVersion.current)")
        for name in ["repeaterd", "runtime-manager", "runtime-client", "muxcat"] {
            let result = try runProcess(try Binaries.path(name), ["--version"])
            XCTAssertEqual(result.status, 0, "\(name): \(result.stderr)")
            XCTAssertEqual(result.stdout, "\(RepeaterVersion.current)\n", name)
        }
    }
}
