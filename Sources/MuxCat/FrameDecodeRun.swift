import NIOCore
import Yamux

/// Something wrong with the input of `muxcat decode`: where, and what.
public struct DecodeProblem: Error, Hashable, Sendable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public var description: String { message }
}

/// `muxcat decode` as a value: feed it the input in chunks, get back the lines to print.
///
/// The input is a capture file when it starts with the capture magic (0x89 can never start a
/// yamux frame), and otherwise a raw byte stream of frames in one direction (e.g. what a
/// repeater sent, saved with `nc -l > file`). Lines come out as soon as each frame is whole;
/// only the first bytes of a payload are kept, so an input of any size decodes in constant memory.
public struct FrameDecodeRun: Sendable {
    private enum Input: Sendable {
        case undetermined
        case raw(RawFrames)
        case capture(CaptureReader)
    }

    private var input: Input = .undetermined
    /// Set after a problem that makes the rest of the input meaningless.
    private var stopped = false
    public private(set) var summary = TrafficSummary()
    public private(set) var problems: [DecodeProblem] = []

    public init() {}

    /// Whether anything malformed was found (the exit status is then 1).
    public var failed: Bool { !problems.isEmpty }

    /// Decodes more input; returns the lines it completes.
    public mutating func feed(_ bytes: ByteBuffer) -> [String] {
        guard !stopped, bytes.readableBytes > 0 else { return [] }
        var lines: [String] = []
        switch input {
        case .undetermined:
            if bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) == CaptureFormat.magic[0] {
                input = .capture(CaptureReader())
            } else {
                input = .raw(RawFrames(base: 0))
            }
            return feed(bytes)
        case .raw(var frames):
            frames.append(bytes)
            drain(&frames, into: &lines)
            input = .raw(frames)
        case .capture(var reader):
            reader.append(bytes)
            readRecords(&reader, into: &lines)
            input = .capture(reader)
        }
        return lines
    }

    /// End of input: reports a truncated frame or record; returns the last lines.
    public mutating func finish() -> [String] {
        guard !stopped else { return [] }
        var lines: [String] = []
        switch input {
        case .undetermined:
            break
        case .raw(let frames):
            if let problem = frames.truncation() { report(problem, into: &lines) }
        case .capture(let reader):
            do {
                try reader.finish()
            } catch let error as CaptureFormatError {
                report(DecodeProblem(offset: error.offset, message: error.description), into: &lines)
            } catch {
                report(DecodeProblem(offset: 0, message: "\(error)"), into: &lines)
            }
        }
        stopped = true
        return lines
    }

    private mutating func drain(_ frames: inout RawFrames, into lines: inout [String]) {
        while let result = frames.next() {
            switch result {
            case .success(let frame):
                summary.add(frame)
                lines.append(FrameLine.render(frame))
            case .failure(let problem):
                report(problem, into: &lines)
                stopped = true
                return
            }
        }
    }

    private mutating func readRecords(_ reader: inout CaptureReader, into lines: inout [String]) {
        while true {
            let item: CaptureReader.Item?
            do {
                item = try reader.next()
            } catch let error as CaptureFormatError {
                report(DecodeProblem(offset: error.offset, message: error.description), into: &lines)
                stopped = true
                return
            } catch {
                report(DecodeProblem(offset: 0, message: "\(error)"), into: &lines)
                stopped = true
                return
            }
            guard let item else { return }
            switch item {
            case .fileHeader(let role):
                lines.append("# muxcat capture written by \(role); \"in\" = received by it, \"out\" = sent by it")
            case .record(let record, let offset):
                decode(record, at: offset, into: &lines)
            }
        }
    }

    /// A record holds one whole frame, unless it is flagged unframed (the capturing muxcat could
    /// not frame those bytes); those are decoded as far as they go to say what was wrong.
    private mutating func decode(_ record: CaptureRecord, at offset: Int, into lines: inout [String]) {
        var frames = RawFrames(
            base: offset, timestamp: record.timestamp, link: record.link, direction: record.direction)
        frames.append(record.bytes)
        let context = "link \(record.link) \(record.direction)"
        var decoded = 0
        while let result = frames.next() {
            switch result {
            case .success(let frame):
                decoded += 1
                summary.add(frame)
                lines.append(FrameLine.render(frame))
            case .failure(var problem):
                problem.message += " (\(context))"
                report(problem, into: &lines)
                return
            }
        }
        if var problem = frames.truncation() {
            problem.message += " (\(context); the link closed mid-frame)"
            report(problem, into: &lines)
        } else if !record.unframed && decoded != 1 {
            report(
                DecodeProblem(
                    offset: offset,
                    message: "capture record at byte offset \(offset) holds \(decoded) frames instead of exactly one (\(context))"),
                into: &lines)
        }
    }

    private mutating func report(_ problem: DecodeProblem, into lines: inout [String]) {
        problems.append(problem)
        lines.append("ERROR: \(problem.message)")
    }
}

/// Decodes a raw frame stream that starts at byte offset `base` of the input, attaching the
/// capture context (time, link, direction) when there is one.
struct RawFrames: Sendable {
    private var decoder = YamuxFrameDecoder()
    private var current: DecodedFrame?
    private let base: Int
    private let timestamp: UInt64?
    private let link: UInt32?
    private let direction: CaptureDirection?

    init(base: Int, timestamp: UInt64? = nil, link: UInt32? = nil, direction: CaptureDirection? = nil) {
        self.base = base
        self.timestamp = timestamp
        self.link = link
        self.direction = direction
    }

    mutating func append(_ bytes: ByteBuffer) { decoder.append(bytes) }

    /// The next whole frame, a problem, or nil when more bytes are needed.
    mutating func next() -> Result<DecodedFrame, DecodeProblem>? {
        do {
            while let item = try decoder.next() {
                switch item {
                case .header(let header):
                    let frame = DecodedFrame(
                        header: header, offset: base + decoder.currentFrameOffset, timestamp: timestamp, link: link,
                        direction: direction)
                    if header.payloadLength == 0 { return .success(frame) }
                    current = frame
                case .payload(let bytes, let isLast):
                    let room = FrameLine.previewLength - current!.preview.count
                    if room > 0 { current!.preview += bytes.getBytes(at: bytes.readerIndex, length: min(room, bytes.readableBytes))! }
                    if isLast {
                        defer { current = nil }
                        return .success(current!)
                    }
                }
            }
            return nil
        } catch let error as YamuxError {
            return .failure(RawFrames.problem(error, offset: base + (error.offset ?? decoder.consumedBytes)))
        } catch {
            return .failure(DecodeProblem(offset: base + decoder.consumedBytes, message: "\(error)"))
        }
    }

    /// At end of input: the frame that was cut short, if any.
    func truncation() -> DecodeProblem? {
        guard decoder.isMidFrame else { return nil }
        if let current {
            let length = current.header.payloadLength
            let present = length - decoder.bytesMissing
            return DecodeProblem(
                offset: current.offset,
                message:
                    "truncated DATA payload in the frame at byte offset \(current.offset) (stream \(current.header.streamID)): \(present) of \(length) bytes before the end of input"
            )
        }
        let offset = base + decoder.consumedBytes
        let present = YamuxFrameHeader.size - decoder.bytesMissing
        return DecodeProblem(
            offset: offset,
            message: "truncated frame header at byte offset \(offset): \(present) of \(YamuxFrameHeader.size) bytes before the end of input"
        )
    }

    static func problem(_ error: YamuxError, offset: Int) -> DecodeProblem {
        let what: String
        switch error.kind {
        case .badVersion(let version):
            what = "bad version \(version) (yamux v0 frames start with 0)"
            if offset == 0 {
                return DecodeProblem(
                    offset: offset,
                    message:
                        "malformed frame at byte offset 0: \(what); the input is neither a muxcat capture (\\x89MUXCAP\\n) nor yamux frames"
                )
            }
        case .unknownFrameType(let type):
            what = "unknown frame type \(type) (expected 0 DATA, 1 WINDOW_UPDATE, 2 PING or 3 GO_AWAY)"
        case .dataFrameTooLarge(let length, let limit):
            what = "DATA length \(length) is more than any yamux peer accepts (\(limit))"
        default:
            what = "\(error)"
        }
        return DecodeProblem(offset: offset, message: "malformed frame at byte offset \(offset): \(what)")
    }
}
