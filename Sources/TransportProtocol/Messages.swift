import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Short names for the generated message types.
///
/// The generated code prefixes every type with the proto package
/// (`TransportProtocol_…`); inside this project the module already says that.
public typealias RuntimeManagerRequest = TransportProtocol_RuntimeManagerRequest
public typealias RuntimeManagerResponse = TransportProtocol_RuntimeManagerResponse
public typealias ResponseStatus = TransportProtocol_ResponseStatus

extension RuntimeManagerResponse {
    /// A response carrying an error status and a human-readable message
    /// (in `ErrorCode.error`, as UTF-8 bytes), echoing the request's `context`.
    public static func failure(_ status: ResponseStatus, context: UInt32, message: String) -> Self {
        var response = Self()
        response.status = status
        response.context = context
        response.error = .with { $0.error = Data(message.utf8) }
        return response
    }

    /// The error message of a failed response, if it carries one.
    public var errorMessage: String? {
        guard case .error(let code)? = self.messageOneof else { return nil }
        return String(decoding: code.error, as: UTF8.self)
    }
}

extension ResponseStatus {
    /// The protocol's own name for the status, as in the .proto file.
    public var protocolName: String {
        switch self {
        case .unset: return "UNSET"
        case .success: return "SUCCESS"
        case .failedInvalidRole: return "FAILED_INVALID_ROLE"
        case .failedNotReady: return "FAILED_NOT_READY"
        case .failedGeneric: return "FAILED_GENERIC"
        case .failedVmError: return "FAILED_VM_ERROR"
        case .failedErrorCodeReturned: return "FAILED_ERROR_CODE_RETURNED"
        case .failedInvalidRequest: return "FAILED_INVALID_REQUEST"
        case .UNRECOGNIZED(let value): return "UNRECOGNIZED(\(value))"
        }
    }
}
