import Crypto
import SwiftProtobuf
import TransportProtocol

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Answers one request of one client: the runtime manager's whole behaviour
/// without any I/O, so it can be tested by plain calls.
///
/// Every request gets a response with the request's `context` echoed back;
/// no outcome closes the session (denials, unknown requests and missing files
/// are ordinary error responses). A granted shutdown is returned as
/// ``RequestOutcome/shutdownRequested`` for the session to act on *after* the
/// response has been sent.
public struct RequestHandler: Sendable {
    public let store: FileStore
    public let policy: Policy
    /// Largest request message (`--max-message-bytes`). A read's response is not bound by it:
    /// the session streams the file in slices and the client writes it out as it arrives, so a
    /// file of any size that could be stored can be read back (issue 42).
    public let maximumMessageBytes: Int

    public init(store: FileStore, policy: Policy, maximumMessageBytes: Int) {
        self.store = store
        self.policy = policy
        self.maximumMessageBytes = maximumMessageBytes
    }

    /// Answers a request outside any session's puts in progress (a staged put must then commit
    /// in the same request).
    public func handle(_ request: RuntimeManagerRequest, from identity: ClientIdentity) -> RequestOutcome {
        var uploads = StagedUploads()
        defer { uploads.discardAll(store: store) }
        return handle(request, from: identity, uploads: &uploads)
    }

    /// Answers a request of a session whose puts in progress are `uploads`.
    public func handle(
        _ request: RuntimeManagerRequest, from identity: ClientIdentity, uploads: inout StagedUploads
    ) -> RequestOutcome {
        let context = request.context
        func fail(_ status: ResponseStatus, _ message: String) -> RequestOutcome {
            RequestOutcome(response: .failure(status, context: context, message: message))
        }
        func deny(_ action: Policy.Action) -> RequestOutcome {
            fail(.failedInvalidRole, Self.denial(of: action, to: identity))
        }
        func success(_ fill: (inout RuntimeManagerResponse) -> Void = { _ in }) -> RequestOutcome {
            var response = RuntimeManagerResponse()
            response.status = .success
            response.context = context
            fill(&response)
            return RequestOutcome(response: response)
        }

        switch request.messageOneof {
        case .writeFile(let file)? where file.stage:
            return stagedChunk(file, starting: true, uploads: &uploads, identity: identity, context: context)

        case .appendFile(let file)? where file.stage:
            return stagedChunk(file, starting: false, uploads: &uploads, identity: identity, context: context)

        case .writeFile(let file)?:
            if let refusal = Self.refusal(ofName: file.fileName) { return fail(.failedInvalidRequest, refusal) }
            guard self.policy.permits(.write(file.fileName), for: identity) else { return deny(.write(file.fileName)) }
            do {
                try self.store.write(file.fileName, data: file.data)
            } catch {
                return fail(.failedGeneric, "\(error)")
            }
            return success()

        case .appendFile(let file)?:
            guard self.policy.permits(.append(file.fileName), for: identity) else {
                return deny(.append(file.fileName))
            }
            do {
                try self.store.append(file.fileName, data: file.data)
            } catch {
                return fail(.failedGeneric, "\(error)")
            }
            return success()

        case .readFile(let read)?:
            guard self.policy.permits(.read(read.fileName), for: identity) else { return deny(.read(read.fileName)) }
            let data: Data
            do {
                data = try self.store.read(read.fileName)
            } catch {
                return fail(.failedGeneric, "\(error)")
            }
            return success { $0.result = .with { $0.data = data } }

        case .requestPiHash(let hash)?:
            // Hashing reveals something about the contents: it needs read permission.
            guard self.policy.permits(.read(hash.fileName), for: identity) else { return deny(.read(hash.fileName)) }
            do {
                let data = try self.store.read(hash.fileName)
                let digest = Data(SHA256.hash(data: data))
                return success { $0.piHash = .with { $0.data = digest } }
            } catch {
                return fail(.failedGeneric, "\(error)")
            }

        case .requestPolicyHash?:
            // Anyone the CA admitted may learn which policy governs them.
            let digest = Data(self.policy.sha256)
            return success { $0.policyHash = .with { $0.data = digest } }

        case .requestShutdown?:
            guard self.policy.permits(.shutdown, for: identity) else { return deny(.shutdown) }
            var outcome = success()
            outcome.shutdownRequested = true
            return outcome

        case .requestResult?:
            return fail(
                .failedInvalidRequest,
                "request_result is not supported: this runtime manager stores files only; "
                    + "program execution is not part of this system"
            )

        case nil:
            return fail(
                .failedInvalidRequest,
                "unknown or empty request: this runtime manager understands write_file, append_file, read_file, "
                    + "request_pi_hash, request_policy_hash and request_shutdown"
            )
        }
    }
}

extension RequestHandler {
    /// What a client is told when the policy does not allow what it asked (one wording everywhere).
    static func denial(of action: Policy.Action, to identity: ClientIdentity) -> String {
        "denied: the policy does not allow \(identity) to \(action)"
    }

    /// A chunk of a staged put (`StagedUploads`): it replaces the file, so it needs write
    /// permission whether it starts the put (write_file) or adds to it (append_file).
    private func stagedChunk(
        _ file: TransportProtocol_Data, starting: Bool, uploads: inout StagedUploads, identity: ClientIdentity, context: UInt32
    ) -> RequestOutcome {
        guard policy.permits(.write(file.fileName), for: identity) else {
            return RequestOutcome(
                response: .failure(.failedInvalidRole, context: context, message: Self.denial(of: .write(file.fileName), to: identity)))
        }
        if starting, let refusal = Self.refusal(ofName: file.fileName) {
            return RequestOutcome(response: .failure(.failedInvalidRequest, context: context, message: refusal))
        }
        do {
            try uploads.add(file.data, to: file.fileName, starting: starting, commit: file.commit, store: store)
        } catch {
            return RequestOutcome(response: .failure(.failedGeneric, context: context, message: "\(error)"))
        }
        var response = RuntimeManagerResponse()
        response.status = .success
        response.context = context
        return RequestOutcome(response: response)
    }

    /// Why a file may not be created under `name`, or nil. The empty name is refused: in a script
    /// it is nearly always a variable that was not set. (Names that are not UTF-8 never get here:
    /// a protobuf string must be UTF-8, and such a request fails to decode.)
    static func refusal(ofName name: String) -> String? {
        name.isEmpty ? "a file name must not be empty" : nil
    }
}

/// The response to send, and what to do once it is sent.
public struct RequestOutcome: Sendable {
    public var response: RuntimeManagerResponse
    /// An authorized client asked the runtime manager to shut down gracefully.
    public var shutdownRequested: Bool

    public init(response: RuntimeManagerResponse, shutdownRequested: Bool = false) {
        self.response = response
        self.shutdownRequested = shutdownRequested
    }
}
