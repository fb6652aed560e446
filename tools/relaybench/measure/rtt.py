"""Section 6: put through a user-space delay relay (benchkit delay) at several round-trip times."""
from __future__ import annotations

from ..env import Env
from ..procs import free_port, log, wait_port
from ..results import DelayedPutRound, RTTPoint, RTTResult
from ..rounds import rounds_over
from ..summary import summarize_delayed_puts
from .tls import TLSSetup, make_file


def run(env: Env, paths=None) -> RTTResult:
    rtts = [0, 10] if env.quick else [0, 1, 10, 50]
    mib = 1 if env.quick else 32
    legacy_mib_slow = 1 if env.quick else 4  # the lock-step relay needs ~2,000 round trips per 32 MiB
    setup = TLSSetup(env)
    results = {}
    try:
        tls_paths = setup.paths()
        for rtt in rtts:
            delays, procs = {}, []
            for n in tls_paths:
                port = free_port()
                procs.append(env.procs.start(f"delay-{n}-{rtt}", [
                    env.benchkit, "delay", "-listen", f"127.0.0.1:{port}", "-target", f"127.0.0.1:{setup.ports[n]}",
                    "-delay-ms", str(rtt / 2)]))
                wait_port(port)
                delays[n] = port

            def one(n, rtt=rtt, delays=delays) -> DelayedPutRound:
                size = legacy_mib_slow if (n == "LEGACY_HTTP" and rtt >= 10) else mib
                src, _ = make_file(env, size)
                dt = setup.client(n, delays[n], "put", src, f"bench/rtt-{n}.bin")
                return DelayedPutRound(put_s=dt, put_mibps=size / dt, mib=size)

            log(f"  RTT {rtt} ms")
            res = rounds_over(env, tls_paths, one, 1 if env.quick else 2)
            env.procs.stop(procs)
            results[f"{rtt}"] = RTTPoint(raw=res, summary=summarize_delayed_puts(res))
    finally:
        setup.stop()
    return RTTResult(rtts=results, mib=mib, legacy_mib_at_high_rtt=legacy_mib_slow, paths=tls_paths)
