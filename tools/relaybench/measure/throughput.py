"""Section 3: iperf3 throughput, 1 and 8 streams, both directions, with the relays' CPU per GiB."""
from __future__ import annotations

import json
import subprocess
import time

from ..env import Env
from ..paths import start_paths
from ..procs import free_port, log, wait_port
from ..results import GbpsRound, ThroughputConfig, ThroughputResult
from ..rounds import relay_cpu_during, rounds_over
from ..summary import summarize_throughput

GiB = 1024 ** 3


def parse_iperf3(data: dict) -> tuple[GbpsRound, int]:
    """iperf3 -J's result: `end.sum_received.bits_per_second` as Gbit/s, and the bytes received."""
    received = data["end"]["sum_received"]
    return GbpsRound(gbps=received["bits_per_second"] / 1e9), int(received.get("bytes", 0))


def cpu_ms_per_gib(cpu_seconds: dict[str, float] | None, received_bytes: int) -> float | None:
    """The relays' CPU milliseconds per GiB received (None when not measured or nothing arrived)."""
    if cpu_seconds is None or received_bytes <= 0:
        return None
    return sum(cpu_seconds.values()) * 1e3 / (received_bytes / GiB)


def iperf3(port: int, seconds: float, streams: int, reverse: bool) -> tuple[GbpsRound, int]:
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-P", str(streams), "-J"]
    if reverse:
        cmd.append("-R")
    for attempt in range(10):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        try:
            data = json.loads(p.stdout)
        except json.JSONDecodeError:
            raise RuntimeError(f"iperf3 printed no JSON: {p.stderr.strip()[:200]}")
        err = data.get("error", "")
        if err and ("busy" in err or attempt < 2) and attempt < 9:
            # "busy": the previous test's connections are still closing through a relay; other errors
            # (a control connection reset while a relay tears down the last test) get two more tries.
            time.sleep(1)
            continue
        break
    if "error" in data:
        raise RuntimeError(f"iperf3: {data['error']}")
    return parse_iperf3(data)


def config_name(streams: int, reverse: bool) -> str:
    return f"{streams} stream{'s' if streams > 1 else ''}, {'server→client (-R)' if reverse else 'client→server'}"


def run(env: Env, paths) -> ThroughputResult:
    seconds = 1 if env.quick else env.args.seconds
    port = free_port()
    srv = env.procs.start("iperf3-server", ["iperf3", "-s", "-p", str(port)])
    wait_port(port)
    time.sleep(0.2)
    fronts, procs = start_paths(env, paths, port)
    results = {}
    try:
        configs = [(1, False), (2, True)] if env.quick else [(1, False), (1, True), (8, False), (8, True)]
        for streams, rev in configs:
            key = config_name(streams, rev)
            log(f"  iperf3 {key}")

            def one(n, streams=streams, rev=rev):
                (r, received), cpu = relay_cpu_during(env, n, lambda: iperf3(fronts[n], seconds, streams, rev))
                r.relay_cpu_ms_per_gib = cpu_ms_per_gib(cpu, received)
                return r

            res = rounds_over(env, paths, one, env.rounds)
            results[key] = ThroughputConfig(raw=res, summary=summarize_throughput(res))
            time.sleep(0.5)
    finally:
        env.procs.stop(procs + [srv])
    return ThroughputResult(configs=results, seconds_per_round=seconds, rounds=env.rounds)
