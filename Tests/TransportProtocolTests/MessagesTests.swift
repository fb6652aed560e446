import Foundation
import NIOCore
import SwiftProtobuf
import TransportProtocol
import XCTest

/// The wire must stay compatible with the Veracruz transport protocol:
/// these tests pin field numbers by checking the encoded tags.
final class MessagesTests: XCTestCase {
    private func firstTag(_ encoded: ByteBuffer) -> (field: Int, wireType: Int) {
        let tag = Int(encoded.getInteger(at: encoded.readerIndex, as: UInt8.self) ?? 0)
        return (tag >> 3, tag & 7)
    }

    func testRequestFieldNumbers() throws {
        let empty = TransportProtocol_Data()
        XCTAssertEqual(self.firstTag(try (RuntimeManagerRequest.with { $0.context = 1 }).serializedByteBuffer()).field, 1)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerRequest.with { $0.writeFile = empty }).serializedByteBuffer()).field, 2)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerRequest.with { $0.appendFile = empty }).serializedByteBuffer()).field, 3)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerRequest.with { $0.requestPiHash = .init() }).serializedByteBuffer()).field, 4)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerRequest.with { $0.requestResult = .init() }).serializedByteBuffer()).field, 5)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerRequest.with { $0.requestShutdown = .init() }).serializedByteBuffer()).field, 8)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerRequest.with { $0.requestPolicyHash = .init() }).serializedByteBuffer()).field, 10)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerRequest.with { $0.readFile = .init() }).serializedByteBuffer()).field, 11)
        XCTAssertEqual(self.firstTag(try (TransportProtocol_Data.with { $0.fileName = "a" }).serializedByteBuffer()).field, 1)
        XCTAssertEqual(self.firstTag(try (TransportProtocol_Data.with { $0.data = Data([1]) }).serializedByteBuffer()).field, 2)
    }

    func testResponseFieldNumbersAndStatusValues() throws {
        XCTAssertEqual(self.firstTag(try (RuntimeManagerResponse.with { $0.status = .success }).serializedByteBuffer()).field, 1)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerResponse.with { $0.context = 5 }).serializedByteBuffer()).field, 8)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerResponse.with { $0.result = .init() }).serializedByteBuffer()).field, 4)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerResponse.with { $0.piHash = .init() }).serializedByteBuffer()).field, 5)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerResponse.with { $0.error = .init() }).serializedByteBuffer()).field, 6)
        XCTAssertEqual(self.firstTag(try (RuntimeManagerResponse.with { $0.policyHash = .init() }).serializedByteBuffer()).field, 11)
        let statuses: [ResponseStatus] = [
            .unset, .success, .failedInvalidRole, .failedNotReady, .failedGeneric, .failedVmError,
            .failedErrorCodeReturned, .failedInvalidRequest,
        ]
        XCTAssertEqual(statuses.map(\.rawValue), Array(0...7))
        XCTAssertEqual(ResponseStatus.failedInvalidRequest.protocolName, "FAILED_INVALID_REQUEST")
    }

    func testARequestWithAnUnknownFieldDecodesAsUnset() throws {
        // Field 6 (attestation in Veracruz) is not part of this protocol.
        let request = try RuntimeManagerRequest(payload: ByteBuffer(bytes: [0x08, 0x04, 0x32, 0x00]))
        XCTAssertEqual(request.context, 4)
        XCTAssertNil(request.messageOneof)
    }

    /// Protocol extension 1 (docs/INTEROP.md): `stage` and `commit` are fields 3 and 4 of `Data`,
    /// varints on the wire, absent when false (so a request without them is byte for byte what
    /// Veracruz sends), named as in the .proto.
    func testTheStagedPutFieldsAreFieldsThreeAndFourOfData() throws {
        var data = TransportProtocol_Data.with {
            $0.fileName = "f"
            $0.data = Data([7])
        }
        XCTAssertEqual(Array(try data.serializedBytes() as [UInt8]), [0x0A, 1, 0x66, 0x12, 1, 7])
        data.stage = true
        data.commit = true
        XCTAssertEqual(Array(try data.serializedBytes() as [UInt8]), [0x0A, 1, 0x66, 0x12, 1, 7, 0x18, 1, 0x20, 1])
        XCTAssertEqual(try TransportProtocol_Data(serializedBytes: try data.serializedBytes() as [UInt8]), data)
        XCTAssertEqual(try data.jsonString(), #"{"fileName":"f","data":"Bw==","stage":true,"commit":true}"#)
    }

    /// A file name is a protobuf string, so UTF-8: a request naming a file with other bytes does
    /// not decode (the runtime manager answers it FAILED_INVALID_REQUEST as any malformed
    /// message), so two invalid names can never become one (issue 42).
    func testANameThatIsNotUTF8DoesNotDecode() {
        let invalid: [UInt8] = [0x12, 5, 0x0A, 1, 0xFF, 0x12, 0]  // write_file { file_name: "\xff", data: "" }
        XCTAssertThrowsError(try RuntimeManagerRequest(serializedBytes: invalid))
        let valid: [UInt8] = [0x12, 5, 0x0A, 1, 0x61, 0x12, 0]
        XCTAssertEqual(try RuntimeManagerRequest(serializedBytes: valid).writeFile.fileName, "a")
    }
}
