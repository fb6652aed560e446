import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `muxcat connect` stands in for the repeater against this project's runtime manager: a stream
/// opens on a real link, and the runtime manager's TLS ServerHello answers a real ClientHello.
final class RuntimeManagerLinkTests: ProcessTestCase {
    func testConnectToARuntimeManagerLinkGetsATLSServerHello() throws {
        let certs = temporaryFile("certs")
        let generate = try start("/bin/bash", [Binaries.repository.appendingPathComponent("tools/gen-certs.sh").path, certs])
        XCTAssertEqual(generate.waitForExit(timeout: 30), 0)

        let linkPort = freePort()
        let manager = try start(
            try Binaries.path("runtime-manager"),
            [
                "--listen", "127.0.0.1:\(linkPort)", "--cert", "\(certs)/runtime-manager.pem",
                "--key", "\(certs)/runtime-manager.key", "--client-ca", "\(certs)/ca.pem",
                "--policy", "\(certs)/policy.json",
            ], name: "runtime-manager")
        manager.waitFor("accepting repeater links", onStderr: true)

        let clientHello = try captureClientHello()
        XCTAssertEqual(clientHello.first, 0x16, "openssl should have sent a TLS handshake record")

        let (status, output, stderr) = try runMuxcat(["connect", "127.0.0.1:\(linkPort)"], input: clientHello)
        XCTAssertEqual(status, 0, stderr)
        let reply = [UInt8](output)
        XCTAssertGreaterThan(reply.count, 6, "no answer through the link; muxcat said: \(stderr)")
        XCTAssertEqual(Array(reply.prefix(3)), [0x16, 0x03, 0x03], "the answer is not a TLS handshake record")
        XCTAssertEqual(reply.count > 5 ? reply[5] : 0, 0x02, "the first handshake message is not a ServerHello")
    }

    /// Runs `openssl s_client` against a plain socket of ours and keeps the first TLS record it sends.
    private func captureClientHello() throws -> Data {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(server) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let port = freePort()
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        var one: Int32 = 1
        setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(bound, 0)
        listen(server, 1)
        let openssl = try Binaries.system("openssl", package: "openssl")
        let client = try start(openssl, ["s_client", "-connect", "127.0.0.1:\(port)", "-tls1_3"], name: "openssl s_client")
        let connection = accept(server, nil, nil)
        defer { close(connection) }
        var header = [UInt8](repeating: 0, count: 5)
        XCTAssertEqual(recv(connection, &header, 5, Int32(MSG_WAITALL)), 5)
        let length = Int(header[3]) << 8 | Int(header[4])
        var body = [UInt8](repeating: 0, count: length)
        XCTAssertEqual(recv(connection, &body, length, Int32(MSG_WAITALL)), length)
        client.stop()
        return Data(header + body)
    }
}
