"""Section 11: many sessions — wrk's keep-alive HTTP requests through each path to one nginx, at two
concurrencies, with the relays' system calls (perf) and CPU per request per hop.

What it shows: a 1:1 relay pays one read and one write per message on each side; a multiplexer can
carry every session's frames in one link write and one link read per event-loop turn (issue 43).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from ..catalog import HOPS
from ..env import Env
from ..paths import render, start_paths
from ..procs import free_port, log, wait_port
from ..results import SessionsLevel, SessionsResult, SessionsRound
from ..rounds import rounds_over, with_relay_cpu
from ..summary import summarize_sessions

RESPONSE_BYTES = 1024
# System calls counted per relay process, grouped as the report shows them.
SYSCALL_GROUPS = {
    "reads": ["read", "readv", "recvfrom", "recvmsg"],
    "writes": ["write", "writev", "sendto", "sendmsg"],
    "epoll_waits": ["epoll_wait", "epoll_pwait", "epoll_pwait2"],
}
PERF_EVENTS = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{s}" for g in SYSCALL_GROUPS.values() for s in g]


def concurrencies(env: Env) -> list[int]:
    return [8, 32] if env.quick else [64, 512]


def start_http_server(env: Env):
    """nginx serving one file of RESPONSE_BYTES (not pinned, not a relay)."""
    d = os.path.join(env.workdir, "nginx-http")
    os.makedirs(os.path.join(d, "www"), exist_ok=True)
    with open(os.path.join(d, "www", "1k"), "wb") as f:
        f.write(b"x" * RESPONSE_BYTES)
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(render("nginx-http.conf", port=port, dir=d))
    p = env.procs.start("nginx-http", ["nginx", "-p", d, "-c", conf, "-e", os.path.join(d, "err.log")])
    wait_port(port)
    return port, p


def parse_wrk(text: str) -> tuple[int, float, int]:
    """(requests, requests per second, errors) from wrk's report."""
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m or not rps:
        raise RuntimeError(f"wrk printed no result: {text.strip()[-300:]}")
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors += int(non2xx.group(1)) if non2xx else 0
    return int(m.group(1)), float(rps.group(1)), errors


def parse_perf(text: str) -> dict[str, int]:
    """Event → count from `perf stat -x,` output (events perf could not count are left out)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 3 or not parts[0].strip().isdigit():
            continue
        counts[parts[2].strip()] = counts.get(parts[2].strip(), 0) + int(parts[0])
    return counts


def syscalls_per_request(counts: dict[str, int], requests: int, hops: int) -> dict[str, float]:
    """The counted system calls per request per hop: all of them, and by group."""
    if not counts or requests <= 0 or hops <= 0:
        return {}
    scale = 1.0 / requests / hops
    out = {"syscalls": counts.get("raw_syscalls:sys_enter", 0) * scale}
    for group, calls in SYSCALL_GROUPS.items():
        out[group] = sum(counts.get(f"syscalls:sys_enter_{c}", 0) for c in calls) * scale
    return out


class PerfCounter:
    """`perf stat` attached to the relay processes while a round runs; counts nothing (and says so once)
    where perf cannot attach (no perf, or perf_event_paranoid in a container)."""

    def __init__(self, env: Env, pids: list[int]):
        self.path = os.path.join(env.workdir, f"perf-{time.time_ns()}.csv")
        self.proc = None
        if not pids:
            return
        try:
            self.proc = subprocess.Popen(["perf", "stat", "-x,", "-o", self.path, "-e", ",".join(PERF_EVENTS), "-p",
                                          ",".join(str(p) for p in pids)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True)
            time.sleep(0.2)  # attached before the load starts
            if self.proc.poll() is not None:
                log(f"  perf stat could not attach: {self.proc.stderr.read().strip()[-200:]}")
                self.proc = None
        except FileNotFoundError:
            log("  perf is not installed: no system call counts")

    def stop(self) -> dict[str, int]:
        if self.proc is None:
            return {}
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return {}
        try:
            with open(self.path) as f:
                return parse_perf(f.read())
        except OSError:
            return {}


def wrk_once(env: Env, name: str, port: int, connections: int, seconds: int) -> SessionsRound:
    pids = [pid for _, pid in env.path_relays.get(name) or []]
    perf = PerfCounter(env, pids)
    try:
        p = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                            f"http://127.0.0.1:{port}/1k"], capture_output=True, text=True, timeout=seconds + 60)
    finally:
        counts = perf.stop()
    requests, per_second, errors = parse_wrk(p.stdout)
    if requests == 0:
        raise RuntimeError(f"no request completed: {p.stdout.strip()[-200:]} {p.stderr.strip()[-200:]}")
    time.sleep(1)  # let the sessions close before the next path
    return SessionsRound(requests=requests, per_second=per_second, errors=errors,
                         **syscalls_per_request(counts, requests, HOPS.get(name, 1)))


def run(env: Env, paths) -> SessionsResult:
    seconds = 1 if env.quick else env.args.seconds
    port, server = start_http_server(env)
    fronts, procs = start_paths(env, paths, port)
    levels: dict[str, SessionsLevel] = {}
    try:
        for c in concurrencies(env):
            res = rounds_over(env, paths, lambda n: with_relay_cpu(
                env, n, lambda: wrk_once(env, n, fronts[n], c, seconds), "requests"), env.rounds)
            levels[f"c{c}"] = SessionsLevel(raw=res, summary=summarize_sessions(res))
    finally:
        env.procs.stop(procs + [server])
    return SessionsResult(levels=levels, seconds_per_round=seconds, rounds=env.rounds,
                          response_bytes=RESPONSE_BYTES)
