import NIOCore
import NIOPosix
import XCTest
import YamuxLink

/// Every form of link address, and a one-line refusal that names the accepted forms for a
/// `vsock:` address that is not one.
final class LinkAddressTests: XCTestCase {
    func testTCPAndUnixForms() throws {
        XCTAssertEqual(try LinkAddress(parsing: "127.0.0.1:6000"), .tcp(host: "127.0.0.1", port: 6000))
        XCTAssertEqual(try LinkAddress(parsing: "[::1]:6000"), .tcp(host: "::1", port: 6000))
        XCTAssertEqual(try LinkAddress(parsing: "unix:/run/x.sock"), .unix(path: "/run/x.sock"))
        XCTAssertTrue(try LinkAddress(parsing: "localhost:1").isTCP)
        XCTAssertFalse(try LinkAddress(parsing: "unix:/x").isTCP)
    }

    func testVsockFormsNumericAndNamedCIDs() throws {
        XCTAssertEqual(try LinkAddress(parsing: "vsock:16:5000"), .vsock(cid: 16, port: 5000))
        XCTAssertEqual(try LinkAddress(parsing: "vsock:any:5000"), .vsock(cid: UInt32.max, port: 5000))
        XCTAssertEqual(try LinkAddress(parsing: "vsock:host:5000"), .vsock(cid: 2, port: 5000))
        XCTAssertEqual(try LinkAddress(parsing: "vsock:local:5000"), .vsock(cid: 1, port: 5000))
        XCTAssertEqual(try LinkAddress(parsing: "vsock:hypervisor:1"), .vsock(cid: 0, port: 1))
        XCTAssertEqual(try LinkAddress(parsing: "vsock:4294967294:4294967294"), .vsock(cid: 4_294_967_294, port: 4_294_967_294))
        XCTAssertEqual("\(try LinkAddress(parsing: "vsock:any:5000"))", "vsock:any:5000")
        XCTAssertEqual("\(try LinkAddress(parsing: "vsock:16:5000"))", "vsock:16:5000")
        XCTAssertFalse(try LinkAddress(parsing: "vsock:16:5000").isTCP)
        guard case .vsock(let address) = try LinkAddress(parsing: "vsock:16:5000").resolve() else {
            return XCTFail("a vsock address resolves to a VsockAddress")
        }
        XCTAssertEqual(address, VsockAddress(cid: 16, port: 5000))
    }

    /// Before: `vsock:abc:1` was read as host `vsock:abc`, port 1, and failed to resolve on every redial.
    func testBadVsockAddressesAreRefusedInOneLineNamingTheAcceptedForms() {
        let cases = [
            ("vsock:abc:1", "'abc' is not a CID"),
            ("vsock:16", "the port is missing"),
            ("vsock:16:", "the port is missing"),
            ("vsock::5000", "the CID is missing"),
            ("vsock:16:65536x", "the port '65536x' is out of range"),
            ("vsock:16:4294967295", "the port '4294967295' is out of range"),
            ("vsock:16:-1", "the port '-1' is out of range"),
            ("vsock:1:2:3", "too many ':'"),
        ]
        for (text, reason) in cases {
            XCTAssertThrowsError(try LinkAddress(parsing: text), text) { error in
                XCTAssertEqual(
                    "\(error)",
                    "invalid address '\(text)': \(reason); accepted: vsock:CID:PORT with CID a number, any, host, local or hypervisor and PORT from 0 to 4294967294, e.g. vsock:16:5000 or vsock:any:5000"
                )
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
    }

    /// These machines have /dev/vsock and bind AF_VSOCK listeners (nothing can connect: no
    /// transport between processes). `ss` cannot list vsock listeners here, so a second bind of
    /// the same port, refused with "address already in use", shows that the first really listens.
    func testAVsockListenerBindsAndASecondBindOfThePortIsRefused() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/dev/vsock"), "no /dev/vsock on this machine")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let port = UInt32.random(in: 20_000...60_000)
        let address = LinkAddress.vsock(cid: UInt32.max, port: port)
        let first = try ServerBootstrap(group: group).bind(to: address).wait()
        defer { try? first.close().wait() }
        XCTAssertThrowsError(try ServerBootstrap(group: group).bind(to: address).wait()) { error in
            XCTAssertEqual("\(error)", "cannot listen on vsock:any:\(port): address already in use (another process listens there)")
        }
    }
}
