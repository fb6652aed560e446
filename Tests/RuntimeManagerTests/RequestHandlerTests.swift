import Foundation
import NIOCore
import ProcessTestSupport
import RuntimeManager
import SwiftProtobuf
import TransportProtocol
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
        var outcome = self.handle(self.client, context: 1) {
            $0.writeFile = .with {
                $0.fileName = "f"
                $0.data = Data("ab".utf8)
            }
        }
        XCTAssertEqual(outcome.response.status, .success)
        XCTAssertEqual(outcome.response.context, 1)
        outcome = self.handle(self.client, context: 2) {
            $0.appendFile = .with {
                $0.fileName = "f"
                $0.data = Data("c".utf8)
            }
        }
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
        let outcome = self.handle(self.reader) {
            $0.writeFile = .with {
                $0.fileName = "secret"
                $0.data = Data([1])
            }
        }
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
            self.handle(self.client) {
                $0.appendFile = .with {
                    $0.fileName = "nope"
                    $0.data = Data([1])
                }
            },
        ] {
            XCTAssertEqual(outcome.response.status, .failedGeneric)
            XCTAssertTrue(outcome.response.errorMessage?.contains("\"nope\"") ?? false, "\(outcome.response)")
        }
    }

    func testTheStoreLimitIsAnErrorWithAdviceAndReadsAreNotBoundByTheMessageLimit() {
        var outcome = self.handle(self.client) {
            $0.writeFile = .with {
                $0.fileName = "big"
                $0.data = Data(count: 1001)
            }
        }
        XCTAssertEqual(outcome.response.status, .failedGeneric)
        XCTAssertTrue(outcome.response.errorMessage?.contains("--max-store-bytes") ?? false)
        outcome = self.handle(self.client) {
            $0.writeFile = .with {
                $0.fileName = "big"
                $0.data = Data(count: 590)
            }
        }
        XCTAssertEqual(outcome.response.status, .success)
        // The message limit (600 here) is for requests: the read of a 590-byte file is answered
        // (sessions stream a file in slices, so no limit is needed for memory).
        outcome = self.handle(self.client) { $0.readFile = .with { $0.fileName = "big" } }
        XCTAssertEqual(outcome.response.status, .success)
        XCTAssertEqual(outcome.response.result.data.count, 590)
    }

    /// A staged request, as runtime-client's put sends it (protocol extension 1).
    private func staged(
        _ who: ClientIdentity, _ name: String, _ bytes: String, starting: Bool, commit: Bool, uploads: inout StagedUploads
    ) -> RequestOutcome {
        var request = RuntimeManagerRequest()
        let data = TransportProtocol_Data.with {
            $0.fileName = name
            $0.data = Data(bytes.utf8)
            $0.stage = true
            $0.commit = commit
        }
        if starting { request.writeFile = data } else { request.appendFile = data }
        return self.handler.handle(request, from: who, uploads: &uploads)
    }

    private func stored(_ name: String) -> String? {
        (try? self.handler.store.read(name)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Issue 42: staged chunks are not the file until the committing one; then the new content
    /// replaces the old whole, and the store counts each byte once.
    func testAStagedPutReplacesTheFileOnlyWhenItCommits() {
        XCTAssertEqual(
            self.handle(self.client) {
                $0.writeFile = .with {
                    $0.fileName = "f"
                    $0.data = Data("old".utf8)
                }
            }.response.status, .success)
        var uploads = StagedUploads()
        XCTAssertEqual(self.staged(self.client, "f", "new ", starting: true, commit: false, uploads: &uploads).response.status, .success)
        XCTAssertEqual(self.staged(self.client, "f", "and ", starting: false, commit: false, uploads: &uploads).response.status, .success)
        XCTAssertEqual(self.stored("f"), "old", "a put in progress is not visible")
        XCTAssertEqual(self.handler.store.totalBytes, 3 + 8, "staged bytes count against the limit")
        XCTAssertEqual(self.staged(self.client, "f", "more", starting: false, commit: true, uploads: &uploads).response.status, .success)
        XCTAssertEqual(self.stored("f"), "new and more")
        XCTAssertEqual(self.handler.store.totalBytes, 12)
        XCTAssertEqual(uploads.names, [])
        // After the commit the put is over: a further staged append has nothing to add to.
        let late = self.staged(self.client, "f", "x", starting: false, commit: true, uploads: &uploads)
        XCTAssertEqual(late.response.status, .failedGeneric)
        XCTAssertEqual(self.stored("f"), "new and more")
    }

    /// A session that ends before its commit (Ctrl-C, a lost link) gives its staged bytes back
    /// and leaves the file as it was; so does a chunk the store refuses, and the put's later
    /// chunks are refused.
    func testAPutThatDoesNotCommitLeavesTheStoredFileAsItWas() {
        XCTAssertEqual(
            self.handle(self.client) {
                $0.writeFile = .with {
                    $0.fileName = "f"
                    $0.data = Data("old".utf8)
                }
            }.response.status, .success)
        var uploads = StagedUploads()
        _ = self.staged(self.client, "f", String(repeating: "n", count: 500), starting: true, commit: false, uploads: &uploads)
        uploads.discardAll(store: self.handler.store)
        XCTAssertEqual(self.stored("f"), "old")
        XCTAssertEqual(self.handler.store.totalBytes, 3)

        // The store holds 1,000 bytes: 3 stored, 600 staged, then 600 more do not fit.
        XCTAssertEqual(
            self.staged(self.client, "f", String(repeating: "n", count: 500), starting: true, commit: false, uploads: &uploads).response
                .status, .success)
        let full = self.staged(self.client, "f", String(repeating: "n", count: 500), starting: false, commit: false, uploads: &uploads)
        XCTAssertEqual(full.response.status, .failedGeneric)
        XCTAssertTrue(full.response.errorMessage?.contains("the stored file is unchanged") ?? false, full.response.errorMessage ?? "")
        XCTAssertEqual(self.handler.store.totalBytes, 3, "the abandoned put's bytes are given back")
        let after = self.staged(self.client, "f", "tail", starting: false, commit: true, uploads: &uploads)
        XCTAssertTrue(after.response.errorMessage?.contains("no put of \"f\" is in progress") ?? false, after.response.errorMessage ?? "")
        XCTAssertEqual(self.stored("f"), "old")
    }

    /// Staging is a write: a client that may only read cannot stage, even by appends; the empty
    /// name is refused; a session has at most `maximumUploads` puts in progress.
    func testStagingNeedsWritePermissionANameAndHasABound() {
        var uploads = StagedUploads()
        XCTAssertEqual(
            self.staged(self.reader, "f", "x", starting: true, commit: true, uploads: &uploads).response.status, .failedInvalidRole)
        XCTAssertEqual(
            self.staged(self.reader, "f", "x", starting: false, commit: true, uploads: &uploads).response.status, .failedInvalidRole)
        let unnamed = self.staged(self.client, "", "x", starting: true, commit: true, uploads: &uploads)
        XCTAssertEqual(unnamed.response.status, .failedInvalidRequest)
        XCTAssertEqual(unnamed.response.errorMessage, "a file name must not be empty")
        XCTAssertEqual(
            self.handle(self.client) {
                $0.writeFile = .with {
                    $0.fileName = ""
                    $0.data = Data("x".utf8)
                }
            }.response.status, .failedInvalidRequest)
        for index in 0..<StagedUploads.maximumUploads {
            XCTAssertEqual(
                self.staged(self.client, "f\(index)", "x", starting: true, commit: false, uploads: &uploads).response.status, .success)
        }
        let over = self.staged(self.client, "one more", "x", starting: true, commit: false, uploads: &uploads)
        XCTAssertTrue(
            over.response.errorMessage?.contains("puts are in progress in this session already") ?? false, over.response.errorMessage ?? "")
        uploads.discardAll(store: self.handler.store)
        XCTAssertEqual(self.handler.store.totalBytes, 0)
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
