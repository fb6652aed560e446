"""Numbers as report text: formatting, ratios, the best peer, the NIO floor, and the tables that
sections 1–4 and 10 share. Pure: they take summaries and return lines."""
from __future__ import annotations

from dataclasses import dataclass

from .catalog import FLOORS, HOPS, PEERS, floor_for
from .results import Failure


def fmt(v, digits: int = 1) -> str:
    """A number with thousands separators and DIGITS decimals; "—" for None; text as it is."""
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return f"{v:,.{digits}f}"


def ratio(a, b, digits: int = 2) -> str:
    """a ÷ b as "1.23×"; "—" when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.{digits}f}×"


def best_peer(values: dict[str, float | None], lower_is_better: bool, peers=PEERS) -> tuple[float | None, str | None]:
    """The best value among the peers (the 1:1 relays a user would pick instead) and whose it is."""
    vals = [(values[p], p) for p in peers if values.get(p) is not None]
    if not vals:
        return None, None
    return (min if lower_is_better else max)(vals)


def ok(summary: dict) -> dict:
    """The paths of a summary that produced numbers."""
    return {n: v for n, v in summary.items() if not isinstance(v, Failure)}


def column(summary: dict, key: str) -> dict[str, float | None]:
    """One field of every path that produced numbers."""
    return {n: getattr(v, key, None) for n, v in ok(summary).items()}


def floor_ratio(values: dict[str, float | None], path: str) -> str:
    """PATH's value ÷ the NIO floor's with as many hops; "floor" on the floor's own row."""
    floor = floor_for(path)
    if floor is None:
        return "—"
    if floor == path:
        return "floor"
    return ratio(values.get(path), values.get(floor))


@dataclass
class Added:
    """Latency a path adds over DIRECT, µs."""
    p50: float | None
    p99: float | None


def added_over_direct(summary: dict) -> dict[str, Added]:
    d = summary.get("DIRECT")
    d = None if isinstance(d, Failure) else d

    def minus(v, key):
        a, b = getattr(v, key), (getattr(d, key) if d else None)
        return a - b if a is not None and b is not None else None

    return {n: Added(minus(v, "p50"), minus(v, "p99")) for n, v in ok(summary).items()}


def failed_row(n: str, error: str, columns: int) -> str:
    """A row of COLUMNS cells for a path without numbers: its name, hops, and why."""
    return f"| {n} | {HOPS.get(n, '?')} | failed: {str(error)[:80]} |" + "|" * (columns - 3)


def latency_table(summary: dict) -> tuple[list[str], dict[str, Added], float | None, float | None]:
    """Sections 1, 2 and 10: one row per path. Returns the lines, what each path adds over DIRECT, and the
    best peer's added p50 and p99."""
    lines = [
        "| path | hops | p50 | p99 | p99.9 | added p50 | added p99 | p50 ÷ DIRECT | p99 ÷ DIRECT | added p50 ÷ best peer's "
        "| added p99 ÷ best peer's | relay CPU µs per round trip | relay CPU ÷ NIO floor's |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    d = summary.get("DIRECT")
    d = None if isinstance(d, Failure) else d
    added = added_over_direct(summary)
    bp50, _ = best_peer({n: a.p50 for n, a in added.items()}, True)
    bp99, _ = best_peer({n: a.p99 for n, a in added.items()}, True)
    cpu = column(summary, "relay_cpu_us")
    for n, v in summary.items():
        if isinstance(v, Failure):
            lines.append(failed_row(n, v.error, 13))
            continue
        lines.append(
            f"| {n} | {HOPS.get(n, '?')} | {fmt(v.p50)} | {fmt(v.p99)} | {fmt(v.p999)} | {fmt(added[n].p50)} | "
            f"{fmt(added[n].p99)} | {ratio(v.p50, d.p50 if d else None)} | {ratio(v.p99, d.p99 if d else None)} | "
            f"{ratio(added[n].p50, bp50)} | {ratio(added[n].p99, bp99)} | {fmt(v.relay_cpu_us)} | "
            f"{floor_ratio(cpu, n)} |")
    return lines, added, bp50, bp99


def connrate_table(summary: dict) -> tuple[list[str], float | None, str | None]:
    """Sections 4 and 10: one row per path; returns the lines and the best peer's connections/s and name."""
    lines = ["| path | hops | connections/s | ÷ DIRECT | ÷ best peer | ÷ NIO floor | failed | relay CPU µs per connection "
             "| relay CPU ÷ NIO floor's |",
             "|---|---|---|---|---|---|---|---|---|"]
    rates = column(summary, "per_second")
    cpu = column(summary, "relay_cpu_us")
    d = rates.get("DIRECT")
    bp, bpn = best_peer(rates, False)
    for n, v in summary.items():
        if isinstance(v, Failure):
            lines.append(failed_row(n, v.error, 9))
            continue
        lines.append(f"| {n} | {HOPS.get(n, '?')} | {fmt(v.per_second, 0)} | {ratio(v.per_second, d)} | "
                     f"{ratio(v.per_second, bp)} | {floor_ratio(rates, n)} | {v.failed} | {fmt(v.relay_cpu_us, 0)} | "
                     f"{floor_ratio(cpu, n)} |")
    lines += ["", f"best peer: {bpn}", ""]
    return lines, bp, bpn


def throughput_table(summary: dict) -> tuple[list[str], float | None, str | None]:
    """Section 3, one iperf3 configuration: one row per path; returns the lines and the best peer."""
    lines = ["| path | hops | Gbit/s | ÷ DIRECT | ÷ best peer | ÷ NIO floor | relay CPU ms per GiB | relay CPU ÷ NIO floor's |",
             "|---|---|---|---|---|---|---|---|"]
    rates = column(summary, "gbps")
    cpu = column(summary, "relay_cpu_ms_per_gib")
    d = rates.get("DIRECT")
    bp, bpn = best_peer(rates, False)
    for n, v in summary.items():
        if isinstance(v, Failure):
            lines.append(failed_row(n, v.error, 8))
            continue
        lines.append(f"| {n} | {HOPS.get(n, '?')} | {fmt(v.gbps, 2)} | {ratio(v.gbps, d)} | {ratio(v.gbps, bp)} | "
                     f"{floor_ratio(rates, n)} | {fmt(v.relay_cpu_ms_per_gib, 0)} | {floor_ratio(cpu, n)} |")
    lines += ["", f"best peer: {bpn}", ""]
    return lines, bp, bpn


def sessions_table(summary: dict) -> list[str]:
    """Section 11, one concurrency: one row per path, read against HAPROXYx2 (the two-hop peer). CPU
    and system calls are per request per hop."""
    lines = ["| path | hops | requests/s | ÷ HAPROXYx2 | relay CPU µs per request per hop | ÷ HAPROXYx2's | "
             "system calls | reads | writes | epoll waits | errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rates = column(summary, "per_second")
    cpu = {n: (v / HOPS[n] if v is not None and HOPS.get(n) else None)
           for n, v in column(summary, "relay_cpu_us").items()}
    for n, v in summary.items():
        if isinstance(v, Failure):
            lines.append(failed_row(n, v.error, 11))
            continue
        lines.append(f"| {n} | {HOPS.get(n, '?')} | {fmt(v.per_second, 0)} | {ratio(v.per_second, rates.get('HAPROXYx2'))} "
                     f"| {fmt(cpu.get(n), 2)} | {ratio(cpu.get(n), cpu.get('HAPROXYx2'))} | {fmt(v.syscalls, 2)} | "
                     f"{fmt(v.reads, 2)} | {fmt(v.writes, 2)} | {fmt(v.epoll_waits, 2)} | {v.errors} |")
    lines.append("")
    return lines


# The processes of a repeater path, as the report names them (labels of paths.start_path).
PROCESS_NAMES = {"repeaterd": "`repeaterd`", "muxcat": "`muxcat --forward`", "repeaterd-1hop": "`repeaterd`"}


def floor_note(summary: dict, per: str, digits: int = 1) -> str | None:
    """One paragraph that reads the repeater's relay CPU against the NIO floor: each repeater process alone
    ÷ NIO_1TO1 (one hop each), and REPEATER ÷ NIO_1TO1x2 (two hops); None when the floor was not measured."""
    unit = "µs"
    cpu = column(summary, "relay_cpu_us")
    one, two = cpu.get(FLOORS[1]), cpu.get(FLOORS[2])
    if one is None and two is None:
        return None
    parts = []
    if one is not None:
        parts.append(f"NIO_1TO1 (our minimal SwiftNIO relay, one hop: what SwiftNIO alone costs) uses {fmt(one, digits)} {unit}")
    for rep in ("REPEATER", "REPEATER_BEFORE", "REPEATER_ADMIN", "REPEATER_STATUS", "REPEATER_1HOP", "REPEATER_1HOP_BEFORE"):
        v = ok(summary).get(rep)
        if v is None or v.relay_cpu_us is None:
            continue
        by = v.relay_cpu_us_by_process or ({"repeaterd-1hop": v.relay_cpu_us} if HOPS.get(rep) == 1 else {})
        each = [f"{PROCESS_NAMES.get(label, label)} {fmt(us, digits)} {unit} ({ratio(us, one)} NIO_1TO1)"
                for label, us in by.items() if us is not None]
        text = f"{rep}: " + (", ".join(each) if each else "")
        if HOPS.get(rep) == 2:
            text += (", " if each else "") + f"both hops {fmt(v.relay_cpu_us, digits)} {unit} ({ratio(v.relay_cpu_us, two)} NIO_1TO1x2)"
        parts.append(text)
    for peer in ("HAPROXY", "NGINX"):
        if cpu.get(peer) is not None and one is not None:
            parts.append(f"{peer} {fmt(cpu[peer], digits)} {unit} ({ratio(cpu[peer], one)} NIO_1TO1)")
    return (f"**Against the floor** (relay CPU µs per {per}): " + "; ".join(parts) +
            ". What NIO_1TO1 costs is SwiftNIO's; what a repeater process costs above it is ours.")
