import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Certificates and policy made once per test run by tools/gen-certs.sh.
enum Certificates {
    static var directory: String { TestCertificates.shared.directory }

    static func path(_ name: String) -> String { TestCertificates.shared.path(name) }
}

/// One yamux frame as this test sees it on the wire.
struct WireFrame: Equatable, CustomStringConvertible {
    var version: UInt8 = 0
    var type: UInt8
    var flags: UInt16
    var stream: UInt32
    var length: UInt32
    var payload: [UInt8] = []

    static let data: UInt8 = 0, windowUpdate: UInt8 = 1, ping: UInt8 = 2, goAway: UInt8 = 3
    static let syn: UInt16 = 1, ack: UInt16 = 2, fin: UInt16 = 4, rst: UInt16 = 8

    var bytes: [UInt8] {
        var out: [UInt8] = [version, type, UInt8(flags >> 8), UInt8(flags & 0xFF)]
        for value in [stream, length] {
            out += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
        }
        return out + payload
    }

    var description: String { "v\(version) type \(type) flags \(flags) stream \(stream) length \(length)" }

    /// Parses whole frames from `bytes` (a trailing partial frame is ignored).
    static func parse(_ bytes: [UInt8]) -> [WireFrame] {
        var frames: [WireFrame] = []
        var at = 0
        func u32(_ i: Int) -> UInt32 {
            UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
        }
        while at + 12 <= bytes.count {
            var frame = WireFrame(
                version: bytes[at], type: bytes[at + 1], flags: UInt16(bytes[at + 2]) << 8 | UInt16(bytes[at + 3]),
                stream: u32(at + 4), length: u32(at + 8))
            at += 12
            if frame.type == WireFrame.data {
                guard at + Int(frame.length) <= bytes.count else { break }
                frame.payload = Array(bytes[at..<at + Int(frame.length)])
                at += Int(frame.length)
            }
            frames.append(frame)
        }
        return frames
    }
}

/// A blocking TCP socket for speaking raw (possibly hostile) bytes to a process.
final class RawSocket {
    let fd: Int32
    private(set) var received: [UInt8] = []

    private init(fd: Int32) { self.fd = fd }

    /// Connects to 127.0.0.1:port; from `source` (another loopback address, 127.0.0.0/8) when
    /// given, so that a client can be told apart from the relays it goes through.
    /// `receiveBuffer` sets SO_RCVBUF before connecting (a client that stops reading then fills
    /// up after a few KiB, not after the kernel's autotuned megabytes).
    static func connect(
        port: Int, from source: String? = nil, receiveBuffer: Int? = nil, file: StaticString = #filePath, line: UInt = #line
    ) throws -> RawSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        if let source {
            var local = sockaddr_in.loopback(port: 0)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let reason = String(cString: strerror(errno))
                Glibc.close(fd)
                throw SocketError("bind to \(source): \(reason)")
            }
        }
        var address = sockaddr_in.loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw SocketError("connect to 127.0.0.1:\(port): \(reason)")
        }
        return RawSocket(fd: fd)
    }

    /// The port this socket connected from.
    var localPort: Int { port(getsockname) }

    /// The port of the far end.
    var remotePort: Int { port(getpeername) }

    private func port(_ name: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { name(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }  // the peer closed: what it sent before is what the test checks
            sent += n
        }
    }

    func send(_ frames: [WireFrame]) { send(frames.flatMap(\.bytes)) }

    /// Sends `bytes` (over and over when `repeating`) without reading anything, until they are
    /// all sent, the peer closes, or `deadline` passes: never blocked past it by a peer that
    /// stops reading (which is what a flood test is about). Returns the bytes sent.
    @discardableResult
    func send(_ bytes: [UInt8], repeating: Bool = false, until deadline: Date) -> Int {
        var total = 0
        var offset = 0
        while Date() < deadline, repeating || offset < bytes.count {
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let wait = Int32(min(100, max(1, deadline.timeIntervalSinceNow * 1000)))
            guard poll(&poller, 1, wait) >= 0 else { break }
            if poller.revents & Int16(POLLOUT) == 0 {
                if poller.revents != 0 { break }  // closed or failed
                continue
            }
            let n = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                break
            }
            total += n
            offset += n
            if repeating, offset == bytes.count { offset = 0 }
        }
        return total
    }

    func shutdownWrite() { _ = shutdown(fd, Int32(SHUT_WR)) }

    /// Reads until `condition` holds for what arrived so far, the peer closes, or `timeout`.
    /// Returns whether the peer closed (EOF or reset).
    @discardableResult
    func read(timeout: TimeInterval, until condition: ([UInt8]) -> Bool = { _ in false }) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !condition(received) {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return false }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, Int32(max(1, left * 1000))) <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return true }
            received += buffer[0..<n]
        }
        return false
    }

    /// Reads until the peer closes; false if it is still open after `timeout`.
    func readUntilClosed(timeout: TimeInterval) -> Bool { read(timeout: timeout) }

    var frames: [WireFrame] { WireFrame.parse(received) }
    func clearReceived() { received.removeAll() }

    func close() { Glibc.close(fd) }
}

/// A listening TCP socket on a free loopback port, for a test that plays the runtime manager.
final class RawListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in.loopback(port: 0)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(fd, 64)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// The next connection, or an error after `timeout`.
    func accept(timeout: TimeInterval) throws -> RawSocket {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else {
            throw SocketError("nobody connected to 127.0.0.1:\(port) within \(timeout) s")
        }
        let connection = Glibc.accept(fd, nil, nil)
        guard connection >= 0 else { throw SocketError("accept: \(String(cString: strerror(errno)))") }
        return RawSocket.adopt(connection)
    }

    func close() { Glibc.close(fd) }
}

extension RawSocket {
    fileprivate static func adopt(_ fd: Int32) -> RawSocket { RawSocket(fd: fd) }
}

struct SocketError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension sockaddr_in {
    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }
}

/// Resident memory of a process in KiB, from /proc (`VmHWM:` for its peak so far).
func residentKiB(pid: Int32, field: String = "VmRSS:") -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix(field) {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
}

/// Starts measuring a process's peak resident memory from now (`VmHWM:` is reset to the
/// current resident size; Linux's clear_refs, value 5).
func resetPeakResident(pid: Int32) {
    try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes. The timeout is a deadline
/// for a broken run, never a measurement: make it generous.
func eventually(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// `eventually` for conditions that must be awaited (an in-process server's statistics).
func eventuallyAsync(timeout: TimeInterval, _ condition: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if await condition() { return true }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
    return await condition()
}

/// The kernel's queues of the loopback TCP socket bound to `localPort` and connected to
/// `remotePort`, from /proc/net/tcp (every socket of this network namespace, other processes'
/// too): `sent` is what was written but not yet acknowledged by the peer, `unread` what arrived
/// but was not yet read by the socket's owner. Nil if there is no such socket.
func tcpQueues(localPort: Int, remotePort: Int) -> (sent: Int, unread: Int)? {
    // Read to the end: String(contentsOfFile:) stops after the first 4 KiB of a /proc file, and
    // the table has a line per socket (thousands after the 10,000-session test).
    guard let file = FileHandle(forReadingAtPath: "/proc/net/tcp") else { return nil }
    defer { try? file.close() }
    let table = String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
    let local = String(format: "0100007F:%04X", localPort)
    let remote = String(format: "0100007F:%04X", remotePort)
    for line in table.split(separator: "\n").dropFirst() {
        // sl local_address rem_address st tx_queue:rx_queue ...
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count > 4, fields[1] == local, fields[2] == remote else { continue }
        let queues = fields[4].split(separator: ":")
        guard queues.count == 2, let sent = Int(queues[0], radix: 16), let unread = Int(queues[1], radix: 16) else {
            return nil
        }
        return (sent, unread)
    }
    return nil
}

/// The deployment pieces as processes: runtime-manager, repeaterd, runtime-client.
final class Deployment: Sendable {
    let sandbox: ProcessSandbox
    /// Where the four commands are: `swift build`'s directory, or links to the multi-call binary.
    private let binaries: URL?

    init(binaries: URL? = nil) throws {
        sandbox = try ProcessSandbox(prefix: "reliability-tests")
        self.binaries = binaries
    }

    private func binary(_ name: String) throws -> String {
        guard let binaries else { return try Binaries.path(name) }
        return binaries.appendingPathComponent(name).path
    }

    func cleanUp() { sandbox.cleanUp() }

    /// `runtime-manager --listen 127.0.0.1:linkPort`, once it accepts links.
    func runtimeManager(linkPort: Int, _ extra: [String] = [], file: StaticString = #filePath, line: UInt = #line)
        throws -> RunningProcess
    {
        let process = try sandbox.start(
            try binary("runtime-manager"),
            [
                "--listen", "127.0.0.1:\(linkPort)", "--cert", Certificates.path("runtime-manager.pem"),
                "--key", Certificates.path("runtime-manager.key"), "--client-ca", Certificates.path("ca.pem"),
                "--policy", Certificates.path("policy.json"),
            ] + extra, name: "runtime-manager")
        process.waitFor("accepting repeater links", onStderr: true, timeout: 20, file: file, line: line)
        return process
    }

    /// `repeaterd` on `listenPort` with its link to `backendPort`; waits until it listens (not for the link).
    func repeater(listenPort: Int, backendPort: Int, _ extra: [String] = [], file: StaticString = #filePath, line: UInt = #line)
        throws -> RunningProcess
    {
        let process = try sandbox.start(
            try binary("repeaterd"),
            ["--listen", "127.0.0.1:\(listenPort)", "--backend", "127.0.0.1:\(backendPort)"] + extra, name: "repeaterd")
        process.waitFor("repeater listening", onStderr: true, timeout: 20, file: file, line: line)
        return process
    }

    /// `repeaterd` on a free port in front of `backendPort`, once its link is up.
    func repeaterWithLinkUp(backendPort: Int, _ extra: [String], file: StaticString = #filePath, line: UInt = #line)
        throws -> (RunningProcess, port: Int)
    {
        let port = freePort()
        let process = try repeater(listenPort: port, backendPort: backendPort, extra, file: file, line: line)
        process.waitFor("link up", onStderr: true, file: file, line: line)
        return (process, port)
    }

    /// `runtime-client --connect 127.0.0.1:port --quiet ARGS` as identity `who`, started (not waited for).
    func client(port: Int, _ arguments: [String], who: String = "client") throws -> RunningProcess {
        try sandbox.start(
            try binary("runtime-client"),
            [
                "--connect", "127.0.0.1:\(port)", "--cert", Certificates.path("\(who).pem"),
                "--key", Certificates.path("\(who).key"), "--ca", Certificates.path("ca.pem"), "--quiet",
            ] + arguments, name: "runtime-client \(arguments.first ?? "")")
    }

    /// Runs a client command to completion: (exit status, stdout, stderr).
    func runClient(
        port: Int, _ arguments: [String], who: String = "client", timeout: TimeInterval = 60,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> (status: Int32?, stdout: String, stderr: String) {
        let process = try client(port: port, arguments, who: who)
        process.closeInput()
        let status = process.waitForExit(timeout: timeout, file: file, line: line)
        return (status, process.stdout.text, process.stderr.text)
    }

    /// A file of `bytes` pseudo-random bytes in the sandbox.
    func makeFile(_ name: String, bytes: Int) throws -> String {
        var generator = SystemRandomNumberGenerator()
        var data = Data(count: bytes)
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in 0..<words.count { words[i] = generator.next() }
        }
        let path = sandbox.temporaryFile(name)
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    // MARK: The admin endpoint

    /// One request on a fresh connection: (status code, body). The endpoint closes after answering.
    func adminGet(_ port: Int, _ path: String) throws -> (status: Int, body: String) {
        let socket = try RawSocket.connect(port: port)
        defer { socket.close() }
        socket.send(Array("GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n".utf8))
        XCTAssertTrue(socket.readUntilClosed(timeout: 10), "the admin endpoint closes after its answer")
        return Self.parseHTTP(socket.received)
    }

    static func parseHTTP(_ bytes: [UInt8]) -> (status: Int, body: String) {
        let text = String(decoding: bytes, as: UTF8.self)
        let status = Int(text.split(separator: " ", maxSplits: 2).dropFirst().first ?? "") ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    /// The samples of a /metrics text, as Python's prometheus_client parser reads them:
    /// "name{label=value,...}" -> value.
    func samples(_ exposition: String) throws -> [String: Double] {
        let script = """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            for family in text_string_to_metric_families(sys.stdin.read()):
                for s in family.samples:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                    print(f"{s.name}{{{labels}}} {s.value}")
            """
        let parser = try sandbox.start("/usr/bin/env", ["python3", "-c", script], name: "prometheus_client parser")
        parser.write(exposition)
        parser.closeInput()
        XCTAssertEqual(parser.waitForExit(), 0, "prometheus_client could not parse /metrics: \(parser.stderr.text)")
        var result: [String: Double] = [:]
        for line in parser.stdout.text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Double(parts[1]) { result[String(parts[0])] = value }
        }
        return result
    }
}
