import NIOSSL

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
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw TLSSetupError(
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
            throw TLSSetupError(
                "cannot set up TLS with --cert \(certificatePath) and --key \(keyPath): \(describe(error)); "
                    + "do the certificate and key belong together?"
            )
        }
    }

    static func loadCertificates(_ path: String, role: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw TLSSetupError("cannot load \(role) from \(path): \(describe(error)); expected a PEM certificate file")
        }
        guard !certificates.isEmpty else {
            throw TLSSetupError("\(path) holds no PEM certificate; expected \(role)")
        }
        return certificates
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case NIOSSLError.noSuchFilesystemObject: return "no such file"
        case NIOSSLError.failedToLoadCertificate: return "not a readable certificate"
        case NIOSSLError.failedToLoadPrivateKey: return "not a readable private key"
        default: return "\(error)"
        }
    }
}

/// A TLS file or setting could not be used; the message names the file and flag.
public struct TLSSetupError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
