import Foundation
import RuntimeManager
import XCTest

final class FileStoreTests: XCTestCase {
    func testWriteReplacesAppendAppendsReadReturns() throws {
        let store = FileStore(maximumTotalBytes: 100)
        try store.write("a", data: Data("hello".utf8))
        try store.append("a", data: Data(" world".utf8))
        XCTAssertEqual(try store.read("a"), Data("hello world".utf8))
        try store.write("a", data: Data("bye".utf8))
        XCTAssertEqual(try store.read("a"), Data("bye".utf8))
        XCTAssertEqual(store.totalBytes, 3)
    }

    func testMissingFiles() {
        let store = FileStore(maximumTotalBytes: 100)
        XCTAssertThrowsError(try store.read("nope")) { XCTAssertEqual($0 as? FileStoreError, .noSuchFile(name: "nope")) }
        XCTAssertThrowsError(try store.append("nope", data: Data([1]))) {
            XCTAssertEqual($0 as? FileStoreError, .appendToMissingFile(name: "nope"))
            XCTAssertTrue("\($0)".contains("write (put) it first"))
        }
    }

    func testTotalSizeLimitCountsReplacementsAndAppends() throws {
        let store = FileStore(maximumTotalBytes: 10)
        try store.write("a", data: Data(count: 6))
        XCTAssertThrowsError(try store.write("b", data: Data(count: 5))) { error in
            XCTAssertEqual(error as? FileStoreError, .storeFull(name: "b", requested: 5, used: 6, limit: 10))
            XCTAssertTrue("\(error)".contains("--max-store-bytes"))
        }
        // Replacing "a" frees its old size first.
        try store.write("a", data: Data(count: 10))
        XCTAssertThrowsError(try store.append("a", data: Data(count: 1)))
        XCTAssertEqual(store.totalBytes, 10)
        XCTAssertEqual(try store.read("a").count, 10, "a refused append leaves the file as it was")
    }

    func testConcurrentAppendsFromManyThreadsAllLand() throws {
        let store = FileStore(maximumTotalBytes: 1 << 20)
        for index in 0..<8 { try store.write("f\(index)", data: Data()) }
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            for _ in 0..<500 { try! store.append("f\(index)", data: Data([UInt8(index)])) }
        }
        for index in 0..<8 {
            XCTAssertEqual(try store.read("f\(index)"), Data(repeating: UInt8(index), count: 500))
        }
        XCTAssertEqual(store.totalBytes, 4000)
    }
}
