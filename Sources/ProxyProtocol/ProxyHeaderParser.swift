import NIOCore

/// What a PROXY protocol header (HAProxy's specification, v1 text or v2 binary) says about the
/// connection it precedes.
public struct ProxyHeader: Sendable, Equatable {
    public enum Command: Sendable, Equatable {
        /// Relayed for a client: `source` is the client's address (nil when the balancer did not
        /// know it: v1 `UNKNOWN`, v2 family unspecified).
        case proxy
        /// v2 `LOCAL`: the balancer's own connection (a health check); use the real endpoints.
        case local
    }

    public var version: Int
    public var command: Command
    public var source: SocketAddress?
    public var destination: SocketAddress?

    public init(version: Int, command: Command, source: SocketAddress?, destination: SocketAddress?) {
        self.version = version
        self.command = command
        self.source = source
        self.destination = destination
    }
}

/// Why bytes are not a PROXY header, in words for one log line.
public struct ProxyHeaderError: Error, Equatable, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Reads a PROXY header (v1 or v2, told apart by their signatures) from the first bytes of a
/// connection. A value type without I/O: the caller keeps the bytes received so far and asks
/// again when more arrive; it never needs more than ``maximumHeaderBytes`` of them.
public enum ProxyHeaderParser {
    public enum Result: Sendable, Equatable {
        /// Every byte so far could still begin a valid header.
        case needMoreBytes
        /// A header, `consumed` bytes long; what follows belongs to the connection.
        case header(ProxyHeader, consumed: Int)
        case invalid(ProxyHeaderError)
    }

    /// v1's limit (107 bytes with its CRLF).
    public static let maximumV1Bytes = 107
    /// v2: the 16-byte fixed part and at most this much of addresses and TLVs. The field allows
    /// 65,535; a header is refused above this rather than buffered (the addresses take at most 216).
    public static let maximumV2PayloadBytes = 2048
    public static var maximumHeaderBytes: Int { 16 + maximumV2PayloadBytes }

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let v1Signature = Array("PROXY ".utf8)

    public static func parse(_ bytes: some Collection<UInt8>) -> Result {
        let bytes = Array(bytes)
        if bytes.starts(with: v2Signature.prefix(bytes.count)) {
            return bytes.count < v2Signature.count ? .needMoreBytes : parseV2(bytes)
        }
        if bytes.starts(with: v1Signature.prefix(bytes.count)) {
            return bytes.count < v1Signature.count ? .needMoreBytes : parseV1(bytes)
        }
        return .invalid(ProxyHeaderError("the connection does not begin with a PROXY header (v1 or v2)"))
    }

    // MARK: v1

    private static func parseV1(_ bytes: [UInt8]) -> Result {
        let window = bytes.prefix(maximumV1Bytes)
        guard let lineFeed = window.firstIndex(of: 0x0A) else {
            return bytes.count >= maximumV1Bytes
                ? .invalid(ProxyHeaderError("PROXY v1 line longer than \(maximumV1Bytes) bytes"))
                : .needMoreBytes
        }
        guard lineFeed > 0, bytes[lineFeed - 1] == 0x0D else {
            return .invalid(ProxyHeaderError("PROXY v1 line not ended by CRLF"))
        }
        guard let line = String(validating: bytes[..<(lineFeed - 1)], as: UTF8.self) else {
            return .invalid(ProxyHeaderError("PROXY v1 line is not text"))
        }
        let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let consumed = lineFeed + 1
        guard fields.count >= 2 else { return .invalid(ProxyHeaderError("PROXY v1 line without a protocol")) }
        if fields[1] == "UNKNOWN" {
            return .header(ProxyHeader(version: 1, command: .proxy, source: nil, destination: nil), consumed: consumed)
        }
        guard fields[1] == "TCP4" || fields[1] == "TCP6" else {
            return .invalid(ProxyHeaderError("PROXY v1 protocol \"\(fields[1].prefix(16))\" is not TCP4, TCP6 or UNKNOWN"))
        }
        guard fields.count == 6 else {
            return .invalid(ProxyHeaderError("PROXY v1 line needs 6 fields separated by single spaces, got \(fields.count)"))
        }
        guard let sourcePort = port(fields[4]), let destinationPort = port(fields[5]) else {
            return .invalid(ProxyHeaderError("PROXY v1 port is not a number from 0 to 65535"))
        }
        guard let source = try? SocketAddress(ipAddress: fields[2], port: sourcePort),
            let destination = try? SocketAddress(ipAddress: fields[3], port: destinationPort)
        else {
            return .invalid(ProxyHeaderError("PROXY v1 address is not an IP address"))
        }
        let wantsV4 = fields[1] == "TCP4"
        guard (source.protocol == .inet) == wantsV4, (destination.protocol == .inet) == wantsV4 else {
            return .invalid(ProxyHeaderError("PROXY v1 addresses do not match \(fields[1])"))
        }
        return .header(ProxyHeader(version: 1, command: .proxy, source: source, destination: destination), consumed: consumed)
    }

    private static func port(_ text: String) -> Int? {
        guard (1...5).contains(text.count), text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber),
            let value = Int(text), value <= 65535
        else { return nil }
        return value
    }

    // MARK: v2

    private static func parseV2(_ bytes: [UInt8]) -> Result {
        guard bytes.count >= 16 else { return .needMoreBytes }
        let versionAndCommand = bytes[12]
        guard versionAndCommand >> 4 == 2 else {
            return .invalid(ProxyHeaderError("PROXY v2 header with version \(versionAndCommand >> 4)"))
        }
        let command: ProxyHeader.Command
        switch versionAndCommand & 0x0F {
        case 0: command = .local
        case 1: command = .proxy
        case let other: return .invalid(ProxyHeaderError("PROXY v2 command \(other) is neither LOCAL nor PROXY"))
        }
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        guard length <= maximumV2PayloadBytes else {
            return .invalid(ProxyHeaderError("PROXY v2 header of \(16 + length) bytes, above the limit of \(maximumHeaderBytes)"))
        }
        guard bytes.count >= 16 + length else { return .needMoreBytes }
        let consumed = 16 + length
        let block = Array(bytes[16..<consumed])
        let family = bytes[13]
        if command == .local {
            return .header(ProxyHeader(version: 2, command: .local, source: nil, destination: nil), consumed: consumed)
        }
        switch family {
        case 0x00:
            return .header(ProxyHeader(version: 2, command: .proxy, source: nil, destination: nil), consumed: consumed)
        case 0x11, 0x21:
            let addressBytes = family == 0x11 ? 4 : 16
            guard block.count >= 2 * addressBytes + 4 else {
                return .invalid(ProxyHeaderError("PROXY v2 address block of \(block.count) bytes is too short for its family"))
            }
            let source = address(block[0..<addressBytes], port: block[(2 * addressBytes)...].prefix(2))
            let destination = address(block[addressBytes..<(2 * addressBytes)], port: block[(2 * addressBytes + 2)...].prefix(2))
            return .header(ProxyHeader(version: 2, command: .proxy, source: source, destination: destination), consumed: consumed)
        case 0x31:
            guard block.count >= 216 else {
                return .invalid(ProxyHeaderError("PROXY v2 address block of \(block.count) bytes is too short for its family"))
            }
            return .header(ProxyHeader(version: 2, command: .proxy, source: nil, destination: nil), consumed: consumed)
        default:
            return .invalid(
                ProxyHeaderError(
                    "PROXY v2 family and transport 0x\(String(family, radix: 16)) is not TCP over IPv4 or IPv6, a Unix stream or unspecified"
                ))
        }
    }

    private static func address(_ ip: ArraySlice<UInt8>, port: ArraySlice<UInt8>) -> SocketAddress? {
        let portValue = Int(port[port.startIndex]) << 8 | Int(port[port.startIndex + 1])
        let text: String
        if ip.count == 4 {
            text = ip.map(String.init).joined(separator: ".")
        } else {
            let groups = stride(from: ip.startIndex, to: ip.endIndex, by: 2).map {
                String(UInt16(ip[$0]) << 8 | UInt16(ip[$0 + 1]), radix: 16)
            }
            text = groups.joined(separator: ":")
        }
        return try? SocketAddress(ipAddress: text, port: portValue)
    }
}
