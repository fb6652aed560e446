// nio-relay: the smallest correct SwiftNIO TCP relay, one accepted connection to one outbound
// connection. It is the floor of tools/bench (paths NIO_1TO1 and NIO_1TO1x2): what SwiftNIO
// alone costs per hop, so every figure of the repeater is read against it.
//
//     nio-relay --listen HOST:PORT --target HOST:PORT [--threads N]
//
// The rules it keeps, each of which costs or saves tens of µs per message on a small VM:
// - the outbound connection is made on the accepted channel's event loop (no hop between threads);
// - the target is resolved once at start and dialed as a `SocketAddress` (no name resolution or
//   Happy Eyeballs per connection);
// - TCP_NODELAY and half-closure on both sockets; backpressure and half-close in `RelayGlue`;
// - nothing is logged on the data path.

import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Connects each accepted channel to the target, on the accepted channel's own event loop, and
/// glues the two. The accepted channel does not read until its partner is connected.
func relay(_ accepted: Channel, to target: SocketAddress) -> EventLoopFuture<Void> {
    let (inbound, outbound) = RelayGlue.matchedPair()
    do {
        try accepted.pipeline.syncOperations.addHandler(inbound)
    } catch {
        return accepted.eventLoop.makeFailedFuture(error)
    }
    let outboundGlue = NIOLoopBound(outbound, eventLoop: accepted.eventLoop)
    ClientBootstrap(group: accepted.eventLoop)
        .channelOption(.socketOption(.tcp_nodelay), value: 1)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(outboundGlue.value)
            }
        }
        .connect(to: target)
        .whenComplete { result in
            switch result {
            case .success(let channel):
                if accepted.isActive {
                    // Start reading: autoRead was off while the partner was being connected.
                    _ = try? accepted.syncOptions?.setOption(.autoRead, value: true)
                } else {
                    channel.close(promise: nil)  // the client left while we dialed
                }
            case .failure:
                accepted.close(promise: nil)
            }
        }
    return accepted.eventLoop.makeSucceededVoidFuture()
}

/// Parses the command line, listens, and relays until killed; returns the exit status on failure.
func run(arguments: [String]) -> Int32 {
    if arguments.contains("--help") || arguments.contains("-h") {
        print(RelayOptions.usage)
        return 0
    }
    let options: RelayOptions
    do {
        options = try RelayOptions(arguments: arguments)
    } catch {
        FileHandleOutput.standardError("nio-relay: \(error)\n")
        return 2
    }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
    let target = options.target
    let server: Channel
    do {
        server = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 4096)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { accepted in relay(accepted, to: target) }
            .bind(host: options.listenHost, port: options.listenPort)
            .wait()
    } catch {
        FileHandleOutput.standardError(
            "nio-relay: cannot listen on \(options.listenHost):\(options.listenPort): \(error)\n"
        )
        return 1
    }
    FileHandleOutput.standardError(
        "nio-relay: listening on \(server.localAddress.map { "\($0)" } ?? "?"), relaying to \(target), "
            + "\(options.threads) event loop thread(s)\n"
    )
    do {
        try server.closeFuture.wait()
    } catch {
        FileHandleOutput.standardError("nio-relay: the listener failed: \(error)\n")
        return 1
    }
    return 0
}

/// Writes to standard error without Foundation.
enum FileHandleOutput {
    static func standardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            _ = write(2, bytes.baseAddress, bytes.count)
        }
    }
}

exit(run(arguments: Array(CommandLine.arguments.dropFirst())))
