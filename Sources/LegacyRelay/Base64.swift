import NIOCore

/// Standard base64 (RFC 4648, `+/`, `=` padding), written straight into and read straight out of
/// `ByteBuffer`s.
///
/// The old relay's bodies are base64 text; going through `String` or `Data` would cost two extra
/// copies of every TLS record on a path that is already the slow one. Decoding is strict about the
/// alphabet (a stray byte is a malformed body, not something to skip) and lenient only about
/// missing trailing padding, which some old clients left off.
public enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// 0xFF marks a byte outside the alphabet.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        return table
    }()

    /// How many characters `count` bytes take once encoded (with padding).
    public static func encodedLength(of count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Appends the base64 text of the readable bytes of `bytes` to `buffer`.
    public static func encode(_ bytes: ByteBuffer, into buffer: inout ByteBuffer) {
        let length = encodedLength(of: bytes.readableBytes)
        guard length > 0 else { return }
        bytes.withUnsafeReadableBytes { input in
            _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
                encode(input, into: out)
            }
        }
    }

    private static func encode(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int {
        alphabet.withUnsafeBufferPointer { alphabet in
            var o = 0
            var i = 0
            let count = input.count
            while i + 3 <= count {
                let value = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                out[o] = alphabet[Int(value >> 18 & 0x3F)]
                out[o + 1] = alphabet[Int(value >> 12 & 0x3F)]
                out[o + 2] = alphabet[Int(value >> 6 & 0x3F)]
                out[o + 3] = alphabet[Int(value & 0x3F)]
                i += 3
                o += 4
            }
            let rest = count - i
            if rest > 0 {
                let value = UInt32(input[i]) << 16 | (rest == 2 ? UInt32(input[i + 1]) << 8 : 0)
                out[o] = alphabet[Int(value >> 18 & 0x3F)]
                out[o + 1] = alphabet[Int(value >> 12 & 0x3F)]
                out[o + 2] = rest == 2 ? alphabet[Int(value >> 6 & 0x3F)] : UInt8(ascii: "=")
                out[o + 3] = UInt8(ascii: "=")
                o += 4
            }
            return o
        }
    }

    /// Why a base64 text was refused.
    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        /// A byte outside `A–Z a–z 0–9 + /` (or `=` anywhere but at the end), at this offset.
        case invalidCharacter(UInt8, offset: Int)
        /// The length leaves a single character over (`length % 4 == 1`): text was cut off.
        case truncated(length: Int)

        public var description: String {
            switch self {
            case .invalidCharacter(let byte, let offset):
                let shown = (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
                return "\(shown) at offset \(offset) is not base64"
            case .truncated(let length):
                return "\(length) base64 characters cannot encode whole bytes (the text looks cut off)"
            }
        }
    }

    /// Decodes base64 text; trailing `=` padding may be present or not.
    public static func decode(_ text: ByteBufferView, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws(DecodeError)
        -> ByteBuffer
    {
        var count = text.count
        // Strip up to two padding characters, but only when they complete a quad.
        if count % 4 == 0 {
            var padding = 0
            while padding < 2, count > 0, text[text.startIndex + count - 1] == UInt8(ascii: "=") {
                count -= 1
                padding += 1
            }
        }
        if count % 4 == 1 { throw .truncated(length: text.count) }
        var output = allocator.buffer(capacity: count / 4 * 3 + 2)
        var failure: DecodeError?
        decodeTable.withUnsafeBufferPointer { table in
            var quad: UInt32 = 0
            var filled = 0
            var offset = 0
            for byte in text.prefix(count) {
                let value = table[Int(byte)]
                if value == 0xFF {
                    failure = .invalidCharacter(byte, offset: offset)
                    return
                }
                quad = quad << 6 | UInt32(value)
                filled += 1
                offset += 1
                if filled == 4 {
                    output.writeInteger(UInt8(truncatingIfNeeded: quad >> 16))
                    output.writeInteger(UInt8(truncatingIfNeeded: quad >> 8))
                    output.writeInteger(UInt8(truncatingIfNeeded: quad))
                    quad = 0
                    filled = 0
                }
            }
            if filled == 2 {
                output.writeInteger(UInt8(truncatingIfNeeded: quad >> 4))
            } else if filled == 3 {
                output.writeInteger(UInt8(truncatingIfNeeded: quad >> 10))
                output.writeInteger(UInt8(truncatingIfNeeded: quad >> 2))
            }
        }
        if let failure { throw failure }
        return output
    }
}
