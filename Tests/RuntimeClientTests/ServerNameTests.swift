import Foundation
import NIOCore
import NIOSSL
import ProcessTestSupport
import RuntimeClient
import XCTest

/// `--server-name`: the runtime manager's certificate (from tools/gen-certs.sh: DNS localhost,
/// IP 127.0.0.1 and ::1) must be for the name given, whatever address the socket reached.
final class ServerNameTests: XCTestCase {
    private let certs = TestCertificates.shared

    private func leaf() throws -> NIOSSLCertificate {
        try NIOSSLCertificate.fromPEMFile(self.certs.path("runtime-manager.pem"))[0]
    }

    func testNamesTheCertificateCarriesPass() async throws {
        for name in ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "::1", "0:0:0:0:0:0:0:1"] {
            do {
                try await ServerNameCheck(serverName: name).verify(leafCertificate: try self.leaf())
            } catch {
                XCTFail("\(name) is in the certificate: \(error)")
            }
        }
    }

    /// Before the fix every one of these passed on loopback: NIOSSL matched the certificate's
    /// 127.0.0.1 against the socket's address instead of the name.
    func testNamesTheCertificateDoesNotCarryFailWithWhatItNames() async throws {
        for name in ["evil.example.com", "notlocalhost", "local", "x.localhost", "10.0.0.1", "127.0.0.2", "::2"] {
            do {
                try await ServerNameCheck(serverName: name).verify(leafCertificate: try self.leaf())
                XCTFail("\(name) is not in the certificate")
            } catch let error as RuntimeClientError {
                XCTAssertEqual(
                    "\(error)",
                    "the runtime manager's certificate is not for \"\(name)\" (it names localhost, 127.0.0.1, 0:0:0:0:0:0:0:1); "
                        + "pass one of those to --server-name, or leave it out to check only the CA (--ca)"
                )
            }
        }
    }

    func testAnIPLiteralIsNotSentAsSNI() {
        XCTAssertNil(ServerNameCheck(serverName: "127.0.0.1").indicatedName)
        XCTAssertNil(ServerNameCheck(serverName: "::1").indicatedName)
        XCTAssertEqual(ServerNameCheck(serverName: "localhost").indicatedName, "localhost")
    }
}
