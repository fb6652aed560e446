import Foundation
import LegacyRelay
import LegacyRelayServer
import NIOCore
import NIOHTTP1
import NIOPosix
import ProcessTestSupport
import RuntimeClient
import RuntimeManager
import XCTest
import YamuxLink

/// The old HTTP relay end to end: a client running TLS over `POST /runtime_manager` →
/// `repeaterd --legacy-http` → a yamux stream → the runtime manager.
final class LegacyHTTPThroughRepeaterTests: XCTestCase {
    func testPutAndGetAFewMiBOverTheLegacyRelayByteExact() async throws {
        let path = try await RepeaterPath(legacyHTTP: true)
        let data = patternedData(count: 3 * 1024 * 1024 + 17, seed: 51)
        let client = try await path.connectLegacy()
        try await client.write("legacy.bin", data: data)
        let back = try await client.read("legacy.bin")
        XCTAssertEqual(back.count, data.count)
        XCTAssertTrue(back == data, "bytes differ after the round trip through the legacy relay")
        let policyHash = try await client.policyHash()
        XCTAssertEqual(Array(policyHash), path.server.policy.sha256)
        await client.close()
        XCTAssertEqual(path.legacyRelay!.sessionCount, 1, "the old protocol has no close: the session idles out")
        await path.stop()
    }

    func testLegacyAndTCPClientsSideBySideAndErrorsLeaveTheSessionAlone() async throws {
        let path = try await RepeaterPath(legacyHTTP: true)
        let legacy = try await path.connectLegacy()
        let direct = try await path.connect()
        let data = patternedData(count: 200_000, seed: 3)
        try await legacy.write("shared.bin", data: data)
        let viaTCP = try await direct.read("shared.bin")
        XCTAssertEqual(viaTCP, data, "one runtime manager behind both paths")

        let malformed = try await oneHTTPPost(port: path.legacyPort, body: "1 %%%")
        XCTAssertEqual(malformed.status, .badRequest)
        XCTAssertTrue(malformed.body.contains("malformed relay body"), malformed.body)
        let unknown = try await oneHTTPPost(port: path.legacyPort, body: "\(UInt32.max) ")
        XCTAssertTrue([.notFound, .ok].contains(unknown.status))
        if unknown.status == .notFound { XCTAssertTrue(unknown.body.contains("unknown session"), unknown.body) }

        let viaLegacy = try await legacy.read("shared.bin")
        XCTAssertEqual(viaLegacy, data, "the legacy session goes on")
        await legacy.close()
        await direct.close()
        await path.stop()
    }

    func testTheRelaysRefusalReachesTheUserAsOneLine() async throws {
        let path = try await RepeaterPath(legacyHTTP: true)
        let client = try await path.connectLegacy()
        // Kill every session behind the client's back: its next request meets 404/410.
        try await path.legacyRelay!.expireIdleSessions(now: .now() + .hours(1)).get()
        do {
            _ = try await client.policyHash()
            XCTFail("a request on an expired session succeeded")
        } catch {
            let text = "\(error)"
            XCTAssertTrue(text.contains("the HTTP relay answered 4"), text)
            XCTAssertTrue(text.contains("start a new session with id 0"), text)
        }
        await client.close()
        await path.stop()
    }

    /// `runtime-client --legacy-http` as a user runs it, through the in-process repeater.
    func testTheRuntimeClientExecutableOverTheLegacyRelay() async throws {
        let executable = try Binaries.path("runtime-client")
        let path = try await RepeaterPath(legacyHTTP: true)
        let certs = TestCertificates.shared
        let local = FileManager.default.temporaryDirectory.appendingPathComponent("legacy-\(UUID().uuidString)").path
        defer {
            try? FileManager.default.removeItem(atPath: local)
            try? FileManager.default.removeItem(atPath: local + ".back")
        }
        try patternedData(count: 2 * 1024 * 1024 + 5, seed: 8).write(to: URL(fileURLWithPath: local))
        let common = [
            "--legacy-http", "--connect", "127.0.0.1:\(path.legacyPort)", "--cert", certs.path("client.pem"),
            "--key", certs.path("client.key"), "--ca", certs.path("ca.pem"), "--quiet",
        ]
        var result = try runProcess(executable, ["put", local, "cli.bin"] + common)
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try runProcess(executable, ["get", "cli.bin", local + ".back"] + common)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try sha256sum(local + ".back"), try sha256sum(local))
        result = try runProcess(executable, ["hash", "cli.bin"] + common)
        XCTAssertEqual(result.stdout, try sha256sum(local) + "  cli.bin\n")
        await path.stop()
    }
}

/// One POST on a fresh connection; the answer's status and body.
func oneHTTPPost(port: Int, body: String) async throws -> (status: HTTPResponseStatus, body: String) {
    final class Collector: ChannelInboundHandler, @unchecked Sendable {  // a handler: its channel's loop only
        typealias InboundIn = HTTPClientResponsePart
        let promise: EventLoopPromise<(status: HTTPResponseStatus, body: String)>
        var status = HTTPResponseStatus.ok
        var body = ByteBuffer()
        init(promise: EventLoopPromise<(status: HTTPResponseStatus, body: String)>) { self.promise = promise }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): status = head.status
            case .body(var part): body.writeBuffer(&part)
            case .end: promise.succeed((status, String(buffer: body)))
            }
        }
        func channelInactive(context: ChannelHandlerContext) { promise.fail(ChannelError.eof) }
    }
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let promise = loop.makePromise(of: (status: HTTPResponseStatus, body: String).self)
    let channel = try await ClientBootstrap(group: loop)
        .channelInitializer { channel in
            channel.pipeline.addHTTPClientHandlers().flatMap { channel.pipeline.addHandler(Collector(promise: promise)) }
        }
        .connect(host: "127.0.0.1", port: port).get()
    var headers = HTTPHeaders()
    headers.add(name: "host", value: "relay")
    headers.add(name: "content-length", value: String(body.utf8.count))
    channel.write(
        HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/runtime_manager", headers: headers)),
        promise: nil)
    channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil)
    channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
    let answer = try await promise.futureResult.get()
    try? await channel.close()
    return answer
}
