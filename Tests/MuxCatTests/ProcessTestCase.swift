import Foundation
import ProcessTestSupport
import XCTest

/// Processes and files of one test, cleaned up at its end.
class ProcessTestCase: XCTestCase {
    private var sandbox: ProcessSandbox!
    var directory: URL { sandbox.directory }

    override func setUpWithError() throws {
        sandbox = try ProcessSandbox(prefix: "muxcat-tests")
    }

    override func tearDown() {
        sandbox?.cleanUp()
    }

    func start(_ executable: String, _ arguments: [String], stdinFrom file: String? = nil, name: String? = nil) throws
        -> RunningProcess
    {
        try sandbox.start(executable, arguments, stdinFrom: file, name: name)
    }

    func temporaryFile(_ name: String) -> String { sandbox.temporaryFile(name) }

    /// `muxcat listen 127.0.0.1:PORT ARGS -v`, once it is listening.
    func startListener(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws
        -> (RunningProcess, port: Int)
    {
        let port = freePort()
        let listener = try start(
            try Binaries.muxcat, ["listen", "127.0.0.1:\(port)", "-v"] + arguments, name: "muxcat listen")
        listener.waitFor("listening on 127.0.0.1:\(port)", onStderr: true, file: file, line: line)
        return (listener, port)
    }

    /// `repeaterd` with one link to the listener on `backendPort`, once that link is up.
    func startRepeater(backendPort: Int, listener: RunningProcess, file: StaticString = #filePath, line: UInt = #line)
        throws -> (RunningProcess, port: Int)
    {
        let port = freePort()
        let repeater = try start(
            try Binaries.repeaterd,
            ["--listen", "127.0.0.1:\(port)", "--backend", "127.0.0.1:\(backendPort)", "--threads", "1"],
            name: "repeaterd")
        repeater.waitFor("repeater listening", onStderr: true, file: file, line: line)
        listener.waitFor("link 1 accepted", onStderr: true, file: file, line: line)
        return (repeater, port)
    }

    /// Runs `muxcat ARGS` to completion with `input` on stdin.
    func runMuxcat(_ arguments: [String], input: Data = Data(), timeout: TimeInterval = 20) throws
        -> (status: Int32?, stdout: Data, stderr: String)
    {
        let process = try start(try Binaries.muxcat, arguments, name: "muxcat \(arguments.first ?? "")")
        process.write(input)
        process.closeInput()
        let status = process.waitForExit(timeout: timeout)
        return (status, process.stdout.bytes, process.stderr.text)
    }
}
