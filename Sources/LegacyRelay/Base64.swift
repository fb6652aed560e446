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
        let result: Result<ByteBuffer, DecodeError>? = text.withContiguousStorageIfAvailable { input in
            decode(UnsafeRawBufferPointer(input), allocator: allocator)
        }
        // ByteBufferView always has contiguous storage; the fallback copies, for completeness.
        switch result ?? Array(text).withUnsafeBytes({ decode($0, allocator: allocator) }) {
        case .success(let buffer): return buffer
        case .failure(let error): throw error
        }
    }

    private static func decode(_ input: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> Result<ByteBuffer, DecodeError> {
        var count = input.count
        // Strip up to two padding characters, but only when they complete a quad.
        if count % 4 == 0 {
            var padding = 0
            while padding < 2, count > 0, input[count - 1] == UInt8(ascii: "=") {
                count -= 1
                padding += 1
            }
        }
        if count % 4 == 1 { return .failure(.truncated(length: input.count)) }
        let outputLength = count / 4 * 3 + (count % 4 == 0 ? 0 : count % 4 - 1)
        var output = allocator.buffer(capacity: outputLength)
        var failure: DecodeError?
        decodeTable.withUnsafeBufferPointer { table in
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: outputLength) { out in
                var o = 0
                var i = 0
                var quad: UInt32 = 0
                var filled = 0
                while i < count {
                    let value = table[Int(input[i])]
                    if value == 0xFF {
                        failure = .invalidCharacter(input[i], offset: i)
                        return 0
                    }
                    quad = quad << 6 | UInt32(value)
                    filled += 1
                    i += 1
                    if filled == 4 {
                        out[o] = UInt8(truncatingIfNeeded: quad >> 16)
                        out[o + 1] = UInt8(truncatingIfNeeded: quad >> 8)
                        out[o + 2] = UInt8(truncatingIfNeeded: quad)
                        o += 3
                        quad = 0
                        filled = 0
                    }
                }
                if filled == 2 {
                    out[o] = UInt8(truncatingIfNeeded: quad >> 4)
                    o += 1
                } else if filled == 3 {
                    out[o] = UInt8(truncatingIfNeeded: quad >> 10)
                    out[o + 1] = UInt8(truncatingIfNeeded: quad >> 2)
                    o += 2
                }
                return o
            }
        }
        if let failure { return .failure(failure) }
        return .success(output)
    }
}
