import ExtrasBase64
import NIOCore

/// Standard base64 (RFC 4648, `+/`, `=` padding), written straight into and read straight out of
/// `ByteBuffer`s by swift-extras-base64 (its span API: no intermediate array).
///
/// The old relay's bodies are base64 text; going through `String` or `Data` would cost two extra
/// copies of every TLS record on a path that is already the slow one. Decoding is strict about the
/// alphabet (a stray byte is a malformed body, not something to skip, and the error says where)
/// and lenient only about missing trailing padding, which some old clients left off.
///
/// Why the library and not our own loop (which this replaced): Benchmarks/, `base64 …` on one
/// 16 KiB TLS record ×100, release, same run: the hand-written loop decoded in 3.2 ms against
/// swift-extras-base64's 0.84 ms (p50; 1.6 against 0.76 at p0) and encoded in 1.8 against 1.9 ms
/// (the same within the noise). This wrapper now decodes in 0.80 ms beside the bare library's
/// 0.79: the padding check and the error offsets cost nothing on the way through.
public enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// How many characters `count` bytes take once encoded (with padding).
    public static func encodedLength(of count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Appends the base64 text of the readable bytes of `bytes` to `buffer`.
    public static func encode(_ bytes: ByteBuffer, into buffer: inout ByteBuffer) {
        let length = encodedLength(of: bytes.readableBytes)
        guard length > 0 else { return }
        bytes.withUnsafeReadableBytes { input in
            _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
                var output = out.bindMemory(to: UInt8.self).mutableSpan
                return ExtrasBase64.Base64.encode(bytes: input.bindMemory(to: UInt8.self).span, into: &output)
            }
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
        if input.count % 4 == 1 { return .failure(.truncated(length: input.count)) }
        let text = input.bindMemory(to: UInt8.self)
        // Padded text as the library expects it; text without its padding told so.
        let options: ExtrasBase64.Base64.DecodingOptions = input.count % 4 == 0 ? [] : .omitPaddingCharacter
        let outputLength = ExtrasBase64.Base64.decodedLength(bytesCount: input.count)
        var output = allocator.buffer(capacity: outputLength)
        do {
            try output.writeWithUnsafeMutableBytes(minimumWritableBytes: outputLength) { out in
                var span = out.bindMemory(to: UInt8.self).mutableSpan
                return try ExtrasBase64.Base64.decode(bytes: text.span, into: &span, options: options)
            }
        } catch {
            // The library says what, not where: the first byte outside the alphabet (a `=` before
            // the end is one), else the text cannot encode whole bytes.
            let offset = text.firstIndex { !alphabet.contains($0) }
            guard let offset, !(text[offset...].allSatisfy { $0 == UInt8(ascii: "=") } && text.count - offset <= 2) else {
                return .failure(.truncated(length: input.count))
            }
            return .failure(.invalidCharacter(text[offset], offset: offset))
        }
        return .success(output)
    }
}
