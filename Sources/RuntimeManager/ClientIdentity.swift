import Crypto
import NIOSSL

/// Who is on the other end of a session, as the policy sees it.
///
/// Taken from the client certificate that TLS verified against `--client-ca`:
/// the SHA-256 fingerprint of the leaf certificate's DER bytes (exact, cannot be
/// shared by two certificates) and the subject common name (convenient, but any
/// certificate the CA issues with the same CN has it).
public struct ClientIdentity: Hashable, Sendable, CustomStringConvertible {
    /// Lowercase hex SHA-256 of the certificate's DER encoding, 64 characters.
    public var sha256Fingerprint: String
    /// The subject's common name, if the certificate has one.
    public var commonName: String?

    public init(sha256Fingerprint: String, commonName: String?) {
        self.sha256Fingerprint = Policy.normalizedFingerprint(sha256Fingerprint)
        self.commonName = commonName
    }

    /// Reads the identity from a verified peer certificate.
    public init(certificate: NIOSSLCertificate) throws {
        let der = try certificate.toDERBytes()
        self.init(
            sha256Fingerprint: Self.hex(SHA256.hash(data: der)),
            commonName: certificate.subjectName.first { $0.type == .commonName }?.value
        )
    }

    public var description: String {
        let cn = self.commonName.map { "CN=\($0)" } ?? "no CN"
        return "\(cn) sha256=\(self.sha256Fingerprint.prefix(16))…"
    }

    static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
