import CommandLineSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// sd_listen_fds(3)'s rules, on plain values: only for this process, a positive count, names in order.
final class SocketActivationTests: XCTestCase {
    func testDescriptorsFromThreeOnAreTakenOnlyWhenListenPIDIsThisProcess() {
        let passed = SocketActivation.parse(
            environment: ["LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "client:admin"], pid: 42)
        XCTAssertEqual(
            passed?.listeners,
            [.init(descriptor: 3, name: "client"), .init(descriptor: 4, name: "admin")])
        XCTAssertNil(SocketActivation.parse(environment: ["LISTEN_PID": "41", "LISTEN_FDS": "1"], pid: 42), "meant for another process")
        XCTAssertNil(SocketActivation.parse(environment: ["LISTEN_FDS": "1"], pid: 42), "no LISTEN_PID")
        XCTAssertNil(SocketActivation.parse(environment: ["LISTEN_PID": "42", "LISTEN_FDS": "0"], pid: 42))
        XCTAssertNil(SocketActivation.parse(environment: ["LISTEN_PID": "42", "LISTEN_FDS": "x"], pid: 42))
        XCTAssertEqual(
            SocketActivation.parse(environment: ["LISTEN_PID": "42", "LISTEN_FDS": "1"], pid: 42)?.listeners,
            [.init(descriptor: 3, name: "unknown")], "systemd's name for an unnamed descriptor")
    }

    func testOnlyAListeningStreamSocketIsAccepted() throws {
        let datagram = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(datagram) }
        XCTAssertFalse(SocketActivation.isListeningStreamSocket(datagram))
        let stream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(stream) }
        XCTAssertFalse(SocketActivation.isListeningStreamSocket(stream), "not listening yet")
        XCTAssertEqual(listen(stream, 1), 0)
        XCTAssertTrue(SocketActivation.isListeningStreamSocket(stream))
    }
}
