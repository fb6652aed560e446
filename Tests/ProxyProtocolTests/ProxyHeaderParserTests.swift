import NIOCore
import ProxyProtocol
import XCTest

/// The PROXY header parser alone: v1 and v2, fed whole and a byte at a time, and every way a
/// header can be wrong.
final class ProxyHeaderParserTests: XCTestCase {
    /// A v2 header around `block`, its length field saying `announcing` (the block's length unless given).
    static func v2(command: UInt8 = 0x21, family: UInt8, block: [UInt8], announcing: Int? = nil) -> [UInt8] {
        let length = announcing ?? block.count
        return [
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, command, family,
            UInt8(length >> 8), UInt8(length & 0xFF),
        ] + block
    }

    private func v2(command: UInt8 = 0x21, family: UInt8, block: [UInt8]) -> [UInt8] {
        Self.v2(command: command, family: family, block: block)
    }

    private func header(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> (ProxyHeader, Int)? {
        guard case .header(let header, let consumed) = ProxyHeaderParser.parse(bytes) else {
            XCTFail("not a header: \(ProxyHeaderParser.parse(bytes))", file: file, line: line)
            return nil
        }
        return (header, consumed)
    }

    private func error(_ bytes: [UInt8]) -> String? {
        if case .invalid(let error) = ProxyHeaderParser.parse(bytes) { return error.description }
        return nil
    }

    func testV1TCP4AndTCP6GiveTheAddressesAndLeaveThePayload() throws {
        let line = Array("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n".utf8)
        let (v4, consumed) = try XCTUnwrap(self.header(line + Array("hello".utf8)))
        XCTAssertEqual(consumed, line.count)
        XCTAssertEqual(v4.version, 1)
        XCTAssertEqual(v4.source, try SocketAddress(ipAddress: "192.0.2.1", port: 56324))
        XCTAssertEqual(v4.destination, try SocketAddress(ipAddress: "198.51.100.7", port: 443))
        let (v6, _) = try XCTUnwrap(self.header(Array("PROXY TCP6 2001:db8::1 ::1 1 65535\r\n".utf8)))
        XCTAssertEqual(v6.source, try SocketAddress(ipAddress: "2001:db8::1", port: 1))
        let (unknown, _) = try XCTUnwrap(self.header(Array("PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n".utf8)))
        XCTAssertNil(unknown.source)
    }

    func testEveryPrefixOfAValidHeaderAsksForMoreBytes() {
        let headers = [
            Array("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n".utf8),
            self.v2(family: 0x11, block: [192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB]),
        ]
        for bytes in headers {
            for count in 0..<bytes.count {
                XCTAssertEqual(ProxyHeaderParser.parse(bytes.prefix(count)), .needMoreBytes, "prefix of \(count) bytes")
            }
            guard case .header(_, let consumed) = ProxyHeaderParser.parse(bytes) else { return XCTFail("whole header") }
            XCTAssertEqual(consumed, bytes.count)
        }
    }

    func testV1MistakesAreRefusedWithAReason() {
        XCTAssertEqual(
            self.error(Array("PROXY TCP4 192.0.2.1 198.51.100.7 56324 70000\r\n".utf8)),
            "PROXY v1 port is not a number from 0 to 65535")
        XCTAssertEqual(
            self.error(Array("PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n".utf8)),
            "PROXY v1 addresses do not match TCP4")
        XCTAssertEqual(
            self.error(Array("PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n".utf8)),
            "PROXY v1 line needs 6 fields separated by single spaces, got 7")
        XCTAssertEqual(
            self.error(Array("PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n".utf8)),
            "PROXY v1 protocol \"UDP4\" is not TCP4, TCP6 or UNKNOWN")
        XCTAssertEqual(self.error(Array("PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n".utf8)), "PROXY v1 line not ended by CRLF")
        XCTAssertEqual(
            self.error(Array(("PROXY TCP4 " + String(repeating: "1", count: 120)).utf8)),
            "PROXY v1 line longer than 107 bytes")
        XCTAssertEqual(self.error(Array("GET / HTTP/1.1\r\n".utf8)), "the connection does not begin with a PROXY header (v1 or v2)")
        XCTAssertEqual(self.error([0x16, 0x03, 0x01]), "the connection does not begin with a PROXY header (v1 or v2)")
    }

    func testV2ProxyLocalAndTLVs() throws {
        let tlv: [UInt8] = [0x04, 0x00, 0x03, 0x61, 0x62, 0x63]  // a NOOP TLV: consumed with the header
        let ipv4 = self.v2(family: 0x11, block: [192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB] + tlv)
        let (header, consumed) = try XCTUnwrap(self.header(ipv4 + [0x16]))
        XCTAssertEqual(consumed, ipv4.count)
        XCTAssertEqual(header.version, 2)
        XCTAssertEqual(header.command, .proxy)
        XCTAssertEqual(header.source, try SocketAddress(ipAddress: "192.0.2.1", port: 56324))
        XCTAssertEqual(header.destination, try SocketAddress(ipAddress: "198.51.100.7", port: 443))

        var block = [UInt8](repeating: 0, count: 36)
        block[0] = 0x20
        block[1] = 0x01
        block[2] = 0x0d
        block[3] = 0xb8
        block[15] = 1  // 2001:db8::1
        block[31] = 1  // ::1
        block[32] = 0x12
        block[33] = 0x34
        block[34] = 0x00
        block[35] = 0x50
        let (v6, _) = try XCTUnwrap(self.header(self.v2(family: 0x21, block: block)))
        XCTAssertEqual(v6.source, try SocketAddress(ipAddress: "2001:db8::1", port: 0x1234))
        XCTAssertEqual(v6.destination, try SocketAddress(ipAddress: "::1", port: 80))

        let (local, _) = try XCTUnwrap(self.header(self.v2(command: 0x20, family: 0x00, block: [])))
        XCTAssertEqual(local.command, .local)
        XCTAssertNil(local.source)
    }

    func testV2MistakesAreRefusedWithoutBufferingWhatTheyAnnounce() {
        var huge = self.v2(family: 0x11, block: [])
        huge[14] = 0xFF
        huge[15] = 0xFF  // announces 65,535 bytes: refused at once, not awaited
        XCTAssertEqual(self.error(huge), "PROXY v2 header of 65551 bytes, above the limit of 2064")
        XCTAssertEqual(self.error(self.v2(command: 0x11, family: 0x11, block: [])), "PROXY v2 header with version 1")
        XCTAssertEqual(self.error(self.v2(command: 0x22, family: 0x11, block: [])), "PROXY v2 command 2 is neither LOCAL nor PROXY")
        XCTAssertEqual(
            self.error(self.v2(family: 0x11, block: [1, 2, 3])),
            "PROXY v2 address block of 3 bytes is too short for its family")
        XCTAssertEqual(
            self.error(self.v2(family: 0x12, block: [UInt8](repeating: 0, count: 12))),
            "PROXY v2 family and transport 0x12 is not TCP over IPv4 or IPv6, a Unix stream or unspecified")
    }
}
