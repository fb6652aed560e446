import FuzzDriver
import NIOCore
import NIOEmbedded
import ProxyProtocol

/// Feeds arbitrary bytes to the PROXY header parser, as the first bytes of a client connection
/// would arrive at `repeaterd --accept-proxy` from anyone who can reach it.
///
/// Input layout: the first byte is a control byte (how the rest is cut into reads); the rest is
/// the connection's first bytes. For every input:
/// - an incomplete header is never longer than ``ProxyHeaderParser/maximumHeaderBytes``;
/// - the verdict depends only on the bytes it consumed: a header parses the same from exactly
///   its own bytes, every shorter prefix asks for more, and more bytes never turn a refusal
///   into a header;
/// - ``ProxyHeaderReceiver`` on an `EmbeddedChannel`, fed the bytes in fuzzer-chosen reads,
///   reports the parser's verdict and passes on exactly the bytes after the header;
/// - a v2 header written by ``ProxyHeaderEncoder`` for addresses taken from the input parses
///   back to those addresses.
/// Any crash, trap or failed check is a bug; refusals are the expected outcome for garbage.
func fuzzOne(_ input: UnsafeRawBufferPointer) {
    guard let control = input.first else { return }
    let bytes = Array(input.dropFirst())
    let verdict = ProxyHeaderParser.parse(bytes)
    switch verdict {
    case .needMoreBytes:
        require(bytes.count < ProxyHeaderParser.maximumHeaderBytes, "\(bytes.count) bytes still need more")
    case .header(_, let consumed):
        require(
            consumed > 0 && consumed <= min(bytes.count, ProxyHeaderParser.maximumHeaderBytes), "consumed \(consumed) of \(bytes.count)")
        require(ProxyHeaderParser.parse(bytes.prefix(consumed)) == verdict, "the header's own bytes parse differently")
        for count in [0, 1, consumed / 2, consumed - 1] where count < consumed {
            require(
                ProxyHeaderParser.parse(bytes.prefix(count)) == .needMoreBytes, "a \(count)-byte prefix of a header does not ask for more")
        }
    case .invalid:
        for extra in [[0x0D, 0x0A], [0x00], [UInt8](repeating: 0x20, count: 200)] as [[UInt8]] {
            if case .header = ProxyHeaderParser.parse(bytes + extra) {
                fail("refused bytes became a header with \(extra.count) more")
            }
        }
    }
    checkReceiver(bytes: bytes, control: control, verdict: verdict)
    checkEncoder(bytes)
}

/// The receiver, fed the same bytes in reads, agrees with the parser.
func checkReceiver(bytes: [UInt8], control: UInt8, verdict: ProxyHeaderParser.Result) {
    final class Seen {
        var outcome: ProxyHeaderReceiver.Outcome?
        var passedOn: [UInt8] = []
    }
    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let seen: Seen
        init(_ seen: Seen) { self.seen = seen }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            seen.passedOn += Array(unwrapInboundIn(data).readableBytesView)
        }
    }
    let seen = Seen()
    let channel = EmbeddedChannel()
    do {
        try channel.pipeline.syncOperations.addHandler(
            ProxyHeaderReceiver { outcome, _ in
                require(seen.outcome == nil, "a second outcome")
                seen.outcome = outcome
            })
        try channel.pipeline.syncOperations.addHandler(Collector(seen))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let maximumRead = [1, 2, 7, 16, 100, 3000][Int(control) % 6]
        var offset = 0
        var state = UInt32(control) &* 2_654_435_761 | 1
        while offset < bytes.count, channel.isActive {
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            let size = 1 + Int(state % UInt32(maximumRead))
            let read = Array(bytes[offset..<min(offset + size, bytes.count)])
            offset += read.count
            try channel.writeInbound(ByteBuffer(bytes: read))
        }
    } catch {
        fail("embedded channel: \(error)")
    }
    switch (verdict, seen.outcome) {
    case (.needMoreBytes, nil):
        require(channel.isActive && seen.passedOn.isEmpty, "an incomplete header passed bytes on or closed")
    case (.header(let header, let consumed), .header(let reported)?):
        require(header == reported, "the receiver read \(reported), the parser \(header)")
        require(seen.passedOn == Array(bytes[consumed...]), "the receiver passed on other bytes than those after the header")
    case (.invalid(let error), .refused(let why)?):
        require(error.description == why, "the receiver refused for \"\(why)\", the parser for \"\(error)\"")
        require(!channel.isActive && seen.passedOn.isEmpty, "a refused connection stayed open or passed bytes on")
    default:
        fail("the parser said \(verdict), the receiver \(String(describing: seen.outcome))")
    }
    // A refused connection is closed already; the loop must still run what the close left
    // queued (the pipeline's teardown), or the channel and its handlers leak.
    _ = try? channel.finish(acceptAlreadyClosed: true)
}

/// Addresses from the input, written as v2 and read back.
func checkEncoder(_ bytes: [UInt8]) {
    guard bytes.count >= 36 else { return }
    let v4 = bytes[0..<4].map(String.init).joined(separator: ".")
    let v6 = stride(from: 4, to: 20, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    let port = Int(bytes[20]) << 8 | Int(bytes[21])
    guard let source = try? SocketAddress(ipAddress: v6, port: port),
        let destination = try? SocketAddress(ipAddress: v4, port: Int(bytes[22]) << 8 | Int(bytes[23]))
    else { return }
    for (from, to) in [(source, source), (destination, destination), (destination, source)] {
        let encoded = ProxyHeaderEncoder.v2(source: from, destination: to)
        guard case .header(let header, let consumed) = ProxyHeaderParser.parse(encoded + bytes), consumed == encoded.count else {
            fail("an encoded header does not parse back: \(encoded)")
        }
        if from.protocol == to.protocol {
            require(header.source == from && header.destination == to, "\(from) -> \(to) read back as \(header)")
        } else {
            require(header.source?.port == from.port && header.destination?.port == to.port, "mixed families lost a port: \(header)")
        }
    }
}

func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fail(message()) }
}

func fail(_ message: String) -> Never {
    fatalError("ProxyHeaderFuzzer: \(message)")
}

#if FUZZING
// swift-format-ignore: AlwaysUseLowerCamelCase
// libFuzzer's C name.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_cdecl("ProxyHeaderFuzzer_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzerDriver(argc, argv, LLVMFuzzerTestOneInput)
}
#else
@main
struct Replay {
    static func main() throws { try replayFiles(fuzzOne) }
}
#endif
