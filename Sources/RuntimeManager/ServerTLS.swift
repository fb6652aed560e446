import NIOSSL
import SystemErrorText

/// Builds the runtime manager's TLS context: TLS 1.3 only, its own certificate
/// and key, and a *required* client certificate that must chain to the client CA.
///
/// Why no hostname check on clients: clients are identified by their
/// certificate (fingerprint, common name), which the policy then judges;
/// they have no host name to check.
public enum ServerTLS {
    public static func makeContext(certificatePath: String, keyPath: String, clientCAPath: String) throws -> NIOSSLContext {
        let chain = try loadCertificates(certificatePath, role: "the runtime manager's certificate (--cert)")
        let key: NIOSSLPrivateKey
        do {
            if let problem = SystemErrorText.whyUnreadable(keyPath) {
                throw RuntimeManagerSetupError("cannot load the runtime manager's private key (--key) from \(keyPath): \(problem)")
            }
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch let error as RuntimeManagerSetupError {
            throw error
        } catch {
            throw RuntimeManagerSetupError(
                "cannot load the runtime manager's private key (--key) from \(keyPath): \(describe(error)); "
                    + "expected a PEM private key (tools/gen-certs.sh makes one)"
            )
        }
        let clientCAs = try loadCertificates(clientCAPath, role: "the client CA (--client-ca)")

        var configuration = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key),
            trustRoots: .certificates(clientCAs)
        )
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RuntimeManagerSetupError(
                "cannot set up TLS with --cert \(certificatePath) and --key \(keyPath): the key does not belong "
                    + "to the certificate, or one of them is unusable (\(error))"
            )
        }
    }

    static func loadCertificates(_ path: String, role: String) throws -> [NIOSSLCertificate] {
        if let problem = SystemErrorText.whyUnreadable(path) {
            throw RuntimeManagerSetupError("cannot load \(role) from \(path): \(problem)")
        }
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw RuntimeManagerSetupError("cannot load \(role) from \(path): \(describe(error)); expected a PEM certificate file")
        }
        guard !certificates.isEmpty else {
            throw RuntimeManagerSetupError("\(path) holds no PEM certificate; expected \(role)")
        }
        return certificates
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case NIOSSLError.noSuchFilesystemObject: return "no such file"
        case NIOSSLError.failedToLoadCertificate: return "not a PEM certificate"
        case NIOSSLError.failedToLoadPrivateKey: return "not a PEM private key"
        default: return "\(error)"
        }
    }
}

/// A file, setting or address the runtime manager was started with cannot be used;
/// the message names it and the flag that set it.
public struct RuntimeManagerSetupError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
