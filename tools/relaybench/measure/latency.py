"""Sections 1 and 2: pinned ping-pong with sockperf (64 B; -b 2 for the Nagle trap)."""
from __future__ import annotations

import os
import re
import subprocess

from ..env import Env
from ..paths import start_paths
from ..procs import log, placed, wait_port, free_port
from ..results import PingPongResult, PingPongRound
from ..rounds import rounds_over, with_relay_cpu
from ..summary import summarize_pingpong

SOCKPERF_PCT = re.compile(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)")


def parse_sockperf(text: str) -> PingPongRound:
    """sockperf ping-pong's output as a round. sockperf exits 0 even when it received nothing, so that is
    read from its output (and raised)."""
    pct = {float(a): float(b) for a, b in SOCKPERF_PCT.findall(text)}
    m = re.search(r"Total (\d+) observations", text)
    obs = int(m.group(1)) if m else 0
    if "No messages were received" in text or obs == 0 or 50.0 not in pct:
        raise RuntimeError("sockperf received nothing: " + " | ".join(text.strip().splitlines()[-3:]))
    return PingPongRound(p50=pct[50.0], p99=pct[99.0], p999=pct[99.9], observations=obs)


def sockperf_pingpong(port: int, seconds: float, burst: int = 1, cpus: str | None = "0", msg: int = 64) -> PingPongRound:
    cmd = ["sockperf", "ping-pong", "--tcp", "--full-rtt", "-i", "127.0.0.1", "-p", str(port), "-m", str(msg),
           "-t", str(seconds)]
    if burst > 1:
        cmd += ["-b", str(burst)]
    p = subprocess.run(placed(cmd, cpus), capture_output=True, text=True, timeout=seconds + 60)
    return parse_sockperf(p.stdout + p.stderr)


def start_sockperf_server(env: Env, cpus: str | None):
    # A feed file with -F epoll: the default server mode blocks in recvfrom() on one socket at a time
    # and never answers a second client (the head-of-line test has two).
    port = free_port()
    feed = os.path.join(env.workdir, f"sockperf-{port}.feed")
    with open(feed, "w") as f:
        f.write(f"T:127.0.0.1:{port}\n")
    p = env.procs.start("sockperf-server", ["sockperf", "server", "-f", feed, "-F", "epoll"], cpus)
    wait_port(port)
    return port, p


def run(env: Env, paths, burst: int = 1) -> PingPongResult:
    seconds = 1 if env.quick else env.args.seconds
    # Pinned: sockperf client, sockperf server and every relay process on CPU 0 (threads inherit).
    sport, sp = start_sockperf_server(env, "0")
    fronts, procs = start_paths(env, paths, sport, cpus="0")
    try:
        for n in ([] if env.quick else paths):  # warm-up (first connection, caches and page faults)
            try:
                sockperf_pingpong(fronts[n], 1, burst)
            except Exception as e:  # noqa: BLE001
                log(f"  warm-up {n}: {e}")
        res = rounds_over(env, paths, lambda n: with_relay_cpu(
            env, n, lambda: sockperf_pingpong(fronts[n], seconds, burst), "observations"), env.rounds)
    finally:
        env.procs.stop(procs + [sp])
    return PingPongResult(raw=res, summary=summarize_pingpong(res), seconds_per_round=seconds, rounds=env.rounds,
                          burst=burst)
