import NIOCore

/// Turns the chunks arriving on one stream into terminal text for `muxcat listen`'s default mode:
/// every line marked with where it came from, text shown as text, anything else as a hex dump.
///
/// A chunk is text when it is valid UTF-8 without control characters other than tab, CR and LF;
/// otherwise (or with `--hex`) it is dumped by NIO's `hexDump(format: .detailed)` (the layout of
/// `hexdump -C`, last line the offset after the chunk), with offsets counted from the start of
/// the stream so two dumps of the same stream line up. Each chunk ends its own line (a chunk
/// without a final newline still gets one), so chunks from different streams never share a line.
public struct ChunkFormatter: Sendable {
    /// The mark in front of every line, e.g. `[link 1 stream 3]`.
    public let label: String
    public let forceHex: Bool
    /// Bytes of this stream formatted so far (the hex dump's offset).
    public private(set) var streamOffset = 0

    public init(link: Int, stream: UInt32, forceHex: Bool) {
        self.label = "[link \(link) stream \(stream)]"
        self.forceHex = forceHex
    }

    public mutating func format(_ chunk: ByteBuffer) -> String {
        let bytes = Array(chunk.readableBytesView)
        defer { streamOffset += bytes.count }
        guard !bytes.isEmpty else { return "" }
        var out = ""
        if !forceHex, ChunkFormatter.printableText(bytes) != nil {
            // Split on the byte: as Characters, "\r\n" is one grapheme and would not split on "\n".
            var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            if bytes.last == UInt8(ascii: "\n") { lines.removeLast() }
            for line in lines { out += "\(label) \(String(decoding: line, as: UTF8.self))\n" }
        } else {
            for line in ChunkFormatter.streamOffsetDump(chunk, at: streamOffset) { out += "\(label) \(line)\n" }
        }
        return out
    }

    /// NIO's `hexdump -C` layout for `chunk`, with its offsets (the first eight hex digits of every
    /// line, counted from the chunk's start) moved on by `streamOffset`.
    static func streamOffsetDump(_ chunk: ByteBuffer, at streamOffset: Int) -> [Substring] {
        chunk.hexDump(format: .detailed).split(separator: "\n").map { line in
            let offsetDigits = line.prefix(8)
            guard streamOffset > 0, offsetDigits.count == 8, let offset = Int(offsetDigits, radix: 16) else { return line }
            let moved = String(offset + streamOffset, radix: 16)
            return Substring(String(repeating: "0", count: max(0, 8 - moved.count)) + moved + line.dropFirst(8))
        }
    }

    /// The bytes as a string, if they are text a terminal can show as is.
    static func printableText(_ bytes: [UInt8]) -> String? {
        for byte in bytes where byte < 0x20 || byte == 0x7F {
            guard byte == 0x09 || byte == 0x0A || byte == 0x0D else { return nil }
        }
        // Decoding replaces invalid sequences; if nothing was replaced, the bytes were UTF-8.
        let text = String(decoding: bytes, as: UTF8.self)
        return text.utf8.elementsEqual(bytes) ? text : nil
    }
}
