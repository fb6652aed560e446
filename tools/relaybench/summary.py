"""Summaries over rounds (pure functions: medians per path, failures kept with their reason)."""
from __future__ import annotations

import statistics

from .results import (ConnRateSummary, DelayedPutSummary, Failure, HOLSummary, LatencySummary, SessionCostSummary,
                      SessionsSummary, ThroughputSummary, TransferSummary)


def median(values) -> float | None:
    """The median of the values that are not None; None if there are none."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ok(rounds: list) -> list:
    return [r for r in rounds if not isinstance(r, Failure)]


def _failure(rounds: list) -> Failure:
    """A path without a number: the last round's reason."""
    return Failure(rounds[-1].error if rounds and isinstance(rounds[-1], Failure) else "not run")


def median_by_process(rounds: list) -> dict[str, float] | None:
    """Per relay process, the median of its CPU per operation over the rounds that measured it."""
    labels: list[str] = []
    for r in rounds:
        for label in (r.relay_cpu_us_by_process or {}):
            if label not in labels:
                labels.append(label)
    if not labels:
        return None
    return {label: median([(r.relay_cpu_us_by_process or {}).get(label) for r in rounds]) for label in labels}


def summarize_pingpong(raw: dict[str, list]) -> dict[str, LatencySummary | Failure]:
    """Per path: the median of each percentile over the good rounds, their observations, the relay CPU."""
    summary: dict[str, LatencySummary | Failure] = {}
    for n, rounds in raw.items():
        ok = _ok(rounds)
        if not ok:
            summary[n] = _failure(rounds)
            continue
        summary[n] = LatencySummary(
            p50=median(r.p50 for r in ok), p99=median(r.p99 for r in ok), p999=median(r.p999 for r in ok),
            rounds=len(ok), observations=sum(r.observations for r in ok),
            relay_cpu_us=median(r.relay_cpu_us for r in ok), relay_cpu_us_by_process=median_by_process(ok),
            mean=median(r.mean for r in ok))
    return summary


def summarize_connrate(raw: dict[str, list]) -> dict[str, ConnRateSummary | Failure]:
    summary: dict[str, ConnRateSummary | Failure] = {}
    for n, rounds in raw.items():
        ok = _ok(rounds)
        if not ok:
            summary[n] = _failure(rounds)
            continue
        summary[n] = ConnRateSummary(per_second=median(r.per_second for r in ok), failed=sum(r.failed for r in ok),
                                     relay_cpu_us=median(r.relay_cpu_us for r in ok),
                                     relay_cpu_us_by_process=median_by_process(ok))
    return summary


def summarize_throughput(raw: dict[str, list]) -> dict[str, ThroughputSummary | Failure]:
    summary: dict[str, ThroughputSummary | Failure] = {}
    for n, rounds in raw.items():
        ok = _ok(rounds)
        summary[n] = (ThroughputSummary(gbps=median(r.gbps for r in ok),
                                        relay_cpu_ms_per_gib=median(r.relay_cpu_ms_per_gib for r in ok))
                      if ok else _failure(rounds))
    return summary


def summarize_transfers(raw: dict[str, list]) -> dict[str, TransferSummary | Failure]:
    summary: dict[str, TransferSummary | Failure] = {}
    for n, rounds in raw.items():
        ok = _ok(rounds)
        summary[n] = (TransferSummary(put_mibps=median(r.put_mibps for r in ok), get_mibps=median(r.get_mibps for r in ok),
                                      put_s=median(r.put_s for r in ok), get_s=median(r.get_s for r in ok),
                                      endpoint_cpu_s=median(r.endpoint_cpu_s for r in ok))
                      if ok else _failure(rounds))
    return summary


def summarize_session_costs(raw: dict[str, list]) -> dict[str, SessionCostSummary | Failure]:
    """Per path: the median over the good rounds of wall time and runtime-manager CPU per session."""
    summary: dict[str, SessionCostSummary | Failure] = {}
    for n, rounds in raw.items():
        ok = _ok(rounds)
        summary[n] = (SessionCostSummary(
            sessions=ok[0].sessions,
            wall_ms_per_session=median(r.wall_s * 1e3 / r.sessions for r in ok),
            endpoint_cpu_us_per_session=median(r.endpoint_cpu_s * 1e6 / r.sessions for r in ok))
            if ok else _failure(rounds))
    return summary


def summarize_delayed_puts(raw: dict[str, list]) -> dict[str, DelayedPutSummary | Failure]:
    summary: dict[str, DelayedPutSummary | Failure] = {}
    for n, rounds in raw.items():
        ok = _ok(rounds)
        summary[n] = (DelayedPutSummary(put_mibps=median(r.put_mibps for r in ok), mib=ok[0].mib)
                      if ok else _failure(rounds))
    return summary


def summarize_hol(raw: dict[str, list]) -> dict[str, HOLSummary | Failure]:
    summary: dict[str, HOLSummary | Failure] = {}
    for n, rounds in raw.items():
        ok = _ok(rounds)
        summary[n] = (HOLSummary(**{k: median(getattr(r, k) for r in ok)
                                    for k in ("alone_p50", "alone_p99", "p50", "p99", "p999", "bulk_MBps")})
                      if ok else _failure(rounds))
    return summary


def summarize_sessions(raw: dict[str, list]) -> dict[str, SessionsSummary | Failure]:
    summary: dict[str, SessionsSummary | Failure] = {}
    for n, rounds in raw.items():
        ok = _ok(rounds)
        summary[n] = (SessionsSummary(errors=sum(r.errors for r in ok),
                                      **{k: median(getattr(r, k) for r in ok)
                                         for k in ("per_second", "syscalls", "reads", "writes", "epoll_waits",
                                                   "relay_cpu_us")})
                      if ok else _failure(rounds))
    return summary


def failed_paths(name: str, result) -> list[str]:
    """"measurement/path" for every path of a result that produced no number (the smoke run fails on them)."""
    failures = []
    for part in result.summaries():
        for n, v in (part or {}).items():
            if isinstance(v, Failure):
                failures.append(f"{name}/{n}")
    return failures
