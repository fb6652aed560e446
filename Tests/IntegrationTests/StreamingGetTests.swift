import Foundation
import ProcessTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A `get` holds the file nowhere whole: the runtime manager streams it from its store, the
/// client writes it to disk as it arrives. Measured on the real processes (debug builds): peak
/// RSS does not grow with the file. A get cut short leaves no partial file under the target name.
final class StreamingGetTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    private let limit = ["--max-message-bytes", "300000000"]

    /// Forgets a process's peak RSS so far (Linux: `5` to /proc/PID/clear_refs), so VmHWM
    /// afterwards is the peak of what follows.
    private func resetPeak(_ pid: Int32) throws {
        try "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
    }

    func testAGetOf96MiBDoesNotGrowEitherProcessWithTheFile() throws {
        let size = 96 << 20
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort, limit)
        let (_, port) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        let file = try deployment.makeFile("big.bin", bytes: size)
        XCTAssertEqual(try deployment.runClient(port: port, limit + ["put", file, "big.bin"], timeout: 120).status, 0)

        let managerPID = manager.process.processIdentifier
        let stored = try XCTUnwrap(residentKiB(pid: managerPID))
        try resetPeak(managerPID)
        let fetched = deployment.sandbox.temporaryFile("fetched.bin")
        let peakFile = deployment.sandbox.temporaryFile("client-peak")
        // GNU time reports the client's peak RSS (it must outlive the client to see it).
        let get = try deployment.sandbox.start(
            "/usr/bin/time",
            [
                "-f", "%M", "-o", peakFile, try Binaries.path("runtime-client"),
                "--connect", "127.0.0.1:\(port)", "--cert", Certificates.path("client.pem"), "--key", Certificates.path("client.key"),
                "--ca", Certificates.path("ca.pem"), "--quiet",
            ] + limit + ["get", "big.bin", fetched],
            name: "runtime-client get")
        get.closeInput()
        XCTAssertEqual(get.waitForExit(timeout: 120), 0, get.stderr.text)
        let managerPeak = try XCTUnwrap(residentKiB(pid: managerPID, field: "VmHWM:"))
        let clientPeak = try XCTUnwrap(
            Int(try String(contentsOfFile: peakFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertEqual(FileManager.default.contents(atPath: fetched), FileManager.default.contents(atPath: file), "the file arrives whole")
        print(
            "get of \(size >> 20) MiB: runtime-client peak RSS \(clientPeak / 1024) MiB; runtime-manager \(stored / 1024) MiB "
                + "with the file stored, peak \(managerPeak / 1024) MiB during the get (+\((managerPeak - stored) / 1024) MiB)")
        XCTAssertLessThanOrEqual(clientPeak, 64 * 1024, "the client holds no copy of the file")
        XCTAssertLessThanOrEqual(managerPeak - stored, 64 * 1024, "the runtime manager holds no copy beyond its store")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: deployment.sandbox.directory.path).filter {
            $0.contains(".part-")
        }
        XCTAssertEqual(leftovers, [], "no temporary file is left behind")
    }

    func testAGetCutShortLeavesNoFileUnderTheTargetName() throws {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort, limit)
        let (_, port) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        let file = try deployment.makeFile("big.bin", bytes: 96 << 20)
        XCTAssertEqual(try deployment.runClient(port: port, limit + ["put", file, "big.bin"], timeout: 120).status, 0)
        let target = deployment.sandbox.temporaryFile("target.bin")
        try Data("the old contents\n".utf8).write(to: URL(fileURLWithPath: target))

        // Held back: the client reads slowly enough that the manager can be killed mid-file.
        let get = try deployment.client(port: port, limit + ["get", "big.bin", target])
        get.closeInput()
        let directory = deployment.sandbox.directory.path
        func partial() -> String? {
            (try? FileManager.default.contentsOfDirectory(atPath: directory))?.first { $0.hasPrefix(".target.bin.part-") }
        }
        XCTAssertTrue(
            eventually(timeout: 60) {
                guard let name = partial() else { return false }
                let size = (try? FileManager.default.attributesOfItem(atPath: "\(directory)/\(name)")[.size] as? Int) ?? 0
                return size > 0
            }, "the download starts writing its temporary file")
        manager.signal(SIGKILL)
        XCTAssertEqual(get.waitForExit(timeout: 60), 69, "a lost connection: EX_UNAVAILABLE, retry later")
        XCTAssertTrue(get.stderr.text.hasPrefix("runtime-client: "), get.stderr.text)
        XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8), "the old contents\n", "the old file stays as it was")
        XCTAssertNil(partial(), "the temporary file is removed")
    }
}

/// A put or an append keeps several chunks on their way; a failed chunk never leaves a file
/// with a hole, and a put that fails keeps the old file.
final class PipelinedPutTests: XCTestCase {
    private var deployment: Deployment!

    override func setUpWithError() throws { deployment = try Deployment() }
    override func tearDown() { deployment?.cleanUp() }

    /// An append of 26 MiB (chunks of 8, 8, 8 and 2 MiB) to a 1 MiB file in a store of 19 MiB,
    /// four chunks in flight: the third chunk does not fit, the fourth would (17 + 2 ≤ 19) and is
    /// already on its way. It is refused, the client reports the third's failure, and the file is
    /// exactly the old MiB and the first 16 MiB appended, as its hash says. (An append applies
    /// each chunk at once; a put is staged, below.)
    /// A runtime manager with a 19 MiB store behind a repeater, `name` stored as a 1 MiB file,
    /// and a 26 MiB file to send: (the repeater's port, the old file, the new one).
    private func oneMiBStoredIn19MiBStore(as name: String) throws -> (port: Int, old: String, new: String) {
        let linkPort = freePort()
        _ = try deployment.runtimeManager(linkPort: linkPort, ["--max-store-bytes", "\(19 << 20)"])
        let (_, port) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        let old = try deployment.makeFile("old.bin", bytes: 1 << 20)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", old, name]).status, 0)
        return (port, old, try deployment.makeFile("input.bin", bytes: 26 << 20))
    }

    func testAFailedChunkEndsAnAppendThereEvenWithLaterChunksInFlight() throws {
        let (port, old, file) = try oneMiBStoredIn19MiBStore(as: "holey.bin")
        let append = try deployment.runClient(port: port, ["--chunks-in-flight", "4", "append", file, "holey.bin"], timeout: 120)
        XCTAssertEqual(append.status, 1)
        XCTAssertTrue(append.stderr.hasPrefix("runtime-client: append to \"holey.bin\" failed: FAILED_GENERIC: "), append.stderr)
        XCTAssertFalse(append.stderr.contains("would have a hole"), "the first failure is reported, not the refusals after it")

        let expectedFile = deployment.sandbox.temporaryFile("old-and-16-MiB.bin")
        var expectedBytes = try XCTUnwrap(FileManager.default.contents(atPath: old))
        expectedBytes.append(try XCTUnwrap(FileManager.default.contents(atPath: file)).prefix(16 << 20))
        try expectedBytes.write(to: URL(fileURLWithPath: expectedFile))
        let expected = String(try runTool("/usr/bin/sha256sum", [expectedFile]).prefix(64))
        let hash = try deployment.runClient(port: port, ["hash", "holey.bin"])
        XCTAssertEqual(hash.status, 0, hash.stderr)
        XCTAssertEqual(String(hash.stdout.prefix(64)), expected, "the file is the chunks before the failure")

        // In a new session the file can be written again (here: one that fits).
        let small = try deployment.makeFile("small.bin", bytes: 1 << 20)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", small, "holey.bin"]).status, 0)
    }

    /// The same 26 MiB as a put over the 1 MiB file: staged, the third chunk does not fit
    /// (1 + 16 + 8 > 19), the put is abandoned, the fourth chunk already on its way is refused,
    /// and the stored file is still the old one.
    func testAFailedChunkAbandonsAPutAndKeepsTheOldFile() throws {
        let (port, old, file) = try oneMiBStoredIn19MiBStore(as: "kept.bin")
        let put = try deployment.runClient(port: port, ["--chunks-in-flight", "4", "put", file, "kept.bin"], timeout: 120)
        XCTAssertEqual(put.status, 1)
        XCTAssertTrue(put.stderr.contains("the put is abandoned and the stored file is unchanged"), put.stderr)
        XCTAssertEqual(put.stderr.split(separator: "\n").count, 1, put.stderr)
        let hash = try deployment.runClient(port: port, ["hash", "kept.bin"])
        XCTAssertEqual(String(hash.stdout.prefix(64)), String(try runTool("/usr/bin/sha256sum", [old]).prefix(64)))
        // The staged bytes were given back: a put that fits now succeeds.
        let fits = try deployment.makeFile("fits.bin", bytes: 17 << 20)
        XCTAssertEqual(try deployment.runClient(port: port, ["put", fits, "kept.bin"], timeout: 120).status, 0)
    }

    func testAPipelinedPutArrivesWhole() throws {
        let linkPort = freePort()
        _ = try deployment.runtimeManager(linkPort: linkPort)
        let (_, port) = try deployment.repeaterWithLinkUp(backendPort: linkPort, ["--threads", "1"])
        let file = try deployment.makeFile("input.bin", bytes: (40 << 20) + 12345)
        for window in ["1", "2", "4"] {
            XCTAssertEqual(
                try deployment.runClient(port: port, ["--chunks-in-flight", window, "put", file, "whole.bin"], timeout: 120).status, 0)
            let hash = try deployment.runClient(port: port, ["hash", "whole.bin"])
            XCTAssertEqual(String(hash.stdout.prefix(64)), String(try runTool("/usr/bin/sha256sum", [file]).prefix(64)), "window \(window)")
        }
    }
}
