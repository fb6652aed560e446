import LegacyRelay
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import SwiftProtobuf
import Synchronization
import SystemErrorText
import TransportProtocol

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A connection to a runtime manager (directly or through a repeater):
/// TCP with TCP_NODELAY, mutual TLS 1.3, then length-prefixed requests,
/// each answered before the next is sent. With the `.legacyHTTP` transport, TLS runs over the
/// old HTTP relay instead of the raw socket (see `LegacyHTTPTransportHandler`).
///
/// Methods throw ``RuntimeClientError`` with a one-line explanation; a request
/// the runtime manager refuses throws ``RuntimeClientError/requestFailed(request:status:message:)``.
public final class RuntimeClient: Sendable {
    /// Where the client connects when no address is given: the repeater.
    public static let defaultHost = "127.0.0.1"
    public static let defaultPort = 3011

    public let address: String
    public let configuration: RuntimeClientConfiguration
    private let channel: any Channel
    /// The `context` of the last request sent; responses echo it, so they can be checked against requests.
    private let lastContext = Atomic<UInt32>(0)
    /// Why the connection failed, as ``ClientConnectionMonitor`` saw it (outlives the pipeline).
    private let firstFailure: FirstFailure
    /// Where the file of the read in flight goes (``read(_:into:)``).
    private let downloadSlot: DownloadSlot
    /// What is awaited from the peer, for `--timeout` (``ProgressTimeout``).
    private let waits: ClientWaits

    /// Matches responses to requests in order (NIOExtras), behind the handlers that explain failures.
    typealias ResponseQueue = RequestResponseHandler<RuntimeManagerRequest, RuntimeManagerResponse>

    private init(
        channel: any Channel, address: String, configuration: RuntimeClientConfiguration,
        firstFailure: FirstFailure, downloadSlot: DownloadSlot, waits: ClientWaits
    ) {
        self.downloadSlot = downloadSlot
        self.waits = waits
        self.channel = channel
        self.firstFailure = firstFailure
        self.address = address
        self.configuration = configuration
    }

    /// Connects and completes the TLS handshake.
    /// - Parameter downloadProgress: called while a large response arrives
    ///   (bytes received, bytes announced), from an event loop thread.
    public static func connect(
        host: String = defaultHost,
        port: Int = defaultPort,
        configuration: RuntimeClientConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        downloadProgress: (@Sendable (_ received: Int, _ expected: Int) -> Void)? = nil
    ) async throws -> RuntimeClient {
        let sslContext = try configuration.makeSSLContext()
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let serverNameCheck = configuration.serverName.map(ServerNameCheck.init(serverName:))
        let maximumMessageBytes = configuration.maximumMessageBytes
        let overLegacyHTTP = configuration.transport == .legacyHTTP
        let handshake = group.next().makePromise(of: Void.self)
        let firstFailure = FirstFailure()
        let downloadSlot = DownloadSlot()
        let waits = ClientWaits()
        let timeout = configuration.timeout
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: handshake.futureResult.eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(timeout ?? .hours(1))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let timeout { try sync.addHandler(ProgressTimeout(timeout: timeout, waits: waits, address: address)) }
                        if overLegacyHTTP { try LegacyHTTPTransportHandler.addToPipeline(sync, host: address) }
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverNameCheck?.indicatedName))
                        try sync.addHandler(LengthPrefixedMessageEncoder<RuntimeManagerRequest>())
                        // A read's file is handed to the download sink as it arrives, never held whole.
                        try sync.addHandler(
                            StreamingResponseDecoder(
                                maximumMessageBytes: maximumMessageBytes, slot: downloadSlot, progress: downloadProgress))
                        if overLegacyHTTP { try sync.addHandler(LegacyExchangeTracker()) }
                        try sync.addHandler(
                            ClientConnectionMonitor(handshake: handshake, address: address, firstFailure: firstFailure, waits: waits))
                        try sync.addHandler(ResponseQueue())
                        try sync.addHandler(UnrequestedResponseHandler(firstFailure: firstFailure))
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch let error as RuntimeClientError {
            handshake.fail(error)
            throw error
        } catch {
            let wrapped = RuntimeClientError.connect(error, address: address)
            handshake.fail(wrapped)
            throw wrapped
        }
        do {
            try await handshake.futureResult.get()
            // `connect` returns, and the first request goes out, only once the name checks.
            if let serverNameCheck {
                guard let leaf = try await channel.nioSSL_peerCertificate().get() else {
                    throw RuntimeClientError.tlsFailed(reason: "the runtime manager sent no certificate to check --server-name against")
                }
                try await serverNameCheck.verify(leafCertificate: leaf)
            }
        } catch {
            try? await channel.close()
            throw error
        }
        return RuntimeClient(
            channel: channel, address: address, configuration: configuration, firstFailure: firstFailure,
            downloadSlot: downloadSlot, waits: waits)
    }

    /// Sends one request and waits for its response, whatever its status.
    public func send(_ request: RuntimeManagerRequest) async throws -> RuntimeManagerResponse {
        let sent = self.dispatch(request)
        return try await self.response(to: sent)
    }

    /// A request on its way: its context, and the future of its response.
    struct SentRequest {
        let context: UInt32
        let response: EventLoopFuture<RuntimeManagerResponse>
    }

    /// Sends one request without waiting for its response (responses come in request order).
    func dispatch(_ request: RuntimeManagerRequest) -> SentRequest {
        var request = request
        request.context = self.lastContext.wrappingAdd(1, ordering: .relaxed).newValue
        let promise = self.channel.eventLoop.makePromise(of: RuntimeManagerResponse.self)
        let waits = self.waits
        waits.awaitedResponses.add(1, ordering: .relaxed)
        promise.futureResult.whenComplete { _ in waits.awaitedResponses.subtract(1, ordering: .relaxed) }
        // A write that never reaches the response queue (the connection closed and its
        // handlers are gone) must still fail the request instead of leaving it waiting forever.
        // (Failing a promise the queue already failed changes nothing.)
        self.channel.writeAndFlush((request, promise)).whenFailure { promise.fail($0) }
        return SentRequest(context: request.context, response: promise.futureResult)
    }

    /// Waits for the response to a dispatched request, whatever its status.
    func response(to sent: SentRequest) async throws -> RuntimeManagerResponse {
        let response: RuntimeManagerResponse
        do {
            response = try await sent.response.get()
        } catch {
            throw self.explain(error)
        }
        guard response.context == sent.context else {
            if response.status != .success, let message = response.errorMessage {
                // The runtime manager refused the stream itself (e.g. a message over its
                // limit) and answered with context 0 before closing.
                throw RuntimeClientError.requestFailed(request: "request", status: response.status, message: message)
            }
            throw RuntimeClientError.unexpectedResponse(
                "answer for request \(response.context) while waiting for request \(sent.context)"
            )
        }
        return response
    }

    /// Why a request failed, in the words of the connection's first failure when there was one:
    /// the queue fails waiting requests with NIOExtras' `ClosedBeforeReceivingResponse` and a
    /// write after the close fails with `ioOnClosedChannel`, neither of which says why.
    private func explain(_ error: any Error) -> RuntimeClientError {
        if let first = self.firstFailure.current { return first }
        switch error {
        case let error as RuntimeClientError: return error
        case let error as LegacyHTTPRelayError: return .relayFailed("\(error)")
        default: return .connectionClosed(address: self.address)
        }
    }

    /// Sends a request and returns the response if it succeeded.
    @discardableResult
    func perform(_ name: String, _ request: RuntimeManagerRequest) async throws -> RuntimeManagerResponse {
        try Self.succeeded(try await self.send(request), request: name)
    }

    /// The response if it succeeded; otherwise the error that says which request failed and why.
    static func succeeded(_ response: RuntimeManagerResponse, request name: String) throws -> RuntimeManagerResponse {
        guard response.status == .success else {
            throw RuntimeClientError.requestFailed(
                request: name, status: response.status, message: response.errorMessage ?? "no message"
            )
        }
        return response
    }

    /// Stores `data` as `name`, replacing any file of that name.
    public func write(_ name: String, data: Data) async throws {
        try await self.perform(
            "write \"\(name)\"",
            .with {
                $0.writeFile = .with {
                    $0.fileName = name
                    $0.data = data
                }
            })
    }

    /// Appends `data` to the existing file `name`.
    public func append(_ name: String, data: Data) async throws {
        try await self.perform(
            "append to \"\(name)\"",
            .with {
                $0.appendFile = .with {
                    $0.fileName = name
                    $0.data = data
                }
            }
        )
    }

    /// Uploads a local file as `remoteName` (``put(from:remoteName:append:progress:)``).
    public func put(
        localPath: String, remoteName: String, append: Bool = false,
        progress: ((_ sent: Int, _ total: Int) -> Void)? = nil
    ) async throws {
        try await put(from: try UploadSource(path: localPath), remoteName: remoteName, append: append, progress: progress)
    }

    /// Uploads `source` as `remoteName`, chunk by chunk, so memory use is a few chunks, not the
    /// file: a write, then appends.
    ///
    /// A put is staged (protocol extension 1, `StagedUploads` in the runtime manager): every
    /// chunk carries `stage`, and the last one `commit`, so the stored file is replaced only
    /// when the whole new content is in. Interrupted (Ctrl-C, a lost link, a full store, a
    /// source that changed while read), it leaves the stored file as it was. The last chunk is
    /// known by reading one ahead; a source whose size is a multiple of the chunk size ends
    /// with an empty committing append.
    ///
    /// With `append: true` every chunk is a plain append to the existing file, as before: a
    /// failure leaves what was appended before it (the runtime manager refuses every later
    /// append of the file in the session, so the file never has a hole).
    ///
    /// Up to `configuration.chunksInFlight` chunks are on their way at once (the next is sent
    /// before the oldest is answered), so the link is not idle while the runtime manager
    /// stores a chunk. If one fails, nothing more is sent and the first failure is thrown.
    /// - Parameter progress: called after each answered chunk with (bytes stored, size), the
    ///   size being 0 for a source of unknown size (a pipe).
    public func put(
        from source: UploadSource, remoteName: String, append: Bool = false,
        progress: ((_ sent: Int, _ total: Int) -> Void)? = nil
    ) async throws {
        let window = max(1, self.configuration.chunksInFlight)
        let chunkBytes = self.configuration.chunkBytes
        var inFlight: [(sent: SentRequest, name: String, bytes: Int)] = []
        var stored = 0
        var failure: (any Error)?
        /// Waits for the oldest chunk's answer; remembers the first failure.
        func settleOldest() async {
            let oldest = inFlight.removeFirst()
            do {
                _ = try Self.succeeded(try await self.response(to: oldest.sent), request: oldest.name)
                stored += oldest.bytes
                progress?(stored, max(source.expectedSize, stored))
            } catch {
                if failure == nil { failure = error }
            }
        }
        var first = true
        var bytesRead = 0
        var chunk = try source.read(upTo: chunkBytes)
        bytesRead += chunk.count
        while failure == nil {
            // One chunk ahead: the current one is the last when the input ends after it.
            let next = chunk.count < chunkBytes ? Data() : try source.read(upTo: chunkBytes)
            bytesRead += next.count
            let last = next.isEmpty
            if last, let change = source.changeWhileRead(bytesRead: bytesRead) {
                failure = RuntimeClientError.localFile(
                    path: source.name,
                    reason: append
                        ? "\(change); what was appended before the change stays"
                        : "\(change); nothing was stored, \"\(remoteName)\" is unchanged")
                break
            }
            if append {
                if !chunk.isEmpty {
                    let request = RuntimeManagerRequest.with {
                        $0.appendFile = .with {
                            $0.fileName = remoteName
                            $0.data = chunk
                        }
                    }
                    inFlight.append((self.dispatch(request), "append to \"\(remoteName)\"", chunk.count))
                }
            } else {
                let data = TransportProtocol_Data.with {
                    $0.fileName = remoteName
                    $0.data = chunk
                    $0.stage = true
                    $0.commit = last
                }
                let request = RuntimeManagerRequest.with {
                    if first {
                        $0.writeFile = data
                    } else {
                        $0.appendFile = data
                    }
                }
                inFlight.append((self.dispatch(request), first ? "write \"\(remoteName)\"" : "append to \"\(remoteName)\"", chunk.count))
            }
            first = false
            if inFlight.count >= window { await settleOldest() }
            if last { break }
            chunk = next
        }
        while !inFlight.isEmpty { await settleOldest() }
        if let failure { throw failure }
    }

    /// Fetches the whole file `name`.
    public func read(_ name: String) async throws -> Data {
        let response = try await self.perform("read \"\(name)\"", .with { $0.readFile = .with { $0.fileName = name } })
        guard case .result(let result)? = response.messageOneof else {
            throw RuntimeClientError.unexpectedResponse("read succeeded but carried no file contents")
        }
        return result.data
    }

    /// Fetches the file `name` into `sink` as it arrives, never holding it whole (a get of any
    /// size costs the same memory); returns its size. Not to be run beside another request on
    /// the same client: the file of the next read response goes to `sink`.
    public func read(_ name: String, into sink: any DownloadSink) async throws {
        self.downloadSlot.set(sink)
        defer { self.downloadSlot.set(nil) }
        let response = try await self.perform("read \"\(name)\"", .with { $0.readFile = .with { $0.fileName = name } })
        guard case .result? = response.messageOneof else {
            throw RuntimeClientError.unexpectedResponse("read succeeded but carried no file contents")
        }
    }

    /// SHA-256 of the stored file `name`, computed by the runtime manager.
    public func hash(_ name: String) async throws -> Data {
        let response = try await self.perform(
            "hash \"\(name)\"", .with { $0.requestPiHash = .with { $0.fileName = name } }
        )
        guard case .piHash(let hash)? = response.messageOneof else {
            throw RuntimeClientError.unexpectedResponse("hash succeeded but carried no hash")
        }
        return hash.data
    }

    /// SHA-256 of the runtime manager's policy file.
    public func policyHash() async throws -> Data {
        let response = try await self.perform("policy-hash", .with { $0.requestPolicyHash = .init() })
        guard case .policyHash(let hash)? = response.messageOneof else {
            throw RuntimeClientError.unexpectedResponse("policy-hash succeeded but carried no hash")
        }
        return hash.data
    }

    /// Asks the runtime manager to shut down gracefully (needs the policy's permission).
    public func requestShutdown() async throws {
        try await self.perform("shutdown", .with { $0.requestShutdown = .init() })
    }

    /// Closes the connection with a TLS close_notify.
    public func close() async {
        try? await self.channel.close()
    }

    /// Why a local file cannot be uploaded, or nil if it can be read. The command line asks
    /// before it connects, so that no session is opened for nothing; ``put`` says the same.
    public static func whyUnreadable(_ path: String) -> String? {
        SystemErrorText.whyUnreadable(path)
    }
}
