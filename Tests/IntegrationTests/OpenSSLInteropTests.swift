import Foundation
import NIOCore
import NIOPosix
import ProcessTestSupport
import RuntimeManager
import SwiftProtobuf
import Synchronization
import TransportProtocol
import XCTest

/// `openssl s_client` — a TLS stack this project did not write — against `--direct`.
final class OpenSSLInteropTests: XCTestCase {
    func testOpenSSLClientCompletesTheHandshakeAndGetsAnAnswer() async throws {
        let certs = TestCertificates.shared
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await DirectServer(certs.serverConfiguration(), group: group)
        try await assertOpenSSLClientGetsPolicyHash(port: server.port, expected: server.server.policy.sha256)
        XCTAssertTrue(server.logs.messages.contains { $0.contains("session started") })
        await server.stop()
        try await group.shutdownGracefully()
    }
}

/// Runs `openssl s_client` with client.pem against `port`, types a length-prefixed policy-hash
/// request into it, and checks the handshake report and the answer.
func assertOpenSSLClientGetsPolicyHash(
    port: Int, expected: [UInt8], file: StaticString = #filePath, line: UInt = #line
) async throws {
    let certs = TestCertificates.shared
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try Binaries.system("openssl", package: "openssl", file: file, line: line))
    process.arguments = [
        "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_3", "-brief",
        "-cert", certs.path("client.pem"), "-key", certs.path("client.key"), "-CAfile", certs.path("ca.pem"),
    ]
    let input = Pipe()
    let output = Pipe()
    let errors = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = errors
    try process.run()

    // A policy-hash request, framed by hand, typed into s_client.
    let request = try RuntimeManagerRequest.with {
        $0.context = 9
        $0.requestPolicyHash = .init()
    }
    .lengthPrefixedByteBuffer()
    input.fileHandleForWriting.write(Data(request.readableBytesView))

    // Read s_client's output until one whole response is there (or give up after 20 s).
    let received = ReceivedBytes()
    let reader = Thread {
        while true {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            received.append(chunk)
        }
    }
    reader.start()
    let deadline = Date().addingTimeInterval(20)
    var response: RuntimeManagerResponse?
    while response == nil, Date() < deadline {
        var frames = LengthPrefixFrameDecoder()
        frames.append(ByteBuffer(bytes: received.data))
        if let payload = try frames.nextPayload() {
            response = try RuntimeManagerResponse(payload: payload)
        } else {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
    }
    try input.fileHandleForWriting.close()
    let exited = Date().addingTimeInterval(10)
    while process.isRunning, Date() < exited { try await Task.sleep(nanoseconds: 20_000_000) }
    if process.isRunning { process.terminate() }
    let report = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)

    XCTAssertTrue(report.contains("CONNECTION ESTABLISHED"), report, file: file, line: line)
    XCTAssertTrue(report.contains("Protocol version: TLSv1.3"), report, file: file, line: line)
    XCTAssertTrue(report.contains("Verification: OK"), report, file: file, line: line)
    let answer = try XCTUnwrap(response, "no response through s_client; its report:\n\(report)", file: file, line: line)
    XCTAssertEqual(answer.status, .success, file: file, line: line)
    XCTAssertEqual(answer.context, 9, file: file, line: line)
    XCTAssertEqual(Array(answer.policyHash.data), expected, file: file, line: line)
}

final class ReceivedBytes: Sendable {
    private let bytes = Mutex(Data())
    func append(_ chunk: Data) { self.bytes.withLock { $0.append(chunk) } }
    var data: Data { self.bytes.withLock { $0 } }
}
