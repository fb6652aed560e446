"""Section 4: new connections per second (benchkit connrate), one 64-byte exchange each."""
from __future__ import annotations

import json
import subprocess
import time

from ..env import Env
from ..paths import start_paths
from ..procs import free_port, wait_port
from ..results import ConnRateResult, ConnRateRound, record
from ..rounds import rounds_over, with_relay_cpu
from ..summary import summarize_connrate


def connrate_seconds(env: Env) -> int:
    return 1 if env.quick else max(2, env.args.seconds // 2)


def connrate_once(env: Env, port: int, seconds: float) -> ConnRateRound:
    p = subprocess.run([env.benchkit, "connrate", "-target", f"127.0.0.1:{port}", "-duration", str(seconds),
                        "-c", str(env.args.conn_concurrency)], capture_output=True, text=True, timeout=seconds + 60)
    r = record(ConnRateRound, json.loads(p.stdout))
    if r.connections == 0:
        raise RuntimeError(f"no connection completed: {r.first_error}")
    time.sleep(1)  # let TIME_WAIT sockets and relay state settle between paths
    return r


def run_on(env: Env, paths, label: str = "echo-server") -> ConnRateResult:
    """Every path in front of one `benchkit echo` (not pinned), in alternating rounds."""
    seconds = connrate_seconds(env)
    port = free_port()
    srv = env.procs.start(label, [env.benchkit, "echo", "-listen", f"127.0.0.1:{port}"])
    wait_port(port)
    fronts, procs = start_paths(env, paths, port)
    try:
        res = rounds_over(env, paths, lambda n: with_relay_cpu(
            env, n, lambda: connrate_once(env, fronts[n], seconds), "connections"), env.rounds)
    finally:
        env.procs.stop(procs + [srv])
    return ConnRateResult(raw=res, summary=summarize_connrate(res), seconds_per_round=seconds, rounds=env.rounds,
                          concurrency=env.args.conn_concurrency)


def run(env: Env, paths) -> ConnRateResult:
    return run_on(env, paths)
