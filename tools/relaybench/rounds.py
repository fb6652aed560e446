"""Alternating rounds over paths, and the relay CPU each round cost."""
from __future__ import annotations

from .env import Env
from .procs import cpu_by_relay, log, per_operation_us
from .results import Failure


def rounds_over(env: Env, names, fn, rounds: int) -> dict[str, list]:
    """Every path once per round, the order rotated each round, so drift from other load hits every path
    alike. A failed round is a `Failure` and does not end the run."""
    res: dict[str, list] = {n: [] for n in names}
    names = list(names)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            try:
                res[n].append(fn(n))
            except Exception as e:  # noqa: BLE001 — one failed round must not end the run
                log(f"  {n}: round {r + 1} failed: {e}")
                res[n].append(Failure(str(e)))
    return res


def relay_cpu_during(env: Env, name: str, fn):
    """Runs `fn`; returns its result and the CPU seconds each of the path's relay processes used meanwhile
    (None for a path without relays)."""
    relays = env.path_relays.get(name) or []
    before = cpu_by_relay(relays) if relays else None
    r = fn()
    if before is None:
        return r, None
    after = cpu_by_relay(relays)
    return r, {label: after[label] - before[label] for label in before if label in after}


def with_relay_cpu(env: Env, name: str, fn, operations: str):
    """Runs one round of `fn` and sets on its result `relay_cpu_us`: the CPU time the path's relay processes
    used during it, per operation (the result's field `operations`: round trips, connections) and, for a path
    of several relay processes, `relay_cpu_us_by_process`. A steadier measure than rates on a shared machine:
    it does not depend on who else had the CPU."""
    r, cpu = relay_cpu_during(env, name, fn)
    by = per_operation_us(cpu or {}, getattr(r, operations, 0))
    if by:
        r.relay_cpu_us = sum(by.values())
        if len(by) > 1:
            r.relay_cpu_us_by_process = by
    return r
