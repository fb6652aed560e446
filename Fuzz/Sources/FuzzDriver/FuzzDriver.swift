import Foundation

/// What every fuzzer of this package shares: handing control to libFuzzer (`-D FUZZING`), or,
/// without libFuzzer, replaying files (a corpus, or crash inputs kept as regression tests).
/// Each fuzzer only defines its `fuzzOne` and the two entry points that must carry its name.

/// One fuzz input, as libFuzzer calls it.
public typealias FuzzInput = @convention(c) (UnsafePointer<UInt8>, Int) -> Int32

#if FUZZING
// swift-format-ignore: AlwaysUseLowerCamelCase
// libFuzzer's C name.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: FuzzInput
) -> Int32

/// Runs libFuzzer's driver with the process's arguments; call it from `<Target>_main`
/// (SwiftPM's name for an executable's entry point).
public func runFuzzerDriver(
    _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ input: FuzzInput
) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, input)
}
#endif

/// Feeds every file named on the command line (directories: every file in them, sorted) to
/// `fuzzOne` and says how many ran; a crash is the failure.
public func replayFiles(_ fuzzOne: (UnsafeRawBufferPointer) -> Void) throws {
    var count = 0
    for path in CommandLine.arguments.dropFirst() {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        let files =
            isDirectory.boolValue
            ? (try FileManager.default.contentsOfDirectory(atPath: path)).sorted().map { path + "/" + $0 } : [path]
        for file in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: file))
            data.withUnsafeBytes { fuzzOne($0) }
            count += 1
        }
    }
    print("replayed \(count) inputs without a crash")
}
