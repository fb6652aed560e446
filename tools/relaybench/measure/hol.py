"""Section 7: head-of-line — a ping-pong alone, then beside a bulk session on the same path."""
from __future__ import annotations

import re
import subprocess
import time

from ..env import Env
from ..paths import start_paths
from ..results import HOLResult, HOLRound
from ..rounds import rounds_over
from ..summary import summarize_hol
from .latency import sockperf_pingpong, start_sockperf_server


def run(env: Env, paths) -> HOLResult:
    seconds = 1 if env.quick else env.args.seconds
    sport, sp = start_sockperf_server(env, "nice")
    # --threads 1: one event loop, so one link carries both sessions.
    fronts, procs = start_paths(env, paths, sport, cpus="nice", repeater_threads=1)

    def one(n) -> HOLRound:
        alone = sockperf_pingpong(fronts[n], seconds, cpus="nice")
        bulk = subprocess.Popen(["nice", "-n", "-10", "sockperf", "throughput", "--tcp", "-i", "127.0.0.1", "-p",
                                 str(fronts[n]), "-m", "65000", "-t", str(seconds + 2)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        time.sleep(0.8)
        try:
            beside = sockperf_pingpong(fronts[n], seconds, cpus="nice")
        finally:
            text = bulk.communicate(timeout=seconds + 60)[0]
        m = re.search(r"BandWidth is ([\d.]+) MBps", text)
        return HOLRound(alone_p50=alone.p50, alone_p99=alone.p99, p50=beside.p50, p99=beside.p99, p999=beside.p999,
                        bulk_MBps=float(m.group(1)) if m else None)

    try:
        res = rounds_over(env, paths, one, env.rounds)
    finally:
        env.procs.stop(procs + [sp])
    return HOLResult(raw=res, summary=summarize_hol(res), seconds_per_round=seconds, rounds=env.rounds)
