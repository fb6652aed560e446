import NIOCore
import NIOEmbedded
import ProxyProtocol
import XCTest

/// The receiver on an embedded channel (virtual time): what it passes on, when it removes
/// itself, and each way a connection is refused; and the v2 header `--send-proxy` writes, read
/// back by the parser.
final class ProxyHeaderReceiverTests: XCTestCase {
    /// Takes what the receiver passes on.
    private final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var bytes: [UInt8] = []
        var announced: [ProxyHeader] = []
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.bytes += Array(self.unwrapInboundIn(data).readableBytesView)
        }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let received = event as? ProxyHeaderReceived { self.announced.append(received.header) }
        }
    }

    private struct Setup {
        let channel: EmbeddedChannel
        let collector: Collector
        let outcomes: Outcomes
    }

    private final class Outcomes {
        var headers: [ProxyHeader] = []
        var refusals: [String] = []
    }

    private func makeChannel(closeOnLocal: Bool = false) throws -> Setup {
        let channel = EmbeddedChannel()
        let collector = Collector()
        let outcomes = Outcomes()
        let receiver = ProxyHeaderReceiver { outcome, channel in
            switch outcome {
            case .header(let header):
                outcomes.headers.append(header)
                if closeOnLocal && header.command == .local { channel.close(promise: nil) }
            case .refused(let why):
                outcomes.refusals.append(why)
            }
        }
        try channel.pipeline.syncOperations.addHandler(receiver)
        try channel.pipeline.syncOperations.addHandler(collector)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return Setup(channel: channel, collector: collector, outcomes: outcomes)
    }

    private func send(_ bytes: [UInt8], to channel: EmbeddedChannel) throws {
        try channel.writeInbound(ByteBuffer(bytes: bytes))
    }

    private let v1Line = Array("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n".utf8)

    func testAHeaderSplitByteByByteIsReadAndWhatFollowsPassesOn() throws {
        let setup = try self.makeChannel()
        for byte in self.v1Line + Array("hel".utf8) {
            try self.send([byte], to: setup.channel)
        }
        try self.send(Array("lo".utf8), to: setup.channel)
        XCTAssertEqual(setup.outcomes.headers.map(\.source), [try SocketAddress(ipAddress: "192.0.2.1", port: 56324)])
        XCTAssertEqual(setup.collector.announced.count, 1, "ProxyHeaderReceived goes down the pipeline")
        XCTAssertEqual(setup.collector.bytes, Array("hello".utf8), "the byte after the header and everything later")
        XCTAssertThrowsError(
            try setup.channel.pipeline.syncOperations.handler(type: ProxyHeaderReceiver.self),
            "the receiver leaves the pipeline once the header is read")
        XCTAssertTrue(setup.channel.isActive)
        // Its timer went with it.
        setup.channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        XCTAssertTrue(setup.channel.isActive)
        XCTAssertEqual(setup.outcomes.refusals, [])
    }

    func testHeaderAndPayloadInOneReadPassTheRestOnce() throws {
        let setup = try self.makeChannel()
        try self.send(self.v1Line + Array("payload".utf8), to: setup.channel)
        XCTAssertEqual(setup.collector.bytes, Array("payload".utf8))
        XCTAssertEqual(setup.outcomes.headers.count, 1)
    }

    func testNoHeaderWithinTheTimeoutIsRefusedOnVirtualTime() throws {
        let setup = try self.makeChannel()
        try self.send(Array("PROXY TCP4 ".utf8), to: setup.channel)
        setup.channel.embeddedEventLoop.advanceTime(by: .milliseconds(4_999))
        XCTAssertTrue(setup.channel.isActive, "not before 5 s")
        setup.channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(setup.channel.isActive)
        XCTAssertEqual(setup.outcomes.refusals, ["no complete PROXY header within 5 s (11 bytes of it arrived)"])
        XCTAssertEqual(setup.collector.bytes, [], "nothing reaches the handlers behind it")
    }

    func testMalformedHeadersCloseTheConnectionAndPassNothingOn() throws {
        let cases: [([UInt8], String)] = [
            (Array("GET / HTTP/1.1\r\n\r\n".utf8), "the connection does not begin with a PROXY header (v1 or v2)"),
            (Array("PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n".utf8), "PROXY v1 line not ended by CRLF"),
            (Array(("PROXY TCP4 " + String(repeating: "1", count: 200)).utf8), "PROXY v1 line longer than 107 bytes"),
            (
                ProxyHeaderParserTests.v2(family: 0x11, block: [], announcing: 2049),
                "PROXY v2 header of 2065 bytes, above the limit of 2064"
            ),
            (
                ProxyHeaderParserTests.v2(family: 0x41, block: [UInt8](repeating: 0, count: 12)),
                "PROXY v2 family and transport 0x41 is not TCP over IPv4 or IPv6, a Unix stream or unspecified"
            ),
        ]
        for (bytes, reason) in cases {
            let setup = try self.makeChannel()
            try self.send(bytes + Array("secret".utf8), to: setup.channel)
            XCTAssertFalse(setup.channel.isActive, reason)
            XCTAssertEqual(setup.outcomes.refusals, [reason])
            XCTAssertEqual(setup.collector.bytes, [], reason)
        }
    }

    func testAConnectionEndingBeforeItsHeaderIsRefused() throws {
        let setup = try self.makeChannel()
        try self.send(Array("PROXY".utf8), to: setup.channel)
        setup.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        XCTAssertEqual(setup.outcomes.refusals, ["the connection ended before a complete PROXY header (5 bytes of it arrived)"])
        XCTAssertFalse(setup.channel.isActive)
    }

    func testALocalHeaderIsReportedForTheCallerToClose() throws {
        let setup = try self.makeChannel(closeOnLocal: true)
        try self.send(ProxyHeaderParserTests.v2(command: 0x20, family: 0x00, block: []) + [1, 2, 3], to: setup.channel)
        XCTAssertEqual(setup.outcomes.headers.map(\.command), [.local])
        XCTAssertFalse(setup.channel.isActive)
        XCTAssertEqual(setup.collector.bytes, [], "a closed connection's bytes go nowhere")
    }

    /// v2 TLVs are skipped, up to the limit of 2,048 bytes after the fixed part, and no further.
    func testTLVsAreSkippedUpToTheLimit() throws {
        let addresses: [UInt8] = [192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB]
        let tlvValue = 2048 - addresses.count - 3
        let tlv: [UInt8] = [0x04, UInt8(tlvValue >> 8), UInt8(tlvValue & 0xFF)] + [UInt8](repeating: 0x61, count: tlvValue)
        let setup = try self.makeChannel()
        let header = ProxyHeaderParserTests.v2(family: 0x11, block: addresses + tlv)
        XCTAssertEqual(header.count, ProxyHeaderParser.maximumHeaderBytes)
        for chunk in stride(from: 0, to: header.count, by: 100) {
            try self.send(Array(header[chunk..<min(chunk + 100, header.count)]), to: setup.channel)
        }
        try self.send([0x16], to: setup.channel)
        XCTAssertEqual(setup.outcomes.headers.map(\.source), [try SocketAddress(ipAddress: "192.0.2.1", port: 56324)])
        XCTAssertEqual(setup.collector.bytes, [0x16])

        let oneMore = try self.makeChannel()
        try self.send(ProxyHeaderParserTests.v2(family: 0x11, block: addresses + tlv + [0]), to: oneMore.channel)
        XCTAssertEqual(oneMore.outcomes.refusals, ["PROXY v2 header of 2065 bytes, above the limit of 2064"])
    }

    // MARK: The header --send-proxy writes

    func testEncodedV2HeadersParseBackToTheSameAddresses() throws {
        let pairs: [(SocketAddress, SocketAddress)] = [
            (try SocketAddress(ipAddress: "192.0.2.1", port: 56324), try SocketAddress(ipAddress: "198.51.100.7", port: 443)),
            (try SocketAddress(ipAddress: "2001:db8::1", port: 1), try SocketAddress(ipAddress: "::1", port: 65535)),
        ]
        for (source, destination) in pairs {
            let bytes = ProxyHeaderEncoder.v2(source: source, destination: destination)
            guard case .header(let header, let consumed) = ProxyHeaderParser.parse(bytes + [9]) else {
                return XCTFail("not a header: \(bytes)")
            }
            XCTAssertEqual(consumed, bytes.count)
            XCTAssertEqual(header, ProxyHeader(version: 2, command: .proxy, source: source, destination: destination))
        }
        // An IPv4 client of an IPv6 listener: written IPv4-mapped, so both fit one family.
        let mixed = ProxyHeaderEncoder.v2(
            source: try SocketAddress(ipAddress: "192.0.2.1", port: 5), destination: try SocketAddress(ipAddress: "::1", port: 6))
        guard case .header(let header, _) = ProxyHeaderParser.parse(mixed) else { return XCTFail("mixed") }
        XCTAssertEqual(header.source, try SocketAddress(ipAddress: "::ffff:192.0.2.1", port: 5))
        // No IP address to tell (a Unix socket, an unknown client): PROXY with the family unspecified.
        for source in [try SocketAddress(unixDomainSocketPath: "/tmp/x"), nil] as [SocketAddress?] {
            let unspecified = ProxyHeaderEncoder.v2(source: source, destination: try SocketAddress(ipAddress: "::1", port: 6))
            XCTAssertEqual(unspecified.count, 16)
            XCTAssertEqual(
                ProxyHeaderParser.parse(unspecified),
                .header(ProxyHeader(version: 2, command: .proxy, source: nil, destination: nil), consumed: 16))
        }
    }
}
