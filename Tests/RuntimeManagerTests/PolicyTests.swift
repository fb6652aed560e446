import Foundation
import NIOSSL
import ProcessTestSupport
import RuntimeManager
import XCTest

final class PolicyTests: XCTestCase {
    private let client = ClientIdentity(sha256Fingerprint: String(repeating: "a", count: 64), commonName: "client")
    private let reader = ClientIdentity(sha256Fingerprint: String(repeating: "b", count: 64), commonName: "reader")

    private func policy(_ json: String) throws -> Policy {
        try Policy(jsonBytes: Array(json.utf8))
    }

    private func assertInvalid(_ json: String, mentions needle: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try self.policy(json), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(needle), "\"\(error)\" does not mention \(needle)", file: file, line: line)
        }
    }

    func testGeneratedPolicyGrantsClientEverythingAndReaderOnlyReads() throws {
        let path = TestCertificates.shared.path("policy.json")
        let policy = try Policy(contentsOf: path)
        for action: Policy.Action in [.write("a"), .append("x/y"), .read(""), .shutdown] {
            XCTAssertTrue(policy.permits(action, for: self.client), "client may \(action)")
        }
        XCTAssertTrue(policy.permits(.read("anything"), for: self.reader))
        for action: Policy.Action in [.write("a"), .append("a"), .shutdown] {
            XCTAssertFalse(policy.permits(action, for: self.reader), "reader may not \(action)")
        }
        let stranger = ClientIdentity(sha256Fingerprint: String(repeating: "c", count: 64), commonName: "mallory")
        XCTAssertFalse(policy.permits(.read("a"), for: stranger))
    }

    func testHashIsSHA256OfTheFileBytes() throws {
        let path = TestCertificates.shared.path("policy.json")
        let policy = try Policy(contentsOf: path)
        let expected = try runProcess("/usr/bin/sha256sum", [path]).stdout.prefix(64)
        XCTAssertEqual(policy.sha256.map { String(format: "%02x", $0) }.joined(), String(expected))
    }

    func testPathPrefixesAndGrantsOfSeveralRulesAddUp() throws {
        let policy = try self.policy(
            """
            {"rules": [
              {"match": {"common_name": "client"}, "write": ["inputs/"], "read": ["outputs/"]},
              {"match": {"sha256": "\(String(repeating: "A", count: 64))"}, "read": ["inputs/"]}
            ]}
            """
        )
        XCTAssertTrue(policy.permits(.write("inputs/a.csv"), for: self.client))
        XCTAssertFalse(policy.permits(.write("inputs"), for: self.client))
        XCTAssertFalse(policy.permits(.write("outputs/a"), for: self.client))
        XCTAssertTrue(policy.permits(.read("outputs/r"), for: self.client))
        // Second rule matches the same client by fingerprint (case-insensitive).
        XCTAssertTrue(policy.permits(.read("inputs/a.csv"), for: self.client))
        XCTAssertFalse(policy.permits(.append("inputs/a.csv"), for: self.client))
        XCTAssertFalse(policy.permits(.shutdown, for: self.client))
    }

    func testCommonNameAndFingerprintMustBothMatchWhenBothAreGiven() throws {
        let policy = try self.policy(
            """
            {"rules": [{"match": {"common_name": "client", "sha256": "\(String(repeating: "b", count: 64))"}, "read": [""]}]}
            """
        )
        XCTAssertFalse(policy.permits(.read("f"), for: self.client), "CN matches, fingerprint does not")
        XCTAssertFalse(policy.permits(.read("f"), for: self.reader), "fingerprint matches, CN does not")
        let both = ClientIdentity(sha256Fingerprint: String(repeating: "b", count: 64), commonName: "client")
        XCTAssertTrue(policy.permits(.read("f"), for: both))
    }

    func testFingerprintAsPrintedByOpenSSLMatchesTheIdentityOfTheCertificate() throws {
        let certs = TestCertificates.shared
        let printed = try runProcess(
            try Binaries.system("openssl", package: "openssl"),
            ["x509", "-in", certs.path("reader.pem"), "-noout", "-fingerprint", "-sha256"]
        ).stdout
        // "sha256 Fingerprint=AB:CD:…" (the label's case depends on the OpenSSL version)
        let fingerprint = String(printed.split(separator: "=").last!).trimmingCharacters(in: .whitespacesAndNewlines)
        let policy = try self.policy(#"{"rules": [{"match": {"sha256": "\#(fingerprint)"}, "read": ["r/"]}]}"#)
        let certificate = try NIOSSLCertificate.fromPEMFile(certs.path("reader.pem"))[0]
        let identity = try ClientIdentity(certificate: certificate)
        XCTAssertEqual(identity.commonName, "reader")
        XCTAssertTrue(policy.permits(.read("r/x"), for: identity))
        let other = try ClientIdentity(certificate: try NIOSSLCertificate.fromPEMFile(certs.path("client.pem"))[0])
        XCTAssertFalse(policy.permits(.read("r/x"), for: other))
    }

    func testTyposAndMistakesAreRefusedWithTheirPlace() {
        self.assertInvalid(#"{"rules": [{"match": {"common_name": "c"}, "raed": [""]}]}"#, mentions: "raed")
        self.assertInvalid(#"{"rules": [{"match": {"common_name": "c"}, "raed": [""]}]}"#, mentions: "rules[0]")
        self.assertInvalid(#"{"rules": [{"match": {"cn": "c"}}]}"#, mentions: "\"cn\"")
        self.assertInvalid(#"{"rules": [{"match": {}, "read": [""]}]}"#, mentions: "empty match")
        self.assertInvalid(#"{"rules": [{"read": [""]}]}"#, mentions: "match")
        self.assertInvalid(#"{"rules": [{"match": {"sha256": "abc"}}]}"#, mentions: "64 hex digits")
        self.assertInvalid(#"{"rules": [{"match": {"common_name": "c"}, "read": "all"}]}"#, mentions: "list")
        self.assertInvalid(#"{"rules": [{"match": {"common_name": "c"}, "shutdown": "yes"}]}"#, mentions: "true or false")
        self.assertInvalid(#"{"rule": []}"#, mentions: "rule")
        self.assertInvalid("{", mentions: "JSON")
    }

    func testMissingFileSaysWhichPath() {
        XCTAssertThrowsError(try Policy(contentsOf: "/nonexistent/policy.json")) { error in
            XCTAssertEqual(error as? PolicyError, .unreadable(path: "/nonexistent/policy.json"))
            XCTAssertTrue("\(error)".contains("--policy"))
        }
    }
}
