import Foundation
import NIOCore
import RuntimeManager
import SwiftProtobuf
import TransportProtocol
import ProcessTestSupport
import XCTest

/// The runtime manager's behaviour by plain calls, without TLS or sockets.
final class RequestHandlerTests: XCTestCase {
    private let client = ClientIdentity(sha256Fingerprint: String(repeating: "a", count: 64), commonName: "client")
    private let reader = ClientIdentity(sha256Fingerprint: String(repeating: "b", count: 64), commonName: "reader")
    private var handler: RequestHandler!

    override func setUpWithError() throws {
        let policy = try Policy(contentsOf: TestCertificates.shared.path("policy.json"))
        self.handler = RequestHandler(store: FileStore(maximumTotalBytes: 1000), policy: policy, maximumMessageBytes: 600)
    }

    private func handle(
        _ who: ClientIdentity, context: UInt32 = 77, _ fill: (inout RuntimeManagerRequest) -> Void
    ) -> RequestOutcome {
        var request = RuntimeManagerRequest()
        request.context = context
        fill(&request)
        return self.handler.handle(request, from: who)
    }

    func testWriteAppendReadHashRoundTripEchoesContext() {
        var outcome = self.handle(self.client, context: 1) { $0.writeFile = .with { $0.fileName = "f"; $0.data = Data("ab".utf8) } }
        XCTAssertEqual(outcome.response.status, .success)
        XCTAssertEqual(outcome.response.context, 1)
        outcome = self.handle(self.client, context: 2) { $0.appendFile = .with { $0.fileName = "f"; $0.data = Data("c".utf8) } }
        XCTAssertEqual(outcome.response.status, .success)
        XCTAssertEqual(outcome.response.context, 2)
        outcome = self.handle(self.reader, context: 3) { $0.readFile = .with { $0.fileName = "f" } }
        XCTAssertEqual(outcome.response.status, .success)
        XCTAssertEqual(outcome.response.context, 3)
        XCTAssertEqual(outcome.response.result.data, Data("abc".utf8))
        outcome = self.handle(self.reader, context: 4) { $0.requestPiHash = .with { $0.fileName = "f" } }
        XCTAssertEqual(outcome.response.status, .success)
        // SHA-256("abc"), the FIPS 180-2 test vector.
        XCTAssertEqual(
            outcome.response.piHash.data.map { String(format: "%02x", $0) }.joined(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
        XCTAssertFalse(outcome.shutdownRequested)
    }

    func testDenialsAreInvalidRoleWithAMessage() {
        let outcome = self.handle(self.reader) { $0.writeFile = .with { $0.fileName = "secret"; $0.data = Data([1]) } }
        XCTAssertEqual(outcome.response.status, .failedInvalidRole)
        XCTAssertEqual(outcome.response.context, 77)
        let message = outcome.response.errorMessage ?? ""
        XCTAssertTrue(message.contains("CN=reader") && message.contains("write \"secret\""), message)
        XCTAssertEqual(self.handle(self.reader) { $0.appendFile = .with { $0.fileName = "x" } }.response.status, .failedInvalidRole)
        let shutdown = self.handle(self.reader) { $0.requestShutdown = .init() }
        XCTAssertEqual(shutdown.response.status, .failedInvalidRole)
        XCTAssertFalse(shutdown.shutdownRequested)
    }

    func testMissingFileIsAnErrorStatusWithAMessage() {
        for outcome in [
            self.handle(self.client) { $0.readFile = .with { $0.fileName = "nope" } },
            self.handle(self.client) { $0.requestPiHash = .with { $0.fileName = "nope" } },
            self.handle(self.client) { $0.appendFile = .with { $0.fileName = "nope"; $0.data = Data([1]) } },
        ] {
            XCTAssertEqual(outcome.response.status, .failedGeneric)
            XCTAssertTrue(outcome.response.errorMessage?.contains("\"nope\"") ?? false, "\(outcome.response)")
        }
    }

    func testStoreLimitAndResponseSizeLimitAreErrorsWithAdvice() {
        var outcome = self.handle(self.client) { $0.writeFile = .with { $0.fileName = "big"; $0.data = Data(count: 1001) } }
        XCTAssertEqual(outcome.response.status, .failedGeneric)
        XCTAssertTrue(outcome.response.errorMessage?.contains("--max-store-bytes") ?? false)
        outcome = self.handle(self.client) { $0.writeFile = .with { $0.fileName = "big"; $0.data = Data(count: 590) } }
        XCTAssertEqual(outcome.response.status, .success)
        outcome = self.handle(self.client) { $0.readFile = .with { $0.fileName = "big" } }
        XCTAssertEqual(outcome.response.status, .failedGeneric)
        XCTAssertTrue(outcome.response.errorMessage?.contains("too large for one response") ?? false)
    }

    func testPolicyHashIsAnsweredToAnyAdmittedClient() throws {
        let outcome = self.handle(self.reader) { $0.requestPolicyHash = .init() }
        XCTAssertEqual(outcome.response.status, .success)
        XCTAssertEqual(Array(outcome.response.policyHash.data), self.handler.policy.sha256)
        XCTAssertEqual(outcome.response.policyHash.data.count, 32)
    }

    func testAuthorizedShutdownSucceedsAndAsksTheSessionToShutDown() {
        let outcome = self.handle(self.client) { $0.requestShutdown = .init() }
        XCTAssertEqual(outcome.response.status, .success)
        XCTAssertTrue(outcome.shutdownRequested)
    }

    func testRequestResultIsInvalidRequestExplainingWhy() {
        let outcome = self.handle(self.client) { $0.requestResult = .with { $0.fileName = "prog.wasm" } }
        XCTAssertEqual(outcome.response.status, .failedInvalidRequest)
        XCTAssertTrue(outcome.response.errorMessage?.contains("program execution is not part of this system") ?? false)
    }

    func testUnsetAndUnknownRequestsAreInvalidRequests() throws {
        XCTAssertEqual(self.handle(self.client) { _ in }.response.status, .failedInvalidRequest)
        let unknown = try RuntimeManagerRequest(payload: ByteBuffer(bytes: [0x08, 0x05, 0x32, 0x00]))
        let outcome = self.handler.handle(unknown, from: self.client)
        XCTAssertEqual(outcome.response.status, .failedInvalidRequest)
        XCTAssertEqual(outcome.response.context, 5)
        XCTAssertNotNil(outcome.response.errorMessage)
    }
}
