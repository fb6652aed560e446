"""docs/bench/*.png (matplotlib, installed by tools/install-deps.sh --bench)."""
from __future__ import annotations

import os

from .results import ConnRateResult, EndpointResult, HOLResult, PingPongResult, RTTResult, ThroughputResult, TLSResult
from .tables import column


def bar_groups(series: dict[str, dict[str, float | None]]) -> tuple[list[str], list[str]]:
    """The groups (x axis) and the paths (one bar each per group, in first-seen order) of a bar chart."""
    groups = list(series)
    paths: list[str] = []
    for g in groups:
        for p in series[g]:
            if p not in paths:
                paths.append(p)
    return groups, paths


def make_plots(results: dict, plotdir: str) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(plotdir, exist_ok=True)
    made = []

    def bars(name, title, ylabel, series: dict[str, dict[str, float | None]]):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        groups, paths = bar_groups(series)
        w = 0.8 / max(1, len(paths))
        for i, p in enumerate(paths):
            xs = [j + i * w for j in range(len(groups))]
            ys = [series[g].get(p) or 0 for g in groups]
            ax.bar(xs, ys, w, label=p)
        ax.set_xticks([j + 0.4 - w / 2 for j in range(len(groups))])
        ax.set_xticklabels(groups)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(plotdir, name), dpi=110)
        plt.close(fig)
        made.append(name)

    for key, title in (("latency", "Ping-pong 64 B round trip (pinned, µs)"), ("nagle", "Nagle trap, -b 2 (µs)")):
        r = results.get(key)
        if isinstance(r, PingPongResult):
            bars(f"{key}.png", title, "µs", {q: column(r.summary, q) for q in ("p50", "p99")})
    r = results.get("throughput")
    if isinstance(r, ThroughputResult):
        bars("throughput.png", "iperf3 throughput (Gbit/s)", "Gbit/s",
             {k.replace(", ", "\n"): column(cr.summary, "gbps") for k, cr in r.configs.items()})
    r = results.get("connrate")
    if isinstance(r, ConnRateResult):
        bars("connrate.png", "New connections per second (one 64 B exchange each)", "connections/s",
             {"connections/s": column(r.summary, "per_second")})
    r = results.get("tls")
    if isinstance(r, TLSResult):
        ser = {}
        for size, sr in r.sizes.items():
            for k in ("put", "get"):
                ser[f"{k} {size}"] = column(sr.summary, f"{k}_mibps")
        bars("tls.png", "TLS file transfer (MiB/s)", "MiB/s", ser)
    r = results.get("rtt")
    if isinstance(r, RTTResult):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        rtts = [float(x) for x in r.rtts]
        for p in r.paths:
            ys = [column(point.summary, "put_mibps").get(p) for point in r.rtts.values()]
            ax.plot([max(x, 0.1) for x in rtts], [y or float("nan") for y in ys], marker="o", label=p)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("RTT, ms (0 drawn at 0.1)")
        ax.set_ylabel("put MiB/s")
        ax.set_title("put throughput against round-trip time")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(plotdir, "rtt.png"), dpi=110)
        plt.close(fig)
        made.append("rtt.png")
    r = results.get("endpoint")
    if isinstance(r, EndpointResult):
        if isinstance(r.parts.latency, PingPongResult):
            s = r.parts.latency.summary
            bars("endpoint-latency.png", "One hop, deployment shape: ping-pong 64 B (pinned, µs)", "µs",
                 {q: column(s, q) for q in ("p50", "p99")})
        if isinstance(r.parts.connrate, ConnRateResult):
            bars("endpoint-connrate.png", "One hop, deployment shape: new connections per second", "connections/s",
                 {"connections/s": column(r.parts.connrate.summary, "per_second")})
    r = results.get("hol")
    if isinstance(r, HOLResult):
        bars("hol.png", "Ping-pong beside a bulk session (µs)", "µs",
             {q: column(r.summary, q) for q in ("alone_p99", "p50", "p99")})
    return made
