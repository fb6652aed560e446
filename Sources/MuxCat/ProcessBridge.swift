import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process (`/bin/sh -c COMMAND`) whose stdin and stdout are one NIO pipe channel, for
/// `muxcat listen --exec` (like `nc -e` or socat's `EXEC:`).
///
/// Spawned with `posix_spawn` rather than Foundation's `Process`: the pipe ends must be close-on-
/// exec (so one child never holds another child's stdin open, which would hide its EOF), the
/// child must get default signal handling back (muxcat ignores SIGINT/SIGTERM itself, and
/// ignored signals survive exec), and the descriptors go straight to NIO without a copy.
public struct ProcessBridge: Sendable {
    public let pid: pid_t
    /// Reads the child's stdout, writes its stdin. `close(mode: .output)` gives the child EOF.
    public let channel: Channel

    /// Spawns `command` with the given extra environment and wraps its stdin/stdout in a pipe
    /// channel on `eventLoop`; `initializer` runs on the channel before it reads.
    public static func spawn(
        command: String, environment extra: [String: String], eventLoop: EventLoop,
        initializer: @escaping @Sendable (Channel) -> EventLoopFuture<Void>
    ) -> EventLoopFuture<ProcessBridge> {
        let spawned: (pid: pid_t, input: CInt, output: CInt)
        do {
            spawned = try spawnShell(command, extraEnvironment: extra)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        return NIOPipeBootstrap(group: eventLoop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer(initializer)
            .takingOwnershipOfDescriptors(input: spawned.output, output: spawned.input)
            .map { ProcessBridge(pid: spawned.pid, channel: $0) }
            .flatMapErrorThrowing { error in
                close(spawned.input)
                close(spawned.output)
                kill(spawned.pid, SIGKILL)
                ProcessBridge.reap(spawned.pid, on: eventLoop, graceUntilTerminate: .zero)
                throw error
            }
    }

    /// Collects the child's exit status once it exits, so no zombie is left. A child still
    /// running `graceUntilTerminate` after its stream ended gets SIGTERM, then SIGKILL: a stream
    /// that is gone must not leave its process behind.
    public static func reap(_ pid: pid_t, on eventLoop: EventLoop, graceUntilTerminate: TimeAmount = .seconds(2)) {
        let started = NIODeadline.now()
        var terminated = false
        func attempt() {
            var status: CInt = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid || (result < 0 && errno == ECHILD) { return }
            let waited = NIODeadline.now() - started
            if waited > graceUntilTerminate + .seconds(3) {
                kill(pid, SIGKILL)
            } else if waited > graceUntilTerminate && !terminated {
                terminated = true
                kill(pid, SIGTERM)
            }
            eventLoop.scheduleTask(in: .milliseconds(50)) { attempt() }
        }
        eventLoop.execute { attempt() }
    }

    /// The command could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        public var command: String
        public var call: String
        public var code: CInt
        public var description: String {
            "cannot run '\(command)': \(call) failed: \(String(cString: strerror(code)))"
        }
    }

    /// Returns the pid, the write end of the child's stdin and the read end of its stdout.
    private static func spawnShell(
        _ command: String, extraEnvironment: [String: String]
    ) throws -> (pid: pid_t, input: CInt, output: CInt) {
        // pipe2(O_CLOEXEC) is not visible from Swift's Glibc module; pipe + FD_CLOEXEC under a
        // lock held across the spawn means no other spawn of ours can inherit these ends.
        spawnLock.lock()
        defer { spawnLock.unlock() }
        var stdinPipe: [CInt] = [-1, -1]
        var stdoutPipe: [CInt] = [-1, -1]
        guard pipe(&stdinPipe) == 0 else { throw SpawnError(command: command, call: "pipe", code: errno) }
        guard pipe(&stdoutPipe) == 0 else {
            let code = errno
            stdinPipe.forEach { close($0) }
            throw SpawnError(command: command, call: "pipe", code: code)
        }
        for descriptor in stdinPipe + stdoutPipe { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the copies, so exactly these two survive into the child.
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGPIPE, SIGCHLD] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var noMask = sigset_t()
        sigemptyset(&noMask)
        posix_spawnattr_setsigmask(&attributes, &noMask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var environment: [String] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            let name = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if extraEnvironment[name] == nil { environment.append(text) }
            index += 1
        }
        for (name, value) in extraEnvironment.sorted(by: { $0.key < $1.key }) { environment.append("\(name)=\(value)") }

        let arguments = ["/bin/sh", "-c", command]
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, envp)
        // The child's ends belong to the child now.
        close(stdinPipe[0])
        close(stdoutPipe[1])
        guard result == 0 else {
            close(stdinPipe[1])
            close(stdoutPipe[0])
            throw SpawnError(command: command, call: "posix_spawn", code: result)
        }
        return (pid, stdinPipe[1], stdoutPipe[0])
    }
}

private let spawnLock = NIOLock()
