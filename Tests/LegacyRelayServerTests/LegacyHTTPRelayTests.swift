import LegacyRelay
import NIOCore
import NIOHTTP1
import NIOPosix
import Repeater
import XCTest
import Yamux
import YamuxLink

@testable import LegacyRelayServer

/// A minimal HTTP/1.1 client for the relay: one request at a time on one kept-alive connection.
final class HTTPTestClient: @unchecked Sendable {  // its collector is touched only on the channel's loop (flatSubmit)
    private let channel: Channel
    private let collector: Collector

    private final class Collector: ChannelInboundHandler, @unchecked Sendable {  // a handler: its channel's loop only
        typealias InboundIn = HTTPClientResponsePart
        var promise: EventLoopPromise<(status: HTTPResponseStatus, body: String)>?
        private var status = HTTPResponseStatus.ok
        private var body = ByteBuffer()

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = head.status
                body.clear()
            case .body(var part):
                body.writeBuffer(&part)
            case .end:
                let promise = self.promise
                self.promise = nil
                promise?.succeed((status, String(buffer: body)))
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise?.fail(ChannelError.eof)
            promise = nil
        }
    }

    init(port: Int, group: EventLoopGroup) throws {
        let collector = Collector()
        self.collector = collector
        channel = try ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.pipeline.addHTTPClientHandlers().flatMap { channel.pipeline.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).wait()
    }

    struct NoAnswer: Error, CustomStringConvertible {
        var description: String { "the relay did not answer within 30 s" }
    }

    /// One request and its answer; an answer that does not come within 30 s (far beyond any poll
    /// wait) fails the request instead of hanging the test.
    func request(_ body: String, method: HTTPMethod = .POST, path: String = "/runtime_manager") throws
        -> (status: HTTPResponseStatus, body: String)
    {
        let payload = ByteBuffer(string: body)
        return try channel.eventLoop.flatSubmit {
            let promise = self.channel.eventLoop.makePromise(of: (status: HTTPResponseStatus, body: String).self)
            guard self.channel.isActive else {
                promise.fail(ChannelError.ioOnClosedChannel)
                return promise.futureResult
            }
            let deadline = self.channel.eventLoop.scheduleTask(in: .seconds(30)) {
                if self.collector.promise?.futureResult === promise.futureResult { self.collector.promise = nil }
                promise.fail(NoAnswer())
            }
            promise.futureResult.whenComplete { _ in deadline.cancel() }
            self.collector.promise = promise
            var headers = HTTPHeaders()
            headers.add(name: "host", value: "relay")
            headers.add(name: "content-length", value: String(payload.readableBytes))
            self.channel.write(
                HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)), promise: nil)
            self.channel.write(HTTPClientRequestPart.body(.byteBuffer(payload)), promise: nil)
            self.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
            return promise.futureResult
        }.wait()
    }

    func close() { try? channel.close().wait() }
}

/// One old-style session driven by hand: sends bytes, collects what comes back.
struct RawLegacySession {
    let client: HTTPTestClient
    private(set) var id: UInt32 = 0
    private(set) var received: [UInt8] = []

    init(client: HTTPTestClient) { self.client = client }

    mutating func post(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws {
        var body = ByteBuffer()
        LegacyRelayRequest(sessionID: id, payload: ByteBuffer(bytes: bytes)).encode(into: &body)
        let (status, text) = try client.request(String(buffer: body))
        XCTAssertEqual(status, .ok, text, file: file, line: line)
        let response = try LegacyRelayResponse(parsing: ByteBuffer(string: text))
        if id == 0 { id = response.sessionID }
        XCTAssertEqual(response.sessionID, id, file: file, line: line)
        for chunk in response.chunks { received += chunk.readableBytesView }
    }

    /// Polls until `count` bytes arrived in all (or gives up after `limit` polls).
    mutating func collect(_ count: Int, limit: Int = 50) throws {
        var polls = 0
        while received.count < count, polls < limit {
            try post([])
            polls += 1
        }
    }
}

final class LegacyHTTPRelayTests: XCTestCase {
    private func makeFixture(_ configure: (inout LegacyHTTPRelay.Configuration) -> Void = { _ in }) throws -> LegacyRelayFixture {
        try LegacyRelayFixture(configure: configure)
    }

    private func port(_ fixture: LegacyRelayFixture) -> Int { fixture.port }

    func testASessionIsOneStreamBothWays() throws {
        let fixture = try makeFixture()
        defer { fixture.shutdown() }
        let client = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { client.close() }
        var session = RawLegacySession(client: client)
        try session.post(Array("hello, ".utf8))
        XCTAssertNotEqual(session.id, 0, "the relay names the new session")
        try session.post(Array("runtime manager".utf8))
        try session.collect(22)
        XCTAssertEqual(String(decoding: session.received, as: UTF8.self), "hello, runtime manager", "echoed in order")
        XCTAssertEqual(fixture.relay.sessionCount, 1)
    }

    /// A session's later requests may come on any HTTP connection, so on any event loop: each
    /// finds the session's table (on the loop that opened it) from the id alone.
    func testASessionGoesOnOverConnectionsOnEveryLoop() throws {
        let fixture = try makeFixture()
        defer { fixture.shutdown() }
        let opener = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { opener.close() }
        var session = RawLegacySession(client: opener)
        try session.post(Array("0".utf8))
        var expected = "0"
        var echoedElsewhere: [UInt8] = []
        // The relay's two loops take new connections in turn: four of them reach both.
        for index in 1...4 {
            let client = try HTTPTestClient(port: port(fixture), group: fixture.group)
            defer { client.close() }
            var body = ByteBuffer()
            LegacyRelayRequest(sessionID: session.id, payload: ByteBuffer(string: "\(index)")).encode(into: &body)
            let (status, text) = try client.request(String(buffer: body))
            XCTAssertEqual(status, .ok, text)
            let response = try LegacyRelayResponse(parsing: ByteBuffer(string: text))
            XCTAssertEqual(response.sessionID, session.id)
            for chunk in response.chunks { echoedElsewhere += chunk.readableBytesView }
            expected += "\(index)"
        }
        try session.collect(expected.utf8.count - echoedElsewhere.count)
        XCTAssertEqual(
            (session.received + echoedElsewhere).sorted(), Array(expected.utf8).sorted(),
            "every byte echoed once, whichever connection collected it")
        XCTAssertEqual(fixture.relay.sessionCount, 1)
    }

    /// A poll with nothing to collect is answered empty once the poll wait runs out. How long it
    /// is held (the whole poll wait, not less) is tested on virtual time in LegacyRelaySessionTests.
    func testAPollWithNothingToCollectIsAnsweredEmpty() throws {
        let fixture = try makeFixture { $0.pollWait = .milliseconds(300) }
        defer { fixture.shutdown() }
        let client = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { client.close() }
        var session = RawLegacySession(client: client)
        try session.post(Array("ping".utf8))
        try session.collect(4)
        XCTAssertEqual(session.received, Array("ping".utf8))
        try session.post([])
        XCTAssertEqual(session.received.count, 4, "nothing more arrived")
    }

    func testUnknownSessionAndMalformedBodiesGetClearErrorsWhileOtherSessionsGoOn() throws {
        let fixture = try makeFixture()
        defer { fixture.shutdown() }
        let firstClient = try HTTPTestClient(port: port(fixture), group: fixture.group)
        let secondClient = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer {
            firstClient.close()
            secondClient.close()
        }
        var first = RawLegacySession(client: firstClient)
        var second = RawLegacySession(client: secondClient)
        try first.post(Array("one".utf8))
        try second.post(Array("two".utf8))

        var unknown: UInt32 = 1
        while unknown == first.id || unknown == second.id { unknown += 1 }
        let (status, text) = try firstClient.request("\(unknown) aGk=")
        XCTAssertEqual(status, .notFound)
        XCTAssertTrue(text.contains("unknown session \(unknown)"), text)
        XCTAssertTrue(text.contains("start a new session with id 0"), text)

        let malformed = try firstClient.request("\(first.id) not*base64")
        XCTAssertEqual(malformed.status, .badRequest)
        XCTAssertTrue(malformed.body.contains("malformed relay body: field 2 is not base64"), malformed.body)

        let noID = try secondClient.request("hello")
        XCTAssertEqual(noID.status, .badRequest)
        XCTAssertTrue(noID.body.contains("is not a decimal number"), noID.body)

        // Both sessions, on connections that just saw errors, go on.
        try first.post(Array(" more".utf8))
        try second.post(Array(" more".utf8))
        try first.collect(8)
        try second.collect(8)
        XCTAssertEqual(String(decoding: first.received, as: UTF8.self), "one more")
        XCTAssertEqual(String(decoding: second.received, as: UTF8.self), "two more")
    }

    func testWrongPathMethodAndOversizedBodies() throws {
        let fixture = try makeFixture { $0.maximumBodyBytes = 1000 }
        defer { fixture.shutdown() }
        let client = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { client.close() }
        let wrongPath = try client.request("0 aGk=", path: "/other")
        XCTAssertEqual(wrongPath.status, .notFound)
        XCTAssertTrue(wrongPath.body.contains("POST /runtime_manager"), wrongPath.body)
        let wrongMethod = try client.request("", method: .GET)
        XCTAssertEqual(wrongMethod.status, .methodNotAllowed)
        XCTAssertEqual(fixture.relay.sessionCount, 0, "refused requests open nothing")
        let large = try client.request("0 " + String(repeating: "A", count: 2000))
        XCTAssertEqual(large.status, .payloadTooLarge)
        XCTAssertTrue(large.body.contains("over 1000 bytes"), large.body)
    }

    /// Expiry on the relay's own clock, moved forward by the test (no waiting): a session idle
    /// for the timeout is forgotten and its stream closed; one idle for less is kept. (Which
    /// sessions a given moment expires is tested on deadlines in LegacySessionTableTests.)
    func testAnIdleSessionExpiresAndItsStreamCloses() throws {
        let fixture = try makeFixture { $0.idleTimeout = .seconds(600) }
        defer { fixture.shutdown() }
        let client = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { client.close() }
        var session = RawLegacySession(client: client)
        try session.post(Array("x".utf8))
        XCTAssertEqual(fixture.relay.sessionCount, 1)
        try fixture.relay.expireIdleSessions(now: .now() + .seconds(599)).wait()
        XCTAssertEqual(fixture.relay.sessionCount, 1, "not idle for the whole timeout yet")
        try fixture.relay.expireIdleSessions(now: .now() + .seconds(600)).wait()
        XCTAssertEqual(fixture.relay.sessionCount, 0)
        try waitUntil {
            fixture.links.allSatisfy { link in
                (try? link.eventLoop.submit { link.multiplexer?.openStreamCount ?? 0 }.wait()) == 0
            }
        }
        // A client that comes back learns the session expired.
        let later = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { later.close() }
        let (status, text) = try later.request("\(session.id) ")
        XCTAssertEqual(status, .notFound)
        XCTAssertTrue(text.contains("expired"), text)
    }

    /// A draining shutdown (repeaterd's SIGTERM): no new sessions, while an open one goes on, since
    /// its client must keep posting to finish; the relay stops once it has ended.
    func testADrainRefusesNewSessionsAndServesOpenOnesUntilTheyEnd() throws {
        let fixture = try makeFixture()
        defer { fixture.shutdown() }
        let client = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { client.close() }
        var session = RawLegacySession(client: client)
        try session.post(Array("a".utf8))
        let stopped = fixture.relay.shutdown(drainTimeout: .seconds(600))
        let newcomer = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { newcomer.close() }
        let (status, text) = try newcomer.request("0 aGk=")
        XCTAssertEqual(status, .serviceUnavailable)
        XCTAssertTrue(text.contains("shutting down"), text)
        try session.post(Array("b".utf8))
        try session.collect(2)
        XCTAssertEqual(String(decoding: session.received, as: UTF8.self), "ab", "the open session goes on during the drain")
        XCTAssertEqual(fixture.relay.sessionCount, 1)
        // Its client stops posting: it idles out, and with it the drain is over.
        try fixture.relay.expireIdleSessions(now: .now() + .seconds(3600)).wait()
        XCTAssertNoThrow(try stopped.wait())
        XCTAssertEqual(fixture.relay.sessionCount, 0)
        XCTAssertEqual(fixture.relay.sessionLimit.count, 0, "every place given back")
    }

    /// The old relay's sessions count against the limit they share with the repeater's clients.
    func testSessionsCountAgainstASharedLimit() throws {
        let limit = SessionLimit(maximum: 2)
        XCTAssertTrue(limit.reserve(), "a repeater client holds one place")
        let fixture = try LegacyRelayFixture(sessionLimit: limit)
        defer { fixture.shutdown() }
        let client = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { client.close() }
        var session = RawLegacySession(client: client)
        try session.post(Array("x".utf8))
        XCTAssertEqual(limit.count, 2)
        let (status, text) = try client.request("0 aGk=")
        XCTAssertEqual(status, .serviceUnavailable)
        XCTAssertTrue(text.contains("--max-sessions"), text)
        limit.release()
        let (again, _) = try client.request("0 aGk=")
        XCTAssertEqual(again, .ok, "a place freed by the repeater is the relay's to take")
    }

    func testSessionsEndWhenTheLinkDrops() throws {
        let fixture = try makeFixture()
        defer { fixture.shutdown() }
        let client = try HTTPTestClient(port: port(fixture), group: fixture.group)
        defer { client.close() }
        var session = RawLegacySession(client: client)
        try session.post(Array("x".utf8))
        try session.collect(1)
        try fixture.backend.stop().wait()
        var last: (status: HTTPResponseStatus, body: String) = (.ok, "")
        for _ in 0..<20 {
            last = try client.request("\(session.id) ")
            if last.status != .ok { break }
        }
        XCTAssertEqual(last.status, .gone)
        XCTAssertTrue(last.body.contains("session \(session.id) has ended"), last.body)
        XCTAssertTrue(last.body.contains("start a new session with id 0"), last.body)
        let again = try client.request("\(session.id) ")
        XCTAssertEqual(again.status, .notFound, "a session reported gone is forgotten")
    }
}

func waitUntil(timeout: TimeAmount = .seconds(5), _ condition: () -> Bool, file: StaticString = #filePath, line: UInt = #line) throws {
    let deadline = NIODeadline.now() + timeout
    while !condition() {
        guard NIODeadline.now() < deadline else {
            XCTFail("condition not met within \(timeout)", file: file, line: line)
            return
        }
        usleep(20_000)
    }
}
