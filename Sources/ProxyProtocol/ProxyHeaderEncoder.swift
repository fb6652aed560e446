import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes the PROXY v2 header a relay sends ahead of a connection's bytes (`repeaterd --send-proxy`).
///
/// Only v2: it is binary (no text to format per connection), every receiver that reads v1 also
/// reads v2 (HAProxy, nginx, this project's own), and it can say "relayed, but no IP address
/// to tell" (family unspecified), which a client on a Unix socket needs.
public enum ProxyHeaderEncoder {
    /// The header for a connection from `source` to `destination`. Two IPv4 addresses give the
    /// IPv4 form and two IPv6 addresses the IPv6 form; an IPv4 address beside an IPv6 one (a
    /// dual-stack listener) is written IPv4-mapped; anything else (a Unix socket, an address the
    /// relay does not know) gives the unspecified family, for which a receiver uses the endpoints
    /// it sees.
    public static func v2(source: SocketAddress?, destination: SocketAddress?) -> [UInt8] {
        var bytes = ProxyHeaderParser.v2Signature
        bytes.append(0x21)  // version 2, PROXY
        switch (source.flatMap(ipBytes), destination.flatMap(ipBytes)) {
        case ((let sourceIP, let sourcePort)?, (let destinationIP, let destinationPort)?):
            let asIPv6 = sourceIP.count == 16 || destinationIP.count == 16
            let sourceIP = asIPv6 ? mappedToIPv6(sourceIP) : sourceIP
            let destinationIP = asIPv6 ? mappedToIPv6(destinationIP) : destinationIP
            bytes.append(asIPv6 ? 0x21 : 0x11)
            let length = 2 * sourceIP.count + 4
            bytes += [UInt8(length >> 8), UInt8(length & 0xFF)]
            bytes += sourceIP + destinationIP
            bytes += [UInt8(sourcePort >> 8), UInt8(sourcePort & 0xFF), UInt8(destinationPort >> 8), UInt8(destinationPort & 0xFF)]
        default:
            bytes += [0x00, 0x00, 0x00]  // unspecified family, no address block
        }
        return bytes
    }

    /// The address's bytes in network order and its port, for an IP address.
    private static func ipBytes(_ address: SocketAddress) -> ([UInt8], Int)? {
        guard let port = address.port, let text = address.ipAddress else { return nil }
        let family: CInt
        switch address.protocol {
        case .inet: family = AF_INET
        case .inet6: family = AF_INET6
        default: return nil
        }
        var bytes = [UInt8](repeating: 0, count: family == AF_INET ? 4 : 16)
        let converted = bytes.withUnsafeMutableBytes { inet_pton(family, text, $0.baseAddress) }
        return converted == 1 ? (bytes, port) : nil
    }

    /// `::ffff:a.b.c.d` for an IPv4 address; an IPv6 address as it is.
    private static func mappedToIPv6(_ ip: [UInt8]) -> [UInt8] {
        ip.count == 16 ? ip : [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + ip
    }
}
