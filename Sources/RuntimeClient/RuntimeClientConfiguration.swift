import NIOCore
import NIOSSL
import SystemErrorText
import TransportProtocol

/// How the client proves who it is and whom it trusts.
public struct RuntimeClientConfiguration: Sendable {
    /// The client certificate (`--cert`), PEM.
    public var certificatePath: String
    /// The client's private key (`--key`), PEM.
    public var keyPath: String
    /// The CA that issued the runtime manager's certificate (`--ca`), PEM.
    public var caPath: String
    /// If set, the runtime manager's certificate must also be for this host name (or IP address
    /// literal), checked against its names alone (``ServerNameCheck``).
    ///
    /// Off by default because the client usually connects to a *repeater*, whose
    /// address says nothing about the runtime manager's certificate; trust comes
    /// from the dedicated CA instead, and no name is checked.
    public var serverName: String?
    /// Most bytes of one response held in memory; a read's file is not held (it is written out as
    /// it arrives) except by ``RuntimeClient/read(_:)``, which this bounds.
    public var maximumMessageBytes: Int
    /// Files larger than this are sent as a write followed by appends, so
    /// neither side needs a message as large as the file.
    public var chunkBytes: Int

    /// How TLS reaches the runtime manager: a TCP connection (the repeater or `--direct`), or
    /// the old HTTP relay (`--legacy-http`: one base64 POST per TLS record, in lock-step).
    public var transport: RuntimeClientTransport = .tcp
    /// Chunks of a put sent before the answer to the oldest one is awaited (1: lock-step).
    /// Safe because the runtime manager refuses every later append to a file once one of its
    /// chunks failed in the session, so a failure never leaves a hole.
    public var chunksInFlight = Self.defaultChunksInFlight
    /// How long nothing may move (no byte read or written) while the client waits (to connect,
    /// for the TLS handshake, for an answer) before it gives up (`--timeout`); nil: never.
    /// Reading a slow local input (a pipe) with nothing awaited is not waiting.
    public var timeout: TimeAmount? = Self.defaultTimeout
    public static let defaultTimeout: TimeAmount = .seconds(30)
    /// `timeout` in seconds, as a command line gives it (0 or nil: never).
    public var timeoutSeconds: Double? {
        get { timeout.map { Double($0.nanoseconds) / 1e9 } }
        set { timeout = newValue.flatMap { $0 > 0 ? .nanoseconds(Int64($0 * 1e9)) : nil } }
    }

    public static let defaultChunkBytes = 8 * 1024 * 1024
    /// Measured (docs/bench/NOTES.md, issue 25): 2 hides the round trip per chunk; more only adds memory.
    public static let defaultChunksInFlight = 2

    public init(
        certificatePath: String, keyPath: String, caPath: String, serverName: String? = nil,
        maximumMessageBytes: Int = LengthPrefixFrameDecoder.defaultMaximumMessageBytes,
        chunkBytes: Int = Self.defaultChunkBytes
    ) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.caPath = caPath
        self.serverName = serverName
        self.maximumMessageBytes = maximumMessageBytes
        self.chunkBytes = chunkBytes
    }

    /// TLS 1.3 with the client certificate, trusting only the given CA.
    public func makeSSLContext() throws -> NIOSSLContext {
        let chain = try Self.loadCertificates(self.certificatePath, role: "the client certificate (--cert)")
        let ca = try Self.loadCertificates(self.caPath, role: "the CA certificate (--ca)")
        let key: NIOSSLPrivateKey
        if let problem = SystemErrorText.whyUnreadable(self.keyPath) {
            throw RuntimeClientError.setup("cannot load the client key (--key) from \(self.keyPath): \(problem)")
        }
        do {
            key = try NIOSSLPrivateKey(file: self.keyPath, format: .pem)
        } catch {
            throw RuntimeClientError.setup(
                "cannot load the client key (--key) from \(self.keyPath): \(Self.describe(error)); expected a PEM private key"
            )
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.trustRoots = .certificates(ca)
        tls.certificateChain = chain.map { .certificate($0) }
        tls.privateKey = .privateKey(key)
        // The chain against --ca, always; the name (with --server-name) by ServerNameCheck after the
        // handshake, because NIOSSL's own check also passes a certificate for the socket's IP address.
        tls.certificateVerification = .noHostnameVerification
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw RuntimeClientError.setup(
                "cannot set up TLS with --cert \(self.certificatePath) and --key \(self.keyPath): \(error); "
                    + "do the certificate and key belong together?"
            )
        }
    }

    private static func loadCertificates(_ path: String, role: String) throws -> [NIOSSLCertificate] {
        if let problem = SystemErrorText.whyUnreadable(path) {
            throw RuntimeClientError.setup("cannot load \(role) from \(path): \(problem)")
        }
        do {
            let certificates = try NIOSSLCertificate.fromPEMFile(path)
            guard !certificates.isEmpty else {
                throw RuntimeClientError.setup("\(path) holds no PEM certificate; expected \(role)")
            }
            return certificates
        } catch let error as RuntimeClientError {
            throw error
        } catch {
            throw RuntimeClientError.setup("cannot load \(role) from \(path): \(Self.describe(error))")
        }
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case NIOSSLError.noSuchFilesystemObject: return "no such file"
        case NIOSSLError.failedToLoadCertificate: return "not a PEM certificate"
        case NIOSSLError.failedToLoadPrivateKey: return "not a PEM private key"
        default: return "\(error)"
        }
    }
}

/// The layer under TLS.
public enum RuntimeClientTransport: Sendable, Equatable {
    /// TLS straight over TCP.
    case tcp
    /// TLS over the old HTTP relay's `POST /runtime_manager`, for old deployments and as the
    /// benchmark baseline.
    case legacyHTTP
}
