"""One module per measurement; each has `run(env, paths)` returning its typed result."""
from __future__ import annotations

from ..catalog import endpoint_paths, hol_paths, sessions_paths
from . import connrate, endpoint, hol, latency, micro, nagle, rtt, scale, sessions, throughput, tls


def run(name: str, env, paths):
    """Runs measurement NAME on the generic PATHS (each measurement takes the ones it can use)."""
    if name == "latency":
        return latency.run(env, paths)
    if name == "nagle":
        return nagle.run(env, paths)
    if name == "throughput":
        return throughput.run(env, paths)
    if name == "connrate":
        return connrate.run(env, paths)
    if name == "tls":
        return tls.run(env, paths)
    if name == "rtt":
        return rtt.run(env)
    if name == "hol":
        return hol.run(env, hol_paths(paths))
    if name == "scale":
        return scale.run(env)
    if name == "micro":
        return micro.run(env)
    if name == "endpoint":
        return endpoint.run(env, endpoint_paths(paths, env.args.baseline_bin))
    if name == "sessions":
        return sessions.run(env, sessions_paths(paths))
    raise ValueError(f"unknown measurement {name!r}")
