/// Hex-dump text shared by `muxcat listen` (binary chunks) and `muxcat decode` (payload previews),
/// in the layout of `hexdump -C`, which most people can already read.
public enum HexDump {
    private static let digits = Array("0123456789abcdef".utf8)

    /// `68 65 6c 6c 6f`
    public static func hex<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3)
        for byte in bytes {
            if !out.isEmpty { out.append(UInt8(ascii: " ")) }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Printable ASCII as itself, everything else as `.`.
    public static func ascii<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        String(decoding: bytes.map { (0x20...0x7E).contains($0) ? $0 : UInt8(ascii: ".") }, as: UTF8.self)
    }

    /// One `hexdump -C` line for up to 16 bytes at `offset`:
    /// `00000010  68 65 6c 6c 6f 20 77 6f  72 6c 64 0a              |hello world.|`
    public static func line(_ bytes: ArraySlice<UInt8>, offset: Int) -> String {
        var hexPart = ""
        for (i, byte) in bytes.enumerated() {
            hexPart += hex([byte]) + " "
            if i == 7 { hexPart += " " }
        }
        let width = 16 * 3 + 1
        hexPart += String(repeating: " ", count: max(0, width - hexPart.count))
        let offsetText = String(offset, radix: 16)
        let paddedOffset = String(repeating: "0", count: max(0, 8 - offsetText.count)) + offsetText
        return "\(paddedOffset)  \(hexPart) |\(ascii(bytes))|"
    }

    /// The lines of a full dump, 16 bytes each, offsets counted from `startOffset`.
    public static func lines(_ bytes: [UInt8], startOffset: Int = 0) -> [String] {
        stride(from: 0, to: bytes.count, by: 16).map { start in
            line(bytes[start..<min(start + 16, bytes.count)], offset: startOffset + start)
        }
    }
}
