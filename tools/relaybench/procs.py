"""Processes: starting and stopping them (by pid, never by name), where they run (pinning and
SCHED_FIFO), free ports, and their CPU time from /proc."""
from __future__ import annotations

import os
import socket
import subprocess
import time

# SCHED_FIFO priority of pinned (latency) runs, 0: off; set from --rt-priority.
RT_PRIORITY = 10


def set_rt_priority(priority: int) -> None:
    global RT_PRIORITY
    RT_PRIORITY = priority


def placed(cmd: list[str], cpus: str | None, rt_priority: int | None = None) -> list[str]:
    """Pins a command to CPUS with taskset; a pinned (latency) run also gets SCHED_FIFO, so builds
    running beside the bench on this shared VM cannot preempt it (the same for every path).
    cpus "nice": unpinned, but ahead of other users' builds; None or "": as it is."""
    if cpus == "nice":
        return ["nice", "-n", "-10"] + cmd
    if not cpus:
        return cmd
    priority = RT_PRIORITY if rt_priority is None else rt_priority
    if priority > 0:
        cmd = ["chrt", "-f", str(priority)] + cmd
    return ["taskset", "-c", cpus] + cmd


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def out(cmd, **kw) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, **kw).stdout.strip()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Procs:
    """Every process the bench starts; stopped by pid (never by name)."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.all: list[subprocess.Popen] = []
        self.n = 0

    def start(self, name: str, cmd: list[str], cpus: str | None = None, stdin=subprocess.DEVNULL) -> subprocess.Popen:
        self.n += 1
        cmd = placed(cmd, cpus)
        logf = open(os.path.join(self.workdir, f"{self.n:03d}-{name}.log"), "w")
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=stdin)
        p.bench_name = name  # type: ignore[attr-defined]
        p.bench_log = logf.name  # type: ignore[attr-defined]
        self.all.append(p)
        return p

    def stop(self, procs) -> None:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.time() + 5
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for p in procs:
            if p in self.all:
                self.all.remove(p)

    def stop_all(self) -> None:
        self.stop(list(self.all))


# ----------------------------------------------------------------------------- CPU time from /proc

CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[int, int]:
    """(ppid, utime + stime + cutime + cstime in clock ticks) from the text of /proc/PID/stat. The
    command name (field 2) may hold spaces and parentheses, so the fields are counted from its last ')'."""
    rest = text[text.rindex(")") + 2:].split()
    # rest[1] is ppid (field 4); rest[11:15] are utime, stime, cutime, cstime (fields 14-17).
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def tree_ticks(stats: dict[int, tuple[int, int]], roots) -> int:
    """The CPU ticks of the processes `roots` and of all their descendants in `stats` (pid → (ppid, ticks)),
    each counted once."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, stack, seen = 0, list(roots), set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        if pid in stats:
            total += stats[pid][1]
            stack += children.get(pid, [])
    return total


def read_proc_stats() -> dict[int, tuple[int, int]]:
    stats = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stats[int(d)] = parse_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue
    return stats


def tree_cpu_seconds(pids) -> float:
    """User + system CPU time of these processes, their live descendants (nginx workers) and their reaped
    children (socat's per-connection forks), from /proc: no perf needed, 10 ms resolution."""
    return tree_ticks(read_proc_stats(), pids) / CLK_TCK


def threads_cpu_seconds(pid: int) -> float:
    """CPU time of one process's live threads, from /proc/PID/task/*/schedstat (nanoseconds, where the
    clock ticks of /proc/PID/stat have 10 ms: a per-session cost of microseconds shows). For a process
    whose threads live as long as it does (an event loop group, a thread pool)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def cpu_by_relay(relays: list[tuple[str, int]]) -> dict[str, float]:
    """CPU seconds of each relay process's tree now, by label (one read of /proc for all)."""
    stats = read_proc_stats()
    return {label: tree_ticks(stats, [pid]) / CLK_TCK for label, pid in relays}


def per_operation_us(cpu_seconds: dict[str, float], operations: float) -> dict[str, float]:
    """CPU µs per operation of each relay process, from its CPU seconds over the operations."""
    if not operations:
        return {}
    return {label: seconds * 1e6 / operations for label, seconds in cpu_seconds.items()}
