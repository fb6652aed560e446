import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// `--server-name NAME`: the runtime manager's certificate must be for NAME, and for nothing else
/// that happens to match.
///
/// Why not swift-nio-ssl's own hostname check (`.fullVerification`): it also accepts a
/// certificate whose IP address entry matches the address the socket connected to. The generated
/// certificates list 127.0.0.1, so with the repeater on loopback any NAME passed. Here the chain is
/// verified by BoringSSL against `--ca` as before (`.noHostnameVerification`), and the leaf is then
/// checked against NAME alone with swift-certificates' RFC 6125 matching (`ServerIdentityPolicy`):
/// a host name against the DNS entries (one left-most wildcard label allowed), an IP address
/// literal against the IP entries.
public struct ServerNameCheck: Sendable {
    /// The name the certificate must carry, as given.
    public let serverName: String
    private let isIPAddress: Bool

    public init(serverName: String) {
        self.serverName = serverName
        self.isIPAddress = (try? SocketAddress(ipAddress: serverName, port: 0)) != nil
    }

    /// The name to send as SNI: a host name, never an IP literal (TLS forbids it, RFC 6066 §3).
    public var indicatedName: String? { self.isIPAddress ? nil : self.serverName }

    /// Throws a ``RuntimeClientError`` that lists what the certificate does name, unless it
    /// carries `serverName`.
    public func verify(leafCertificate: NIOSSLCertificate) async throws {
        let certificate: Certificate
        do {
            certificate = try Certificate(derEncoded: try leafCertificate.toDERBytes())
        } catch {
            throw RuntimeClientError.tlsFailed(
                reason: "cannot read the runtime manager's certificate to check --server-name: \(error)")
        }
        try await self.verify(certificate)
    }

    /// The same check on a parsed certificate.
    ///
    /// swift-certificates runs a policy only inside its `Verifier`, which builds a chain to a
    /// root; the leaf is its own root here, and every critical extension it carries is declared
    /// handled, because BoringSSL has already verified the chain and its extensions against `--ca`.
    /// Only the name is decided here.
    public func verify(_ certificate: Certificate) async throws {
        let handled = certificate.extensions.filter(\.critical).map(\.oid)
        let isIPAddress = self.isIPAddress
        let serverName = self.serverName
        var verifier = Verifier(rootCertificates: CertificateStore([certificate])) {
            ChainVerifiedByBoringSSL(verifyingCriticalExtensions: handled)
            ServerIdentityPolicy(
                serverHostname: isIPAddress ? nil : serverName,
                serverIP: isIPAddress ? serverName : nil
            )
        }
        guard case .couldNotValidate = await verifier.validate(leaf: certificate, intermediates: CertificateStore())
        else { return }
        throw RuntimeClientError.serverNameMismatch(expected: self.serverName, certificateNames: Self.names(in: certificate))
    }

    /// The DNS and IP entries of the certificate's subject alternative names, for the error line.
    static func names(in certificate: Certificate) -> [String] {
        guard let alternativeNames = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return alternativeNames.compactMap { name -> String? in
            switch name {
            case .dnsName(let dns): return dns
            case .ipAddress(let octets): return Self.render(ip: Array(octets.bytes))
            default: return nil
            }
        }
    }

    private static func render(ip bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        // IPv6: eight groups, without zero compression (enough to tell which entry it is).
        guard bytes.count == 16 else { return bytes.map { String($0, radix: 16) }.joined(separator: ":") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}

/// Declares the leaf's critical extensions handled: BoringSSL verified them with the chain.
private struct ChainVerifiedByBoringSSL: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier]

    mutating func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) -> PolicyEvaluationResult {
        .meetsPolicy
    }
}
