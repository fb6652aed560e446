import FuzzDriver
import NIOCore
import NIOEmbedded
import SwiftProtobuf
import TransportProtocol

/// Feeds arbitrary bytes to the 8-byte length-prefix framing and the protobuf messages inside
/// it, as they would arrive inside TLS from an untrusted peer.
///
/// Input layout: the first byte is a control byte (it picks the message limit and how the rest
/// is cut into reads); the rest is the byte stream. For every input:
/// - the pure ``LengthPrefixFrameDecoder`` decodes the stream in one read, one byte per read
///   and in reads of fuzzer-chosen sizes, and all three must give the same messages and errors
///   (requests and responses both);
/// - a refused length never leads to a payload buffer, and the buffer for a partly received
///   payload follows the bytes that arrived, never the claimed length;
/// - every decoded message re-encodes and decodes to an equal message;
/// - ``LengthPrefixedMessageDecoder`` on an `EmbeddedChannel` reports exactly those messages
///   and errors, and its progress callback stays within the announced size.
/// Any crash, trap or failed check is a bug; errors are the expected outcome for garbage.
func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
    guard let control = bytes.first else { return }
    let stream = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
    // Small limits, so prefixes over the limit (and exactly at it) are common; 0 allows only empty messages.
    let limit = Int(control & 0x3f) * 4
    let chunked = chunks(of: stream, control: control)

    check(RuntimeManagerRequest.self, stream: stream, chunked: chunked, limit: limit)
    check(RuntimeManagerResponse.self, stream: stream, chunked: chunked, limit: limit)
}

/// What the decoding of one stream reported, in order.
enum Event<M: SwiftProtobuf.Message & Equatable>: Equatable {
    case message(M)
    case error(TransportProtocolError)
}

func check<M: SwiftProtobuf.Message & Equatable>(_: M.Type, stream: ByteBuffer, chunked: [ByteBuffer], limit: Int) {
    let whole = decodeAll(M.self, reads: [stream], limit: limit)
    let byteWise = decodeAll(
        M.self, reads: (0..<stream.readableBytes).map { stream.getSlice(at: $0, length: 1)! }, limit: limit)
    let split = decodeAll(M.self, reads: chunked, limit: limit)
    require(whole == byteWise, "one read and one byte per read decode differently: \(whole) vs \(byteWise)")
    require(whole == split, "one read and fuzzer-chosen reads decode differently: \(whole) vs \(split)")

    for case .message(let message) in whole {
        guard let framed = try? message.lengthPrefixedByteBuffer() else {
            fail("a decoded \(M.protoMessageName) does not re-encode: \(message)")
        }
        let again = decodeAll(M.self, reads: [framed], limit: Int.max)
        require(again == [.message(message)], "re-encoded \(message) decodes as \(again)")
    }

    let handled = throughHandler(M.self, reads: chunked, limit: limit)
    require(handled == whole, "the channel handler reports \(handled), the decoder \(whole)")
}

/// Decodes `reads` as the handler does: a framing error ends decoding, a malformed payload does
/// not; at the end of the stream a partial message is an error. Checks the memory bounds as it goes.
func decodeAll<M: SwiftProtobuf.Message & Equatable>(_: M.Type, reads: [ByteBuffer], limit: Int) -> [Event<M>] {
    var decoder = LengthPrefixFrameDecoder(maximumMessageBytes: limit)
    var events: [Event<M>] = []
    var arrived = 0
    for read in reads {
        decoder.append(read)
        arrived += read.readableBytes
        while true {
            let payload: ByteBuffer?
            do {
                payload = try decoder.nextPayload()
            } catch let error as TransportProtocolError {
                guard case .messageTooLarge(let length, let refusedLimit) = error, length > UInt64(limit),
                    refusedLimit == limit
                else { fail("nextPayload threw \(error) for limit \(limit)") }
                require(decoder.gatheredCapacity == 0, "a refused length of \(length) left a payload buffer")
                decoder.append(ByteBuffer(bytes: [1, 2, 3]))
                require((try? decoder.nextPayload()) == nil, "the decoder did not stay failed after \(error)")
                require(decoder.errorAtEndOfStream == nil, "a failed decoder reports a second error at the end")
                events.append(.error(error))
                return events
            } catch {
                fail("nextPayload threw a foreign error \(error)")
            }
            guard let payload else { break }
            require(payload.readableBytes <= limit, "a payload of \(payload.readableBytes) bytes passed limit \(limit)")
            do {
                events.append(.message(try M(payload: payload)))
            } catch {
                events.append(.error(.malformedMessage(type: M.protoMessageName, reason: "\(error)")))
            }
        }
        let capacity = decoder.gatheredCapacity
        if let (received, expected) = decoder.partialPayloadProgress {
            require(received < expected && expected <= limit, "progress \(received) of \(expected), limit \(limit)")
            require(capacity <= powerOfTwo(atLeast: expected), "buffer of \(capacity) for a \(expected)-byte message")
        }
        require(capacity <= 4 * arrived + 64, "buffer of \(capacity) bytes after \(arrived) bytes arrived")
    }
    if let error = decoder.errorAtEndOfStream {
        events.append(.error(error))
    }
    return events
}

/// The same reads through the real NIO handler; records what it passes on.
func throughHandler<M: SwiftProtobuf.Message & Equatable>(_: M.Type, reads: [ByteBuffer], limit: Int) -> [Event<M>] {
    let recorder = Recorder<M>()
    let channel = EmbeddedChannel()
    let decoder = LengthPrefixedMessageDecoder<M>(
        maximumMessageBytes: limit,
        progress: { received, expected in
            require(received <= expected && expected <= limit, "progress \(received) of \(expected), limit \(limit)")
        })
    do {
        try channel.pipeline.syncOperations.addHandlers([decoder, recorder])
        _ = try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        for read in reads {
            try channel.writeInbound(read)
        }
        _ = try channel.finish()
    } catch {
        fail("the embedded channel failed: \(error)")
    }
    return recorder.events
}

final class Recorder<M: SwiftProtobuf.Message & Equatable>: ChannelInboundHandler {
    typealias InboundIn = M
    var events: [Event<M>] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.events.append(.message(self.unwrapInboundIn(data)))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let error = error as? TransportProtocolError else { fail("the handler reported a foreign error \(error)") }
        self.events.append(.error(error))
    }
}

/// Cuts `stream` into reads whose sizes come from the control byte: a small generator seeded by
/// it picks each size up to a maximum it also picks (empty reads included).
func chunks(of stream: ByteBuffer, control: UInt8) -> [ByteBuffer] {
    let maximumRead = [1, 2, 3, 7, 8, 9, 16, 100][Int(control >> 6) * 2 + Int(control & 1)]
    var state = UInt32(control) &* 2_654_435_761 | 1
    var offset = 0
    var reads: [ByteBuffer] = []
    while offset < stream.readableBytes {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        let size = min(Int(state % UInt32(maximumRead + 1)), stream.readableBytes - offset)
        reads.append(stream.getSlice(at: offset, length: size)!)
        offset += size
    }
    return reads
}

/// The capacity NIO gives a buffer asked for `bytes` (it rounds up to a power of two).
func powerOfTwo(atLeast bytes: Int) -> Int {
    var power = 1
    while power < bytes { power <<= 1 }
    return power
}

func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fail(message()) }
}

func fail(_ message: String) -> Never {
    fatalError("LengthPrefixFuzzer: \(message)")
}

#if FUZZING
// swift-format-ignore: AlwaysUseLowerCamelCase
// libFuzzer's C name.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_cdecl("LengthPrefixFuzzer_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzerDriver(argc, argv, LLVMFuzzerTestOneInput)
}
#else
@main
struct Replay {
    static func main() throws { try replayFiles(fuzzOne) }
}
#endif
