import Foundation
import ProcessTestSupport
import XCTest

/// The multi-call binary the packages install (`repeater`, with the four command names as links
/// to it): each name runs its command exactly as the command's own binary does, a first
/// argument names a command too, and the system works end to end through the links.
final class MultiCallBinaryTests: XCTestCase {
    private static let commands = ["repeaterd", "runtime-manager", "runtime-client", "muxcat"]
    private var deployment: Deployment!
    private var links: URL!

    override func setUpWithError() throws {
        let multiCall = try Binaries.path("repeater")
        let sandbox = try ProcessSandbox(prefix: "multi-call-links")
        links = sandbox.directory
        for name in Self.commands {
            try FileManager.default.createSymbolicLink(
                atPath: links.appendingPathComponent(name).path, withDestinationPath: multiCall)
        }
        deployment = try Deployment(binaries: links)
    }

    override func tearDown() {
        deployment?.cleanUp()
        if let links { try? FileManager.default.removeItem(at: links) }
    }

    private func link(_ name: String) -> String { links.appendingPathComponent(name).path }

    func testEachNameAnswersAsItsOwnBinaryDoes() throws {
        let multiCall = try Binaries.path("repeater")
        for name in Self.commands {
            let own = try Binaries.path(name)
            for arguments in [["--help"], ["--version"], ["--no-such-option"]] {
                let expected = try runProcess(own, arguments)
                let throughLink = try runProcess(self.link(name), arguments)
                let throughArgument = try runProcess(multiCall, [name] + arguments)
                for (how, result) in [("link", throughLink), ("argument", throughArgument)] {
                    XCTAssertEqual(result.status, expected.status, "\(name) \(arguments) by \(how): \(result.stderr)")
                    XCTAssertEqual(result.stdout, expected.stdout, "\(name) \(arguments) by \(how)")
                    XCTAssertEqual(result.stderr, expected.stderr, "\(name) \(arguments) by \(how)")
                }
            }
        }
        // Subcommands and their own help come through too.
        let decodeHelp = try runProcess(self.link("muxcat"), ["decode", "--help"])
        XCTAssertEqual(decodeHelp.status, 0)
        XCTAssertEqual(decodeHelp.stdout, try runProcess(try Binaries.muxcat, ["decode", "--help"]).stdout)
    }

    func testTheBinaryByItsOwnNameSaysWhatItHolds() throws {
        let multiCall = try Binaries.path("repeater")
        let help = try runProcess(multiCall, ["--help"])
        XCTAssertEqual(help.status, 0)
        for name in Self.commands { XCTAssertTrue(help.stdout.contains(name), help.stdout) }
        XCTAssertEqual(try runProcess(multiCall, ["--version"]).stdout, try runProcess(try Binaries.repeaterd, ["--version"]).stdout)

        for arguments in [[], ["nonesuch"], ["--bogus"]] {
            let result = try runProcess(multiCall, arguments)
            XCTAssertEqual(result.status, 64, "\(arguments): a usage error")
            XCTAssertEqual(result.stdout, "")
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.hasPrefix("repeater: no command"), result.stderr)
            XCTAssertTrue(result.stderr.contains("runtime-manager"), "names what it has: \(result.stderr)")
        }
    }

    /// runtime-manager, repeaterd and runtime-client all started through links: a put and a get
    /// of 3 MiB through the repeater, and SIGTERM stops both daemons gracefully.
    func testTheSystemRunsThroughTheLinks() throws {
        let linkPort = freePort()
        let manager = try deployment.runtimeManager(linkPort: linkPort)
        let (repeater, port) = try deployment.repeaterWithLinkUp(backendPort: linkPort, [])
        let file = try deployment.makeFile("input.bin", bytes: 3 * 1024 * 1024 + 5)
        let back = deployment.sandbox.temporaryFile("back.bin")
        let put = try deployment.runClient(port: port, ["put", file, "multi/input.bin"])
        XCTAssertEqual(put.status, 0, put.stderr)
        let get = try deployment.runClient(port: port, ["get", "multi/input.bin", back], who: "reader")
        XCTAssertEqual(get.status, 0, get.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: back), FileManager.default.contents(atPath: file))

        for daemon in [repeater, manager] {
            daemon.signal(SIGTERM)
            XCTAssertEqual(daemon.waitForExit(), 0, daemon.stderr.text)
        }
        XCTAssertTrue(manager.stderr.text.contains("runtime manager stopped"), manager.stderr.text)
    }
}
