/// The reason codes in a BoringSSL error text, the part a user (and a metric label) can use.
///
/// BoringSSL prints "error:10000416:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_UNKNOWN"
/// (several, when errors queued); the codes are the words after each "OPENSSL_internal:". One
/// parser for the client and the runtime manager, written without Foundation's `range(of:)`.
public enum TLSLibraryReasons {
    public static func codes(in text: String) -> [String] {
        let marker = Array("OPENSSL_internal:".utf8)
        let bytes = Array(text.utf8)
        var reasons: [String] = []
        var index = 0
        while index + marker.count <= bytes.count {
            guard bytes[index..<(index + marker.count)].elementsEqual(marker) else {
                index += 1
                continue
            }
            index += marker.count
            let start = index
            while index < bytes.count, Self.isCodeByte(bytes[index]) { index += 1 }
            if index > start { reasons.append(String(decoding: bytes[start..<index], as: UTF8.self)) }
        }
        return reasons
    }

    /// Letters, digits and `_`: what BoringSSL's reason names are made of.
    private static func isCodeByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
    }
}
