import FuzzDriver
import NIOCore
import NIOEmbedded
import Yamux

/// Feeds arbitrary bytes to a yamux server session as if they came from the link: first the
/// pure decoder and state machine (acting on every result as the multiplexer would), then the
/// real `YamuxMultiplexer` on an embedded channel, once with echoing child-channel streams,
/// once with every stream relayed to an echoing (embedded) socket, and once with child channels
/// on a link that is not writable until the input is read (control frames queued, coalesced,
/// dropped, reads paused, the cap reached with small limits). Any crash, hang or
/// unbounded allocation is a bug; errors are the expected outcome for garbage.
func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
    let input = ByteBuffer(bytes: bytes)

    // 1. Decoder + state machine, split into two reads at a data-dependent point.
    var decoder = YamuxFrameDecoder(maximumDataLength: 1 << 20)
    var session = YamuxSessionStateMachine<Void>(role: .server, maximumInboundStreams: 8, acceptBacklog: 4)
    let split = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
    decoder.append(input.getSlice(at: 0, length: split)!)
    var pendingSecond: ByteBuffer? = input.getSlice(at: split, length: input.readableBytes - split)!
    var delivered: [YamuxStreamID: Int] = [:]
    var current: YamuxStreamID?
    loop: while true {
        do {
            guard let item = try decoder.next() else {
                if let second = pendingSecond {
                    decoder.append(second)
                    pendingSecond = nil
                    continue
                }
                break loop
            }
            switch item {
            case .header(let header):
                switch session.receive(header) {
                case .stream(let frame):
                    if frame.opened {
                        session.setLocalEnd((), for: frame.streamID)
                        _ = session.accept(frame.streamID)
                    }
                    if case .deliver = frame.payload { current = frame.streamID } else { current = nil }
                    switch frame.ending {
                    case .finished:
                        if let finish = session.finish(frame.streamID), finish.closed {
                            session.setLocalEnd(nil, for: frame.streamID)
                        }
                    case .finishedAndClosed, .reset: session.setLocalEnd(nil, for: frame.streamID)
                    case .none: break
                    }
                case .sessionError:
                    break loop
                default:
                    current = nil
                }
            case .payload(let slice, _):
                if let id = current {
                    delivered[id, default: 0] += slice.readableBytes
                    _ = session.consumed(id, slice.readableBytes, now: .now())
                    _ = session.reserveSend(id, upTo: slice.readableBytes)
                }
            }
        } catch {
            break loop
        }
    }

    // 2. The real handler on an embedded link, with each kind of stream end: echoing child
    //    channels, then relays to (embedded) sockets that echo.
    fuzzMultiplexer(input, relayed: false)
    fuzzMultiplexer(input, relayed: true)
    fuzzMultiplexer(input, relayed: false, writableLate: true)
}

private func fuzzMultiplexer(_ input: ByteBuffer, relayed: Bool, writableLate: Bool = false) {
    let channel = EmbeddedChannel()
    let loop = channel.embeddedEventLoop
    var configuration = YamuxConfiguration(role: .server)
    configuration.maximumInboundStreams = 16
    configuration.keepAliveInterval = nil
    configuration.maximumInboundOpensPerReadCycle = 3
    if writableLate {
        configuration.controlAnswersPauseThreshold = 4
        configuration.maximumQueuedControlFrames = 24
        channel.isWritable = false
    }
    var sockets: [EmbeddedChannel] = []
    let mux: YamuxMultiplexer
    if relayed {
        mux = YamuxMultiplexer(
            configuration: configuration,
            inboundRelayConnector: { relay in
                let socket = EmbeddedChannel(loop: loop)
                sockets.append(socket)
                do {
                    try socket.pipeline.syncOperations.addHandler(relay)
                    return socket.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 2))
                } catch {
                    return loop.makeFailedFuture(error)
                }
            })
    } else {
        mux = YamuxMultiplexer(configuration: configuration) { stream in
            stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(EchoStream()) }
        }
    }
    try? channel.pipeline.syncOperations.addHandler(mux)
    _ = try? channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    _ = try? channel.writeInbound(input)
    loop.run()
    if writableLate {
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        loop.run()
    }
    // Each socket echoes what the relay wrote into it, once (the peer's window bounds it).
    for socket in sockets where socket.isActive {
        while let bytes = try? socket.readOutbound(as: ByteBuffer.self) {
            _ = try? socket.writeInbound(bytes)
        }
        socket.pipeline.fireChannelReadComplete()
    }
    loop.run()
    while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
    _ = try? channel.finish()
    for socket in sockets { _ = try? socket.finish() }
    // Closed stream channels drop their handlers on a later loop turn: let it happen.
    loop.run()
}

final class EchoStream: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.writeAndFlush(data, promise: nil) }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_cdecl("YamuxFuzzer_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzerDriver(argc, argv, LLVMFuzzerTestOneInput)
}
#else
@main
struct Replay {
    static func main() throws { try replayFiles(fuzzOne) }
}
#endif
