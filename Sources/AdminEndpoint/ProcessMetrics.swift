#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process metrics every official Prometheus client library exports (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
/// `process_max_fds`, `process_start_time_seconds`), read from /proc at each scrape.
struct ProcessMetrics: Equatable {
    var cpuSeconds: Double
    var residentBytes: Int
    var virtualBytes: Int
    var openDescriptors: Int
    var maximumDescriptors: Int
    var startTimeSeconds: Double

    /// From this process's /proc/self files; nil where /proc cannot be read.
    static func read() -> ProcessMetrics? {
        guard let stat = readFile("/proc/self/stat"), let boot = bootTimeSeconds() else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = sysconf(Int32(_SC_PAGESIZE))
        guard let parsed = parse(stat: stat, ticksPerSecond: ticks, pageSize: page, bootTime: boot) else { return nil }
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessMetrics(
            cpuSeconds: parsed.cpuSeconds, residentBytes: parsed.residentBytes, virtualBytes: parsed.virtualBytes,
            openDescriptors: countOpenDescriptors(), maximumDescriptors: Int(limit.rlim_cur), startTimeSeconds: parsed.startTime)
    }

    /// Fields of /proc/PID/stat (proc(5)), counted after the command name's closing parenthesis
    /// (the name may hold spaces and parentheses): utime 14, stime 15, starttime 22, vsize 23, rss 24.
    static func parse(stat: String, ticksPerSecond: Double, pageSize: Int, bootTime: Double)
        -> (cpuSeconds: Double, residentBytes: Int, virtualBytes: Int, startTime: Double)?
    {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        // After ")": field 3 (state) is the first.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Double? { number - 3 < fields.count ? Double(fields[number - 3]) : nil }
        guard let user = field(14), let system = field(15), let start = field(22), let virtual = field(23), let resident = field(24)
        else { return nil }
        return ((user + system) / ticksPerSecond, Int(resident) * pageSize, Int(virtual), bootTime + start / ticksPerSecond)
    }

    func exposition() -> [UInt8] {
        let families: [(String, String, String, String)] = [
            ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", "\(cpuSeconds)"),
            ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", "\(residentBytes)"),
            ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", "\(virtualBytes)"),
            ("process_open_fds", "gauge", "Number of open file descriptors.", "\(openDescriptors)"),
            ("process_max_fds", "gauge", "Maximum number of open file descriptors.", "\(maximumDescriptors)"),
            ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", "\(startTimeSeconds)"),
        ]
        var text = ""
        for (name, type, help, value) in families {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        return Array(text.utf8)
    }

    private static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func bootTimeSeconds() -> Double? {
        guard let stat = readFile("/proc/stat") else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).split(separator: " ").first ?? "")
        }
        return nil
    }

    private static func countOpenDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        // The directory's own descriptor is counted too: it is not one of the process's.
        return max(0, count - 1)
    }
}
