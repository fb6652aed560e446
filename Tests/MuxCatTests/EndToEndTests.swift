import Foundation
import NIOCore
import NIOPosix
import ProcessTestSupport
import XCTest
import Yamux

/// muxcat as a person would use it: real processes, real sockets, `nc` and `openssl` on the
/// other end. Needs `.build/debug/muxcat` and `.build/debug/repeaterd` (`swift build --build-tests`).
final class EndToEndTests: ProcessTestCase {
    /// Text that is easy to diff when it goes wrong, large enough to take many frames.
    func sampleText(lines: Int) -> Data {
        Data((0..<lines).map { "line \($0): the quick brown fox jumps over the lazy dog\n" }.joined().utf8)
    }

    // MARK: nc -> repeaterd -> muxcat listen --echo

    func testNetcatThroughTheRepeaterToEchoRoundTripsAndHalfCloses() throws {
        let nc = try Binaries.system("nc", package: "netcat-openbsd")
        let capture = temporaryFile("echo.mxc")
        let (listener, linkPort) = try startListener(["--echo", "--capture", capture])
        let (_, clientPort) = try startRepeater(backendPort: linkPort, listener: listener)

        let input = sampleText(lines: 20_000)  // ~1.2 MB: many frames, window updates, backpressure
        let inputFile = temporaryFile("input.txt")
        try input.write(to: URL(fileURLWithPath: inputFile))
        // -N: shut the socket's write side at stdin EOF; nc then reads until the far side closes,
        // so the whole echo arriving proves replies flow after the client's half-close.
        // nc writes straight to a file: what arrived is judged without a pipe reader in between.
        let outputFile = temporaryFile("output.txt")
        let client = try start(
            "/bin/sh", ["-c", "exec \"$0\" -N 127.0.0.1 \(clientPort) < \"$1\" > \"$2\"", nc, inputFile, outputFile],
            name: "nc")
        XCTAssertEqual(client.waitForExit(timeout: 30), 0, client.stderr.text)
        let echoed = try Data(contentsOf: URL(fileURLWithPath: outputFile))
        XCTAssertEqual(echoed.count, input.count)
        XCTAssertTrue(echoed == input, "the echo differs from what was sent")
        listener.waitFor(
            "link 1 stream 1: closed, \(input.count) bytes in, \(input.count) bytes out, closed cleanly (FIN sent, FIN received)",
            onStderr: true)

        // Ctrl-C: a clean exit, and the capture is complete.
        listener.signal(SIGINT)
        XCTAssertEqual(listener.waitForExit(), 0, listener.stderr.text)
        let decoded = try runMuxcat(["decode", capture])
        XCTAssertEqual(decoded.status, 0, decoded.stderr)
        let text = String(decoding: decoded.stdout, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("# muxcat capture written by muxcat listen"), text)
        XCTAssertTrue(text.contains("link 1 in  @"), text)
        XCTAssertTrue(text.contains("streams: 1 opened, 1 closed (FIN both ways), 0 reset, 0 still open"), text)
        XCTAssertTrue(
            text.contains("  link 1 stream 1: \(input.count) bytes in, \(input.count) bytes out; opened in; closed (FIN both ways)"),
            text)
        XCTAssertTrue(text.contains("|line 0: the quic|"), "the first payload bytes are shown: \(text.prefix(3000))")
    }

    // MARK: repeaterd -> muxcat listen --forward -> a TCP server

    func testForwardRelaysToATCPServerWithHalfClose() throws {
        let nc = try Binaries.system("nc", package: "netcat-openbsd")
        let server = try UppercasingServer()
        defer { server.stop() }
        let (listener, linkPort) = try startListener(["--forward", "127.0.0.1:\(server.port)"])
        let (_, clientPort) = try startRepeater(backendPort: linkPort, listener: listener)

        let inputFile = temporaryFile("input.txt")
        try sampleText(lines: 5000).write(to: URL(fileURLWithPath: inputFile))
        // The server answers only after EOF: the client's FIN must cross repeater and muxcat,
        // and the answer must come back after it.
        let client = try start(nc, ["-N", "127.0.0.1", "\(clientPort)"], stdinFrom: inputFile)
        XCTAssertEqual(client.waitForExit(timeout: 30), 0, client.stderr.text)
        let expected = String(decoding: sampleText(lines: 5000), as: UTF8.self).uppercased()
        XCTAssertTrue(client.stdout.text == expected, "got \(client.stdout.bytes.count) bytes: \(client.stdout.text.prefix(200))")
        listener.waitFor("link 1 stream 1: closed", onStderr: true)
    }

    func testForwardRefusesTheStreamWhenTheTargetIsDown() throws {
        let nc = try Binaries.system("nc", package: "netcat-openbsd")
        let deadPort = freePort()
        let (listener, linkPort) = try startListener(["--forward", "127.0.0.1:\(deadPort)"])
        let (_, clientPort) = try startRepeater(backendPort: linkPort, listener: listener)
        let client = try start(nc, ["-N", "127.0.0.1", "\(clientPort)"])
        client.write("anyone there?\n")
        client.closeInput()
        // The whole line: NIO's own text read "connection reset (error set): Connection refused) (errno: 111)".
        listener.waitFor(
            "muxcat: link 1 stream 1: cannot connect to 127.0.0.1:\(deadPort): connection refused; refusing the stream (RST)\n",
            onStderr: true)
        XCTAssertNotNil(client.waitForExit(), "the repeater closes the client once the stream is refused")
        XCTAssertEqual(client.stdout.bytes.count, 0)
    }

    // MARK: openssl s_client -> repeaterd -> muxcat --forward -> openssl s_server

    func testTLSHandshakeAndLinesBothWaysThroughRepeaterAndForward() throws {
        let openssl = try Binaries.system("openssl", package: "openssl")
        let key = temporaryFile("key.pem")
        let certificate = temporaryFile("cert.pem")
        let generate = try start(
            openssl,
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                "-out", certificate, "-days", "1", "-subj", "/CN=localhost",
            ])
        XCTAssertEqual(generate.waitForExit(), 0, generate.stderr.text)

        let tlsPort = freePort()
        let tlsServer = try start(
            openssl, ["s_server", "-accept", "127.0.0.1:\(tlsPort)", "-cert", certificate, "-key", key, "-naccept", "1"],
            name: "s_server")
        tlsServer.waitFor("ACCEPT")
        let (listener, linkPort) = try startListener(["--forward", "127.0.0.1:\(tlsPort)"])
        let (_, clientPort) = try startRepeater(backendPort: linkPort, listener: listener)

        let tlsClient = try start(
            openssl, ["s_client", "-connect", "127.0.0.1:\(clientPort)", "-servername", "localhost"], name: "s_client")
        // Printed once the handshake is complete.
        guard tlsClient.waitFor("Cipher is", timeout: 20) else { return }
        tlsClient.write("hello from the client side\n")
        tlsServer.waitFor("hello from the client side")
        tlsServer.write("hello from the server side\n")
        tlsClient.waitFor("hello from the server side")
        listener.waitFor("link 1 stream 1: opened", onStderr: true)
    }

    // MARK: muxcat connect -> muxcat listen

    func testConnectBridgesStdinAndStdoutToAnEchoStream() throws {
        let (_, port) = try startListener(["--echo"])
        let input = sampleText(lines: 3000)
        let capture = temporaryFile("connect.mxc")
        let result = try runMuxcat(["connect", "127.0.0.1:\(port)", "--capture", capture], input: input)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout == input, "got \(result.stdout.count) of \(input.count) bytes back")

        let decoded = try runMuxcat(["decode", capture])
        XCTAssertEqual(decoded.status, 0, decoded.stderr)
        let text = String(decoding: decoded.stdout, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("# muxcat capture written by muxcat connect"), text)
        XCTAssertTrue(
            text.contains("  link 1 stream 1: \(input.count) bytes in, \(input.count) bytes out; opened out; closed (FIN both ways)"), text)
        XCTAssertTrue(text.contains("go away: link 1 out: code 0 (normal)"), text)
    }

    func testConnectWithSeveralStreamsFeedsEachTheSameInput() throws {
        let (listener, port) = try startListener(["--echo"])
        let input = sampleText(lines: 1000)
        let result = try runMuxcat(["connect", "127.0.0.1:\(port)", "--streams", "4", "-v"], input: input)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.count, 0, "with several streams, what comes back is counted, not printed")
        XCTAssertTrue(
            result.stderr.contains("4 closed cleanly, 0 failed; \(4 * input.count) bytes sent, \(4 * input.count) bytes received in total"),
            result.stderr)
        for stream in [1, 3, 5, 7] {
            XCTAssertTrue(result.stderr.contains("link 1 stream \(stream): opened"), result.stderr)
            listener.waitFor("stream \(stream): closed, \(input.count) bytes in, \(input.count) bytes out", onStderr: true)
        }
    }

    func testConnectExitsWithOneWhenNobodyListens() throws {
        let result = try runMuxcat(["connect", "127.0.0.1:\(freePort())"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.hasPrefix("muxcat: cannot connect to 127.0.0.1:"), result.stderr)
    }

    func testExecRunsTheCommandPerStream() throws {
        let (_, port) = try startListener(["--exec", "tr a-z A-Z; echo \"done on stream $MUXCAT_STREAM\""])
        let result = try runMuxcat(["connect", "127.0.0.1:\(port)"], input: Data("hello exec\n".utf8))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(String(decoding: result.stdout, as: UTF8.self), "HELLO EXEC\ndone on stream 1\n")
    }

    func testListenPrintsWhatArrivesMarkedWithTheStream() throws {
        let (listener, port) = try startListener([])
        let result = try runMuxcat(["connect", "127.0.0.1:\(port)"], input: Data("hello\nworld\n".utf8))
        XCTAssertEqual(result.status, 0, result.stderr)
        listener.waitFor("[link 1 stream 1] hello\n[link 1 stream 1] world\n")
        let binary = try runMuxcat(["connect", "127.0.0.1:\(port)"], input: Data([0x16, 0x03, 0x01, 0x00]))
        XCTAssertEqual(binary.status, 0, binary.stderr)
        listener.waitFor("[link 2 stream 1] 00000000  16 03 01 00 ")
    }

    // MARK: Echo ordering under backpressure

    /// The peer sends a lot and reads its echo only later: muxcat's echo stream goes unwritable,
    /// holds its reads, and becomes writable again while the multiplexer is sending. The echo
    /// must come back byte for byte in order (it once came back reordered by 16 KiB frames).
    func testEchoKeepsByteOrderWhenTheSenderReadsLate() throws {
        let (_, port) = try startListener(["--echo"])
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let echoCounter = DataPayloadCounter()
        let link = try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(echoCounter)
                    try channel.pipeline.syncOperations.addHandler(
                        YamuxMultiplexer(configuration: YamuxConfiguration(role: .client)))
                }
            }
            .connect(host: "127.0.0.1", port: port).wait()
        defer { link.close(promise: nil) }
        let done = link.eventLoop.makePromise(of: ByteBuffer.self)
        let stream = try link.eventLoop.flatSubmit { () -> EventLoopFuture<Channel> in
            let mux: YamuxMultiplexer
            do { mux = try link.pipeline.syncOperations.handler(type: YamuxMultiplexer.self) } catch {
                return link.eventLoop.makeFailedFuture(error)
            }
            return mux.createStream { stream in
                stream.setOption(ChannelOptions.autoRead, value: false).flatMap {
                    stream.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                }.flatMapThrowing {
                    try stream.pipeline.syncOperations.addHandler(CollectUntilFinished(done: done))
                }
            }
        }.wait()
        var payload = ByteBuffer()
        for index in 0..<(4 * 1024 * 1024 / 4) { payload.writeInteger(UInt32(index)) }
        stream.writeAndFlush(payload, promise: nil)
        stream.close(mode: .output, promise: nil)
        // Read nothing until muxcat has sent a whole receive window of echo: from then on its echo
        // stream can only queue, and holds its reads once that queue passes its watermark.
        let deadline = Date().addingTimeInterval(30)
        var echoedBeforeReading = 0
        while echoedBeforeReading < YamuxWindow.initial, Date() < deadline {
            echoedBeforeReading = try link.eventLoop.submit { echoCounter.payloadBytes }.wait()
            usleep(10_000)
        }
        XCTAssertGreaterThanOrEqual(echoedBeforeReading, YamuxWindow.initial, "muxcat should fill the receive window with echo")
        try stream.setOption(ChannelOptions.autoRead, value: true).wait()
        let echoed = try done.futureResult.wait()
        XCTAssertEqual(echoed.readableBytes, payload.readableBytes)
        if echoed != payload {
            let firstDifference = zip(echoed.readableBytesView, payload.readableBytesView).enumerated().first { $0.1.0 != $0.1.1 }
            XCTFail("the echo differs from byte \(firstDifference?.offset ?? -1) on")
        }
    }

    /// -v on the side whose FIN goes first says both FINs once the peer's came back (the stream
    /// closes at it without an event); a stream the link drops under it is said once, not again
    /// in the closing lines.
    func testConnectVerboseSaysBothFinsAndALostLinkOnce() throws {
        let (listener, port) = try startListener(["--echo"])
        let echoed = try runMuxcat(["connect", "127.0.0.1:\(port)", "-v"], input: Data("hi\n".utf8))
        XCTAssertEqual(echoed.status, 0, echoed.stderr)
        XCTAssertTrue(
            echoed.stderr.contains("link 1 stream 1: closed, 3 bytes in, 3 bytes out, closed cleanly (FIN sent, FIN received)"),
            echoed.stderr)

        let connect = try start(try Binaries.muxcat, ["connect", "127.0.0.1:\(port)", "-v"], name: "muxcat connect")
        connect.waitFor("stream 1: opened", onStderr: true)
        listener.signal(SIGKILL)
        XCTAssertEqual(connect.waitForExit(), 1, connect.stderr.text)
        XCTAssertEqual(connect.stderr.text.components(separatedBy: "the link closed under it").count - 1, 1, connect.stderr.text)
    }

    // MARK: muxcat decode on files

    func testDecodeReportsMalformedFilesWithOffsetsAndExitsWithOne() throws {
        let ping = frameBytes(.ping(flags: .syn, opaque: 1))
        var badVersion = ping
        badVersion[0] = 2
        var unknownType = ping
        unknownType[1] = 9
        let cases: [(name: String, bytes: [UInt8], error: String)] = [
            ("bad-version", badVersion, "malformed frame at byte offset 0: bad version 2"),
            ("unknown-type", ping + unknownType, "malformed frame at byte offset 12: unknown frame type 9"),
            ("truncated-header", ping + [0, 0, 0], "truncated frame header at byte offset 12: 3 of 12 bytes before the end of input"),
            (
                "truncated-payload",
                Array(frameBytes(.data(YamuxStreamID(3), length: 8), payload: Array(repeating: 0x7A, count: 8)).prefix(16)),
                "truncated DATA payload in the frame at byte offset 0 (stream 3): 4 of 8 bytes before the end of input"
            ),
        ]
        for testCase in cases {
            let path = temporaryFile(testCase.name)
            try Data(testCase.bytes).write(to: URL(fileURLWithPath: path))
            let result = try runMuxcat(["decode", path])
            XCTAssertEqual(result.status, 1, testCase.name)
            let text = String(decoding: result.stdout, as: UTF8.self)
            XCTAssertTrue(text.contains("ERROR: \(testCase.error)"), "\(testCase.name): \(text)")
            // Said once: stderr points at the ERROR line rather than repeating it.
            XCTAssertFalse(result.stderr.contains(testCase.error), "\(testCase.name): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("muxcat: decode: 1 problem in the input, the first at byte offset "), result.stderr)
        }
    }

    /// An empty file, or empty stdin, is not a link without traffic: it fails and says so.
    func testDecodingNothingFailsAndSaysTheInputIsEmpty() throws {
        let path = temporaryFile("empty")
        try Data().write(to: URL(fileURLWithPath: path))
        let file = try runMuxcat(["decode", path])
        XCTAssertEqual(file.status, 1)
        XCTAssertEqual(file.stderr, "muxcat: decode: \(path) is empty: there is no frame to decode\n")
        XCTAssertTrue(file.stdout.isEmpty)
        let stdin = try runMuxcat(["decode"], input: Data())
        XCTAssertEqual(stdin.status, 1)
        XCTAssertTrue(stdin.stderr.contains("stdin is empty"), stdin.stderr)
    }

    func testDecodeReadsRawFramesFromStdin() throws {
        let input =
            frameBytes(.windowUpdate(YamuxStreamID(1), flags: .syn, delta: 0))
            + frameBytes(.data(YamuxStreamID(1), flags: .fin, length: 3), payload: Array("hi\n".utf8))
        let result = try runMuxcat(["decode", "-"], input: Data(input))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(
            String(decoding: result.stdout, as: UTF8.self),
            """
            @0      WINDOW_UPDATE flags=SYN     stream=1   delta=0
            @12     DATA          flags=FIN     stream=1   length=3  68 69 0a |hi.|
            -- summary
            frames: 2 (1 DATA, 1 WINDOW_UPDATE, 0 PING, 0 GO_AWAY)
            streams: 1 opened, 1 finished (FIN), 0 reset, 0 without FIN (one direction only)
              stream 1: 3 bytes; opened; finished (FIN)
            window updates: 1
            pings: 0 requests, 0 replies
            go away: none

            """)
    }
}

/// Counts the Data payload bytes arriving on a link, before the multiplexer sees them.
/// Confined to the link's event loop.
// Safe: touched only on the link's event loop (added by the channel initializer, read through `eventLoop.submit`).
final class DataPayloadCounter: ChannelInboundHandler, @unchecked Sendable {  // its loop only; read after the link closed
    typealias InboundIn = ByteBuffer
    private var decoder = YamuxFrameDecoder()
    private(set) var payloadBytes = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decoder.append(unwrapInboundIn(data))
        while let item = try? decoder.next() {
            if case .payload(let bytes, _) = item { payloadBytes += bytes.readableBytes }
        }
        context.fireChannelRead(data)
    }
}

/// Collects a stream's bytes until the peer's FIN (or the stream's end).
final class CollectUntilFinished: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var received = ByteBuffer()
    private let done: EventLoopPromise<ByteBuffer>

    init(done: EventLoopPromise<ByteBuffer>) { self.done = done }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { done.succeed(received) }
    }

    func channelInactive(context: ChannelHandlerContext) { done.succeed(received) }
    func errorCaught(context: ChannelHandlerContext, error: Error) { done.fail(error) }
}

/// A TCP server that reads everything until the client's half-close, then answers with the
/// same bytes upper-cased and closes: it only works if FIN travels both ways.
final class UppercasingServer {
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: Channel
    var port: Int { channel.localAddress!.port! }

    init() throws {
        channel = try ServerBootstrap(group: group)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture { try child.pipeline.syncOperations.addHandler(Handler()) }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var received = ByteBuffer()

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            received.writeBuffer(&bytes)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard case ChannelEvent.inputClosed = event else { return }
            let upper = String(decoding: received.readableBytesView, as: UTF8.self).uppercased()
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: upper))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }
}
