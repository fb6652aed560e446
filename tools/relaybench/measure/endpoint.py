"""Section 10: one relay hop, the repeater in its deployment shape. REPEATER_1HOP's yamux endpoint
answers itself (muxcat --echo, as runtime-manager does); NIO_1TO1 (the floor), the one-hop peers and
DIRECT sit in front of `benchkit echo`. (a) pinned ping-pong (as section 1), (b) connection rate (as
section 4); each part on a fresh set of processes, in alternating rounds."""
from __future__ import annotations

import json
import subprocess

from ..env import Env
from ..paths import start_paths
from ..procs import free_port, log, placed, wait_port
from ..results import EndpointParts, EndpointResult, PingPongResult, PingPongRound
from ..rounds import rounds_over, with_relay_cpu
from ..summary import summarize_pingpong
from . import connrate


def parse_pingpong(data: dict) -> PingPongRound:
    """`benchkit pingpong`'s JSON as a round (µs)."""
    return PingPongRound(p50=data["p50_us"], p99=data["p99_us"], p999=data["p999_us"], mean=data["mean_us"],
                         observations=data["count"])


def benchkit_pingpong(env: Env, port: int, seconds: float, warmup: float, cpus: str | None = "0",
                      size: int = 64) -> PingPongRound:
    cmd = placed([env.benchkit, "pingpong", "-target", f"127.0.0.1:{port}", "-size", str(size),
                  "-duration", str(seconds), "-warmup", str(warmup)], cpus)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + warmup + 60)
    if p.returncode != 0:
        raise RuntimeError((p.stderr.strip() or p.stdout.strip())[-300:] or f"benchkit pingpong exited {p.returncode}")
    return parse_pingpong(json.loads(p.stdout))


def latency_part(env: Env, paths) -> PingPongResult:
    # Pinned: benchkit pingpong, benchkit echo and every relay process on CPU 0 (threads inherit).
    seconds = 1 if env.quick else env.args.seconds
    warmup = 0.2 if env.quick else 0.5
    port = free_port()
    # -blocking: raw blocking syscalls, no netpoller (under SCHED_FIFO on one CPU the Go runtime's handoffs
    # cost ~90 µs a round trip; see tools/benchkit rawRead). benchkit pingpong does the same.
    srv = env.procs.start("echo-server-pinned", [env.benchkit, "echo", "-listen", f"127.0.0.1:{port}", "-blocking"],
                          "0")
    wait_port(port)
    fronts, procs = start_paths(env, paths, port, cpus="0")
    try:
        for n in ([] if env.quick else paths):  # warm-up connection per path, as section 1
            try:
                benchkit_pingpong(env, fronts[n], 1, 0)
            except Exception as e:  # noqa: BLE001
                log(f"  warm-up {n}: {e}")
        log("  pinned ping-pong (benchkit pingpong)")
        res = rounds_over(env, paths, lambda n: with_relay_cpu(
            env, n, lambda: benchkit_pingpong(env, fronts[n], seconds, warmup), "observations"), env.rounds)
    finally:
        env.procs.stop(procs + [srv])
    return PingPongResult(raw=res, summary=summarize_pingpong(res), seconds_per_round=seconds, rounds=env.rounds,
                          warmup_seconds=warmup, warmup_connection=not env.quick, size=64)


def run(env: Env, paths) -> EndpointResult:
    lat = latency_part(env, paths)
    log("  connection rate (benchkit connrate)")
    # (b) not pinned (section 4's settings), on a fresh set of the same paths.
    cr = connrate.run_on(env, paths)
    return EndpointResult(paths=list(paths), parts=EndpointParts(latency=lat, connrate=cr),
                          baseline_bin=env.args.baseline_bin, bin=env.bin)
