import Foundation
import NIOCore
import NIOPosix
import ProcessTestSupport
import XCTest

/// Files and directories that are missing, and sockets that refuse: one line naming the path or
/// address and what is wrong, exit 1 (issue 22). Each expected line is exact.
final class StartupErrorTests: XCTestCase {
    private let certs = TestCertificates.shared

    private func manager(cert: String? = nil, key: String? = nil, clientCA: String? = nil, listen: String = "127.0.0.1:0")
        -> [String]
    {
        [
            "--listen", listen, "--cert", cert ?? self.certs.path("runtime-manager.pem"),
            "--key", key ?? self.certs.path("runtime-manager.key"), "--client-ca", clientCA ?? self.certs.path("ca.pem"),
            "--policy", self.certs.path("policy.json"),
        ]
    }

    private func client(cert: String? = nil, key: String? = nil, ca: String? = nil) -> [String] {
        [
            "policy-hash", "--connect", "127.0.0.1:1", "--cert", cert ?? self.certs.path("client.pem"),
            "--key", key ?? self.certs.path("client.key"), "--ca", ca ?? self.certs.path("ca.pem"),
        ]
    }

    private func expectFailure(
        _ binary: String, _ arguments: [String], _ line: String, file: StaticString = #filePath, lineNumber: UInt = #line
    ) throws {
        let result = try runProcess(try Binaries.path(binary), arguments)
        // runtime-client says which class of failure (its --help): identity files are 78, EX_CONFIG.
        let status: Int32 = binary == "runtime-client" ? 78 : 1
        XCTAssertEqual(result.status, status, "\(binary) \(arguments): \(result.stderr)", file: file, line: lineNumber)
        let first = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertEqual(first, "\(binary): \(line)", file: file, line: lineNumber)
    }

    func testMissingCertificatesAndKeysNameThePathAndWhatIsWrong() throws {
        let missingFile = self.certs.path("no-such.pem")
        try self.expectFailure(
            "runtime-manager", self.manager(key: "/no-such-dir/k.key"),
            "cannot load the runtime manager's private key (--key) from /no-such-dir/k.key: no such directory /no-such-dir")
        try self.expectFailure(
            "runtime-manager", self.manager(cert: missingFile),
            "cannot load the runtime manager's certificate (--cert) from \(missingFile): no such file")
        try self.expectFailure(
            "runtime-manager", self.manager(clientCA: self.certs.path("policy.json")),
            "cannot load the client CA (--client-ca) from \(self.certs.path("policy.json")): not a PEM certificate; expected a PEM certificate file"
        )
        try self.expectFailure(
            "runtime-client", self.client(key: missingFile),
            "cannot load the client key (--key) from \(missingFile): no such file")
        try self.expectFailure(
            "runtime-client", self.client(cert: missingFile),
            "cannot load the client certificate (--cert) from \(missingFile): no such file")
        try self.expectFailure(
            "runtime-client", self.client(ca: "/no-such-dir/ca.pem"),
            "cannot load the CA certificate (--ca) from /no-such-dir/ca.pem: no such directory /no-such-dir")
        try self.expectFailure(
            "runtime-client", self.client(key: self.certs.directory),
            "cannot load the client key (--key) from \(self.certs.directory): is a directory, not a file")
    }

    func testAUnixSocketInAMissingDirectoryNamesTheDirectory() throws {
        let path = "/no-such-dir/sub/link.sock"
        try self.expectFailure(
            "runtime-manager", self.manager(listen: "unix:\(path)"),
            "--listen: cannot listen on unix:\(path): no such directory /no-such-dir/sub")
        try self.expectFailure(
            "repeaterd", ["--listen", "unix:\(path)", "--backend", "127.0.0.1:1", "--threads", "1", "--log-level", "critical"],
            "--listen: cannot listen on unix:\(path): no such directory /no-such-dir/sub")
        try self.expectFailure("muxcat", ["listen", "unix:\(path)"], "cannot listen on unix:\(path): no such directory /no-such-dir/sub")
    }

    /// NIO's own text read "connection reset (error set): Connection refused) (errno: 111)".
    func testARefusedConnectionIsCalledRefused() throws {
        let probe = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
        let port = probe.localAddress!.port!
        try probe.close().wait()
        try self.expectFailure(
            "muxcat", ["connect", "127.0.0.1:\(port)"],
            "cannot connect to 127.0.0.1:\(port): connection refused; is the runtime manager (or muxcat listen) listening there?")

        let repeater = try RunningProcess(
            try Binaries.path("repeaterd"), ["--listen", "127.0.0.1:0", "--backend", "127.0.0.1:\(port)", "--threads", "1"])
        defer { repeater.signal(SIGKILL) }
        XCTAssertTrue(
            repeater.waitFor(
                "cannot reach the runtime manager at 127.0.0.1:\(port): connection refused; retrying with backoff", onStderr: true))
        XCTAssertFalse(repeater.stderr.text.contains("errno"), repeater.stderr.text)
    }

    /// A second repeaterd on the same port shares it through SO_REUSEPORT (as a restart needs,
    /// with any number of event loops); started by mistake it would get half the clients
    /// silently, so it says so at start. And it listens only once its links are up: here its
    /// link never comes up, so it never takes a client from the first one.
    func testASecondRepeaterdOnTheSamePortSaysThePortIsSharedAndWaitsForItsLinks() throws {
        let probe = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
        let port = probe.localAddress!.port!
        try probe.close().wait()
        let arguments = ["--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:1"]
        let first = try RunningProcess(try Binaries.path("repeaterd"), arguments + ["--threads", "2"], name: "first repeaterd")
        defer { first.signal(SIGKILL) }
        XCTAssertTrue(first.waitFor("repeater listening", onStderr: true))
        XCTAssertFalse(first.stderr.text.contains("another socket"), first.stderr.text)

        for threads in ["2", "1"] {
            let second = try RunningProcess(try Binaries.path("repeaterd"), arguments + ["--threads", threads], name: "second repeaterd")
            defer { second.signal(SIGKILL) }
            XCTAssertTrue(
                second.waitFor(
                    "another socket already listens on 127.0.0.1:\(port): the port is shared (SO_REUSEPORT, which lets a new "
                        + "repeaterd take over during a restart), so the kernel splits new clients between the processes; "
                        + "this one listens only once its links are up (a restart then refuses nobody); "
                        + "stop the other one unless this is a restart", onStderr: true))
            XCTAssertTrue(second.waitFor("listening beside it once the links are up", onStderr: true))
            Thread.sleep(forTimeInterval: 1)
            XCTAssertFalse(second.stderr.text.contains("repeater listening"), "no link, no listener: \(second.stderr.text)")
        }
    }
}
