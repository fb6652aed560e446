import Foundation
import NIOCore
import NIOPosix
import ProcessTestSupport
import RuntimeClient
import XCTest

/// `--server-name` against a real runtime manager (the name matching itself: RuntimeClientTests).
final class ServerNameOverTLSTests: XCTestCase {
    private let certs = TestCertificates.shared

    /// Over real TLS on loopback: a wrong name fails `connect` before any request goes out; the
    /// right one, and no name at all, work.
    func testConnectChecksTheNameOverRealTLS() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await DirectServer(self.certs.serverConfiguration(), group: group)

        var wrong = self.certs.client("client")
        wrong.serverName = "evil.example.com"
        do {
            let client = try await server.connect(wrong)
            await client.close()
            XCTFail("evil.example.com is not in the runtime manager's certificate")
        } catch let error as RuntimeClientError {
            guard case .serverNameMismatch(expected: "evil.example.com", _) = error else {
                return XCTFail("\(error)")
            }
        }

        for name in ["localhost", "127.0.0.1", nil] {
            var configuration = self.certs.client("client")
            configuration.serverName = name
            let client = try await server.connect(configuration)
            _ = try await client.policyHash()
            await client.close()
        }
        await server.stop()
    }
}
