import Foundation
import NIOCore
import RuntimeClient
import XCTest

/// `get` into a file: the bytes go to a temporary file beside it, which becomes the file only
/// when the whole response arrived; a download cut short leaves the old file as it was.
final class FileDownloadTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("file-download-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    private func contents(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    func testTheFileIsReplacedOnlyWhenTheDownloadCommits() throws {
        let path = directory.appendingPathComponent("result.txt").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("old".utf8)))
        let download = try FileDownload(path: path)
        XCTAssertEqual(
            URL(fileURLWithPath: download.temporaryPath).deletingLastPathComponent().path, directory.path,
            "beside the file, so that the rename is atomic")
        try download.write(ByteBuffer(string: "new "))
        try download.write(ByteBuffer(string: "bytes"))
        XCTAssertEqual(contents(path), "old", "the old file stays until the whole response arrived")
        try download.commit()
        XCTAssertEqual(contents(path), "new bytes")
        XCTAssertFalse(FileManager.default.fileExists(atPath: download.temporaryPath))
    }

    func testADownloadCutShortLeavesTheOldFileAndNoTemporaryOne() throws {
        let path = directory.appendingPathComponent("result.txt").path
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data("old".utf8)))
        let download = try FileDownload(path: path)
        try download.write(ByteBuffer(string: "half of it"))
        download.discard()
        XCTAssertEqual(contents(path), "old")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["result.txt"])
        XCTAssertThrowsError(try download.commit(), "a discarded download cannot commit")
    }

    func testADirectoryThatIsNotThereIsNamedInTheError() {
        let path = directory.appendingPathComponent("missing/result.txt").path
        XCTAssertThrowsError(try FileDownload(path: path)) { error in
            XCTAssertTrue("\(error)".contains("no such file or directory"), "\(error)")
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
    }
}
