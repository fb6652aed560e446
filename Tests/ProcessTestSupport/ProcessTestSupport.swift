import Foundation
import Synchronization
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The repository this test file lives in, and the binaries `swift build` put there.
public enum Binaries {
    public static let repository: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Where `swift build` put the executables: beside the test bundle (so a build with another
    /// `--scratch-path`, such as tools/sanitize.sh's, runs its own sanitized binaries), else `.build/debug`.
    public static let directory: URL = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if FileManager.default.isExecutableFile(atPath: besideTests.appendingPathComponent("muxcat").path) {
            return besideTests
        }
        return repository.appendingPathComponent(".build/debug")
    }()

    public static func path(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = directory.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            XCTFail(
                "\(path) is missing: build it first with `swift build --product \(name)` (or `swift build --build-tests`)",
                file: file, line: line)
            throw MissingTool(name: name)
        }
        return path
    }

    public static var muxcat: String { get throws { try path("muxcat") } }
    public static var repeaterd: String { get throws { try path("repeaterd") } }

    /// A tool from the system (nc, openssl, haproxy), or a clear failure saying which package provides it.
    public static func system(_ name: String, package: String, file: StaticString = #filePath, line: UInt = #line) throws
        -> String
    {
        for directory in ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin"] {
            let path = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        XCTFail("\(name) is not installed: apt-get install \(package)", file: file, line: line)
        throw MissingTool(name: name)
    }

    public struct MissingTool: Error {
        public var name: String
    }
}

/// The repository root (where tools/ and the sources are).
public let repositoryRoot: URL = Binaries.repository

/// Runs a program to completion and returns its exit status and output.
@discardableResult
public func runProcess(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

/// Certificates and a policy made by tools/gen-certs.sh (so the script is tested too), once per
/// test run: the main set, and a second set from another CA.
public struct TestCertificates: Sendable {
    public let directory: String
    public let foreignDirectory: String

    public static let shared: TestCertificates = {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("repeater-tests-\(getpid())")
        let main = base.appendingPathComponent("certs").path
        let foreign = base.appendingPathComponent("foreign").path
        let script = repositoryRoot.appendingPathComponent("tools/gen-certs.sh").path
        for directory in [main, foreign] {
            let result = try! runProcess("/bin/bash", [script, directory])
            precondition(result.status == 0, "tools/gen-certs.sh failed: \(result.stderr)")
        }
        return TestCertificates(directory: main, foreignDirectory: foreign)
    }()

    public func path(_ name: String) -> String { "\(directory)/\(name)" }
    public func foreignPath(_ name: String) -> String { "\(foreignDirectory)/\(name)" }
}

/// Bytes a child process wrote, collected as they arrive.
public final class CollectedOutput: Sendable {
    private let collected = Mutex<(data: Data, finished: Bool)>((Data(), false))

    public init() {}

    public func append(_ more: Data) { collected.withLock { $0.data.append(more) } }
    public func markFinished() { collected.withLock { $0.finished = true } }
    public var isFinished: Bool { collected.withLock { $0.finished } }
    public var bytes: Data { collected.withLock { $0.data } }
    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// A child process with its stdin writable and its stdout/stderr collected, killed at the end
/// of the test if it is still running.
public final class RunningProcess: @unchecked Sendable {  // Process, Pipe: not Sendable; the test's thread only
    public let name: String
    public let process = Process()
    public let stdout = CollectedOutput()
    public let stderr = CollectedOutput()
    private let input = Pipe()

    /// `environment`: variables set (or replaced) on top of the test's own.
    public init(
        _ executable: String, _ arguments: [String], stdinFrom file: String? = nil, name: String? = nil,
        environment: [String: String] = [:]
    ) throws {
        self.name = name ?? URL(fileURLWithPath: executable).lastPathComponent
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, set in set }
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        if let file {
            process.standardInput = FileHandle(forReadingAtPath: file)
        } else {
            process.standardInput = input
        }
        // One blocking reader thread per pipe: chunks are appended strictly in order (Foundation's
        // readabilityHandler on Linux can deliver them out of order, which once made an echo
        // look reordered), and `finished` tells when everything up to EOF is in.
        for (pipe, sink) in [(out, stdout), (err, stderr)] {
            let handle = pipe.fileHandleForReading
            let thread = Thread {
                while true {
                    let more = handle.availableData
                    if more.isEmpty { break }
                    sink.append(more)
                }
                sink.markFinished()
            }
            thread.start()
        }
        try process.run()
    }

    public func write(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }
    public func write(_ data: Data) { input.fileHandleForWriting.write(data) }
    public func closeInput() { try? input.fileHandleForWriting.close() }

    public func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// Waits until `text` shows up on stdout or stderr; fails the test (showing both) if it does not.
    /// The timeout only bounds a broken run (never a measurement), so it is generous.
    @discardableResult
    public func waitFor(
        _ text: String, onStderr: Bool = false, timeout: TimeInterval = 20, file: StaticString = #filePath,
        line: UInt = #line
    ) -> Bool {
        let output = onStderr ? stderr : stdout
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.text.contains(text) { return true }
            usleep(10_000)
        }
        XCTFail(
            "\(name): '\(text)' did not appear on \(onStderr ? "stderr" : "stdout") within \(timeout) s\n"
                + "stdout: \(stdout.text.suffix(2000))\nstderr: \(stderr.text.suffix(2000))",
            file: file, line: line)
        return false
    }

    /// The exit status, or nil (and a test failure) if the process is still running after `timeout`.
    public func waitForExit(timeout: TimeInterval = 20, file: StaticString = #filePath, line: UInt = #line) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        guard !process.isRunning else {
            XCTFail(
                "\(name) still running after \(timeout) s\nstdout: \(stdout.text.suffix(2000))\nstderr: \(stderr.text.suffix(2000))",
                file: file, line: line)
            return nil
        }
        // Let the reader threads take the last bytes (up to EOF).
        let drained = Date().addingTimeInterval(5)
        while !(stdout.isFinished && stderr.isFinished) && Date() < drained { usleep(2_000) }
        return process.terminationStatus
    }

    public func stop() {
        signal(SIGKILL)
        process.waitUntilExit()
    }
}

/// A TCP port nobody listens on right now (bound and released; fine on a test machine).
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The processes and scratch files of one test: start processes through it, and call
/// ``cleanUp()`` from `tearDown` so nothing outlives the test (every child is killed).
///
/// Processes may be started from several threads at once (a test's concurrent clients).
public final class ProcessSandbox: Sendable {
    private let running = Mutex<[RunningProcess]>([])
    public let directory: URL

    public init(prefix: String = "process-tests") throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    public func cleanUp() {
        for process in running.withLock({ $0 }) { process.stop() }
        running.withLock { $0.removeAll() }
        try? FileManager.default.removeItem(at: directory)
    }

    public func start(
        _ executable: String, _ arguments: [String], stdinFrom file: String? = nil, name: String? = nil,
        environment: [String: String] = [:]
    ) throws -> RunningProcess {
        let process = try RunningProcess(executable, arguments, stdinFrom: file, name: name, environment: environment)
        running.withLock { $0.append(process) }
        return process
    }

    public func temporaryFile(_ name: String) -> String { directory.appendingPathComponent(name).path }
}

/// A Unix datagram socket standing in for systemd's `$NOTIFY_SOCKET`: bound to a path, or to a
/// name in the abstract namespace (`@name`), and read by the test.
public final class NotifySocketListener {
    /// The value for `NOTIFY_SOCKET`.
    public let address: String
    private let descriptor: Int32

    /// `abstract`: bind `@name` instead of a file in `directory`.
    public init(directory: URL, abstract: Bool) throws {
        let name = "notify-\(UUID().uuidString.prefix(8))"
        address = abstract ? "@\(name)" : directory.appendingPathComponent(name).path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(address.utf8)
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard descriptor >= 0, bound == 0 else {
            throw NSError(domain: "NotifySocketListener", code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "cannot bind \(address)"])
        }
    }

    deinit { close(descriptor) }

    /// The next datagram, or nil after `timeout` seconds without one.
    public func receive(timeout: TimeInterval) -> String? {
        var waiter = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&waiter, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        return count < 0 ? nil : String(decoding: buffer[..<count], as: UTF8.self)
    }

    /// Datagrams until one has the line `text` (`READY=1`; returned, with the time it came), or nil
    /// after `timeout`.
    /// Every datagram read on the way is appended to `seen`.
    public func receive(containing text: String, timeout: TimeInterval, seen: inout [String]) -> (message: String, at: Date)? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let message = receive(timeout: deadline.timeIntervalSinceNow) else { return nil }
            seen.append(message)
            if message.split(separator: "\n").contains(Substring(text)) { return (message, Date()) }
        }
        return nil
    }
}
