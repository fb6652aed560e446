"""docs/BENCHMARKS.md from a run's typed results: one writer per section, each adding its lines and
the targets (issue 5) it can judge."""
from __future__ import annotations

import os
import platform

from . import procs
from .catalog import FLOORS, ROOT
from .procs import out
from .catalog import HOPS
from .results import (ConnRateResult, EndpointResult, Failure, HOLResult, MeasurementFailure, MicroResult,
                      PingPongResult, RTTResult, RunRecord, ScaleResult, SessionsResult, Target, ThroughputResult,
                      TLSResult)
from .tables import (best_peer, column, connrate_table, floor_note, fmt, latency_table, ok, ratio,
                     sessions_table, throughput_table)

CPU_NOTE = (" \"Relay CPU\" is the user + system CPU time of the path's relay processes (all their threads, "
            "nginx's workers, socat's forks; read from /proc, 10 ms resolution) during the round, divided by its "
            "round trips or connections: steadier than the rates on a shared machine, since it does not depend on "
            "who else had the CPU. (— : not measured in that run.)")
FLOOR_NOTE = (" \"÷ NIO floor\" divides by the NIO path with as many hops (NIO_1TO1 for one, NIO_1TO1x2 for two): "
              "our own minimal SwiftNIO relay, i.e. what SwiftNIO alone costs; everything a repeater path costs "
              "above it is ours.")


class Report:
    """The report's lines and the targets judged so far."""

    def __init__(self, record: RunRecord, quick: bool):
        self.record = record
        self.quick = quick
        self.lines: list[str] = []
        self.targets: list[Target] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def target(self, name: str, measured: str, met: bool | None) -> None:
        self.targets.append(Target(name, measured, met))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def floor_clause(*summaries: dict) -> str:
    """FLOOR_NOTE, if a table has a floor path in it."""
    return FLOOR_NOTE if any(f in s for s in summaries for f in FLOORS.values()) else ""


def measured_paths(record: RunRecord) -> set[str]:
    return {n for r in record.results.values() for s in r.summaries() for n in (s or {})}


def rt_clause(sched: str) -> str:
    return sched.format(p=procs.RT_PRIORITY) if procs.RT_PRIORITY > 0 else ""


def machine_facts() -> list[str]:
    cpu = out(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).strip()
    mem = out(["sh", "-c", "free -g | awk '/Mem:/{print $2}'"])
    return [
        f"CPU: {os.cpu_count()} vCPUs, {cpu}; memory {mem} GiB; kernel {platform.release()}",
        f"OS: {out(['sh', '-c', '. /etc/os-release; echo $PRETTY_NAME'])}; "
        f"{out(['sh', '-c', 'swift --version 2>&1 | head -1'])}",
        "peers: " + "; ".join(x for x in [
            out(["sh", "-c", "haproxy -v | head -1 | cut -d' ' -f1-3"]),
            out(["sh", "-c", "nginx -v 2>&1"]),
            out(["sh", "-c", "socat -V | grep 'socat version' | cut -d' ' -f2-3"]),
            out(["sh", "-c", "sockperf --version 2>&1 | grep -o 'version #[^ ]*' | head -1"]),
            out(["sh", "-c", "iperf3 --version | head -1 | cut -d' ' -f1-2"]),
        ] if x),
        f"limits: ulimit -n {out(['sh', '-c', 'ulimit -n'])}, somaxconn "
        f"{out(['cat', '/proc/sys/net/core/somaxconn'])}",
    ]


# ----------------------------------------------------------------------------- header

def write_header(rep: Report) -> None:
    r = rep.record
    a = rep.add
    a("# Benchmarks", "",
      f"Written by `tools/bench` on {r.started} (UTC). Every path below ran in the same run, in alternating "
      "rounds whose order rotates each round; each figure is the median over rounds. This machine is a shared "
      "2-vCPU VM (other developers build Swift code on it now and then), so read the **ratios** between "
      "paths of one run, not the absolute numbers.", "",
      "Command:", "", f"```sh\n{r.command}\n```", "", "Machine:", "")
    for f in machine_facts():
        a(f"- {f}")
    a(f"- load average (1/5/15 min) at start: {r.load[0]}; at the end: {r.load[1]}", "")


def write_paths(rep: Report) -> None:
    r = rep.record
    a = rep.add
    a("Paths (hops = user-space relay processes a byte crosses):", "", "| path | hops | what |", "|---|---|---|",
      "| DIRECT | 0 | client → server |",
      "| REPEATER | 2 | client → `repeaterd` → yamux link → `muxcat listen --forward` → server (the TLS transfers: → "
      "`runtime-manager`, which is the endpoint) |")
    if r.baseline_bin:
        a(f"| REPEATER_BEFORE | 2 | the same as REPEATER with the binaries from `{r.baseline_bin}` (the build before "
          "the change) |")
    measured = measured_paths(r)
    if "REPEATER_ADMIN" in measured:
        a("| REPEATER_ADMIN | 2 | REPEATER with `repeaterd --admin` on, its `/metrics` scraped every second: what the "
          "admin endpoint and the metrics cost |")
    if "REPEATER_STATUS" in measured:
        a("| REPEATER_STATUS | 2 | REPEATER_ADMIN with its status page (`/status`) open in headless chromium, which "
          "fetches `/status.json` every second: what the page costs |")
    if "REPEATER_ACCESSLOG" in measured:
        a("| REPEATER_ACCESSLOG | 2 | REPEATER with `repeaterd --access-log --log-format json`: one JSON line per "
          "session into its log file (what the access log costs) |")
    if "NIO_1TO1x2" in measured:
        a("| NIO_1TO1x2 | 2 | two `nio-relay`s in a chain: the NIO floor for REPEATER's two hops |")
    a("| HAPROXY | 1 | HAProxy 2.6 `mode tcp`, 2 threads, splice off |")
    if "NIO_1TO1" in measured:
        a("| NIO_1TO1 | 1 | **the floor**: `nio-relay` (tools/nio-relay), our own minimal SwiftNIO 1:1 relay — one "
      "event loop, the outbound connection on the accepted channel's loop, TCP_NODELAY, a glue handler with "
      "backpressure and half-close, the target resolved once. What SwiftNIO alone costs per hop; everything a "
      "repeater path costs above it is ours |")
    a("| HAPROXY_SPLICE | 1 | the same with `option splice-request` and `option splice-response` |",
      "| HAPROXYx2 | 2 | two HAProxies in a chain (splice off): the fair two-hop anchor for REPEATER |",
      "| NGINX | 1 | nginx `stream` proxy, 2 workers, `tcp_nodelay on`, `proxy_buffer_size 64k`, `reuseport` |",
      "| SOCAT | 1 | `socat TCP-LISTEN:…,fork,nodelay TCP:…,nodelay` (one process per connection) |",
      "| LEGACY_HTTP | 1 | the old HTTP relay (`repeaterd --legacy-http`), TLS transfers only |")
    ep = r.results.get("endpoint")
    ep_paths = ep.paths if isinstance(ep, EndpointResult) else []
    if "REPEATER_1HOP" in ep_paths:
        a("| REPEATER_1HOP | 1 | section 10 only: client → `repeaterd` → yamux link → `muxcat listen --echo` (the yamux "
          "endpoint answers itself, as `runtime-manager` does: the deployment shape) |")
    if "REPEATER_1HOP_BEFORE" in ep_paths:
        a(f"| REPEATER_1HOP_BEFORE | 1 | the same as REPEATER_1HOP with the binaries from "
          f"`{ep.baseline_bin or r.baseline_bin}` |")
    a("", f"Note: {r.legacy_note}")
    for n in r.notes:
        a(f"Note: {n}")
    a("", "\"Best peer\" is the best of HAPROXY, HAPROXY_SPLICE, NGINX and SOCAT in this run"
      + ("; NIO_1TO1 and NIO_1TO1x2 are not peers but the floor: what SwiftNIO alone costs, one and two hops "
         "(nobody would deploy them instead)" if measured & set(FLOORS.values()) else "") + ".", "")


# ----------------------------------------------------------------------------- sections 1 and 2

def write_pingpong(rep: Report, key: str, title: str, burst: int) -> None:
    r = rep.record.results.get(key)
    if r is None:
        return
    a = rep.add
    if isinstance(r, MeasurementFailure):
        a(f"## {title}", "", f"failed: {r.error}", "")
        return
    s = r.summary
    a(f"## {title}", "",
      f"`sockperf ping-pong --tcp --full-rtt -m 64{' -b 2' if burst > 1 else ''} -t {r.seconds_per_round}`, "
      f"{r.rounds} rounds per path. **Pinned**: sockperf client, sockperf server and every relay process "
      "(all threads) on CPU 0 with `taskset -c 0`"
      + rt_clause(", and run as `chrt -f {p}` (SCHED_FIFO) so that builds beside the bench cannot preempt them")
      + ". Round-trip times in µs." + CPU_NOTE + floor_clause(s), "")
    lines, added, bp50, bp99 = latency_table(s)
    a(*lines)
    a("")
    note = floor_note(s, "round trip")
    if note:
        a(note, "")
    rep_added = added.get("REPEATER")
    if key == "latency" and rep_added and bp50 is not None:
        rep.target("added latency p50 ≤ best peer's", f"{fmt(rep_added.p50)} µs vs {fmt(bp50)} µs",
                   rep_added.p50 is not None and rep_added.p50 <= bp50)
        rep.target("added latency p99 ≤ best peer's", f"{fmt(rep_added.p99)} µs vs {fmt(bp99)} µs",
                   rep_added.p99 is not None and bp99 is not None and rep_added.p99 <= bp99)
        x2 = added.get("HAPROXYx2")
        if x2:
            a(f"Two-hop anchor: REPEATER adds {fmt(rep_added.p50)} µs p50 / {fmt(rep_added.p99)} µs p99; "
              f"HAPROXYx2 adds {fmt(x2.p50)} / {fmt(x2.p99)} µs"
              + (f"; the NIO floor NIO_1TO1x2 adds {fmt(added['NIO_1TO1x2'].p50)} / {fmt(added['NIO_1TO1x2'].p99)} µs"
                 if "NIO_1TO1x2" in added else "") + ".", "")
    repeater = ok(s).get("REPEATER")
    if key == "nagle" and repeater is not None and repeater.p99 is not None:
        rep.target("Nagle trap p99 < 200 µs", f"{fmt(repeater.p99)} µs", repeater.p99 < 200)


# ----------------------------------------------------------------------------- section 3

def write_throughput(rep: Report) -> None:
    r = rep.record.results.get("throughput")
    if not isinstance(r, ThroughputResult):
        return
    a = rep.add
    a("## 3. Throughput (iperf3)", "",
      f"`iperf3 -c … -t {r.seconds_per_round} -P N [-R] -J`, `end.sum_received.bits_per_second`, "
      f"{r.rounds} rounds per path, not pinned. Gbit/s. \"Relay CPU\" is the relay processes' CPU time (from /proc) "
      "per GiB received." + floor_clause(*(c.summary for c in r.configs.values())), "")
    for cfg, cr in r.configs.items():
        s = cr.summary
        a(f"**{cfg}**", "")
        lines, _, _ = throughput_table(s)
        a(*lines)
        rates = column(s, "gbps")
        if rates.get("REPEATER") is not None and rates.get("HAPROXY") is not None:
            rp, hp = rates["REPEATER"], rates["HAPROXY"]
            rep.target(f"throughput ≥ HAPROXY (no splice), {cfg}", f"{fmt(rp, 2)} vs {fmt(hp, 2)} Gbit/s ({ratio(rp, hp)})",
                       rp >= hp)


# ----------------------------------------------------------------------------- section 4

def write_connrate(rep: Report) -> None:
    r = rep.record.results.get("connrate")
    if not isinstance(r, ConnRateResult):
        return
    s = r.summary
    rep.add("## 4. Connection rate", "",
            f"`benchkit connrate` (tools/benchkit, Go): {r.concurrency} concurrent clients, each connecting, "
            f"writing 64 B, reading the 64-byte echo, closing, for {r.seconds_per_round} s per round; "
            f"{r.rounds} rounds per path. Server: `benchkit echo`." + CPU_NOTE + floor_clause(s), "")
    lines, _, _ = connrate_table(s)
    rep.add(*lines)
    note = floor_note(s, "connection", 0)
    if note:
        rep.add(note, "")
    rates = column(s, "per_second")
    rp, ng = rates.get("REPEATER"), rates.get("NGINX")
    if rp is not None and ng is not None:
        rep.target("connection rate ≥ NGINX", f"{fmt(rp, 0)} vs {fmt(ng, 0)}/s ({ratio(rp, ng)})", rp >= ng)


# ----------------------------------------------------------------------------- section 5

def write_tls(rep: Report) -> None:
    r = rep.record.results.get("tls")
    if not isinstance(r, TLSResult):
        return
    a = rep.add
    a("## 5. TLS file transfer (runtime-client put/get)", "",
      "`runtime-client --quiet put FILE NAME` then `get NAME OUT` (checked by SHA-256), timed as whole "
      "commands (process start and TLS handshake included). DIRECT is `runtime-manager --direct`; REPEATER "
      "is `repeaterd` → yamux link → `runtime-manager --listen`; REPEATER_ACCESSLOG is REPEATER with both "
      "under `--access-log --log-format json`. MiB/s; runtime-manager's CPU over the put and the get "
      "(its threads, from /proc/PID/task/*/schedstat).", "")
    if r.note:
        a(r.note, "")
    a("| size | path | put MiB/s | get MiB/s | put ÷ DIRECT | get ÷ DIRECT | runtime-manager CPU s |",
      "|---|---|---|---|---|---|---|")
    for size, sr in r.sizes.items():
        s = sr.summary
        d = ok(s).get("DIRECT")
        for n, v in s.items():
            if isinstance(v, Failure):
                a(f"| {size} | {n} | failed: {str(v.error)[:80]} |||||")
                continue
            a(f"| {size} | {n} | {fmt(v.put_mibps)} | {fmt(v.get_mibps)} | "
              f"{ratio(v.put_mibps, d.put_mibps if d else None)} | {ratio(v.get_mibps, d.get_mibps if d else None)} | "
              f"{fmt(v.endpoint_cpu_s, 2)} |")
        rp = ok(s).get("REPEATER")
        if d and rp and d.put_mibps and rp.put_mibps:
            for k in ("put", "get"):
                dv, rv = getattr(d, f"{k}_mibps"), getattr(rp, f"{k}_mibps")
                if not dv or not rv:
                    continue
                q = rv / dv
                rep.target(f"TLS {k} {size} ≥ 0.9× DIRECT", f"{q:.2f}×", q >= 0.9)
    a("")
    if r.sessions:
        counts = {v.sessions for v in ok(r.sessions.summary).values()}
        a(f"Short sessions: {'/'.join(map(str, sorted(counts))) or '?'} × `runtime-client policy-hash` one after the other "
          "(a TLS handshake, one request, the session's end): runtime-manager's CPU per session, median of "
          f"{r.rounds} rounds.", "",
          "| path | ms per session (wall, process start included) | runtime-manager CPU µs per session | ÷ REPEATER |",
          "|---|---|---|---|")
        base = ok(r.sessions.summary).get("REPEATER")
        for n, v in r.sessions.summary.items():
            if isinstance(v, Failure):
                a(f"| {n} | failed: {str(v.error)[:80]} |||")
                continue
            a(f"| {n} | {fmt(v.wall_ms_per_session)} | {fmt(v.endpoint_cpu_us_per_session, 0)} | "
              f"{ratio(v.endpoint_cpu_us_per_session, base.endpoint_cpu_us_per_session if base else None)} |")
        a("")


# ----------------------------------------------------------------------------- section 6

def write_rtt(rep: Report) -> None:
    r = rep.record.results.get("rtt")
    if not isinstance(r, RTTResult):
        return
    a = rep.add
    a("## 6. Throughput against round-trip time (delay relay)", "",
      f"`benchkit delay` (tools/benchkit, Go) sits between runtime-client and each path and holds every chunk "
      f"for RTT/2 in each direction (at most 16 MiB in flight per direction). `put` of {r.mib} MiB "
      f"(LEGACY_HTTP at ≥ 10 ms: {r.legacy_mib_at_high_rtt} MiB, since its lock-step needs one round trip "
      "per TLS record). MiB/s, median of 2 rounds.", "")
    paths = r.paths
    a("| RTT ms | " + " | ".join(paths) + " | REPEATER ÷ DIRECT | REPEATER ÷ LEGACY_HTTP |",
      "|---|" + "---|" * len(paths) + "---|---|")
    for rtt, point in r.rtts.items():
        put = column(point.summary, "put_mibps")
        rp, d, leg = put.get("REPEATER"), put.get("DIRECT"), put.get("LEGACY_HTTP")
        a(f"| {rtt} | " + " | ".join(fmt(put.get(p)) for p in paths) + f" | {ratio(rp, d)} | {ratio(rp, leg)} |")
        if rp and d:
            rep.target(f"RTT {rtt} ms: REPEATER within 1.25× of DIRECT (REPEATER ÷ DIRECT ≥ 0.80)", f"{rp / d:.2f}×",
                       d / rp <= 1.25)
        if rtt == "10":
            rep.target("RTT 10 ms: REPEATER ≥ 20× LEGACY_HTTP",
                       ratio(rp, leg) if leg else "not measured (no LEGACY_HTTP)",
                       (rp / leg >= 20) if (rp and leg) else None)
    a("")


# ----------------------------------------------------------------------------- section 7

def write_hol(rep: Report) -> None:
    r = rep.record.results.get("hol")
    if not isinstance(r, HOLResult):
        return
    s = r.summary
    a = rep.add
    a("## 7. Head-of-line: a small session beside a bulk one", "",
      f"`sockperf ping-pong` (64 B, {r.seconds_per_round} s) alone, then again while `sockperf throughput "
      "--tcp -m 65000` pushes bulk data client→server through the same path to the same sockperf server. "
      "REPEATER runs `--threads 1`, so both sessions share one yamux link (the ping-pong messages queue on "
      "the link beside the bulk frames). Not pinned (the bulk needs a CPU), every process at `nice -n -10`. µs.", "",
      "| path | alone p50 | alone p99 | beside bulk p50 | beside bulk p99 | p99.9 | bulk MB/s | p99 ÷ DIRECT's |",
      "|---|---|---|---|---|---|---|---|")
    d99 = column(s, "p99").get("DIRECT")
    for n, v in s.items():
        if isinstance(v, Failure):
            a(f"| {n} | failed: {str(v.error)[:80]} |||||||")
            continue
        a(f"| {n} | {fmt(v.alone_p50)} | {fmt(v.alone_p99)} | {fmt(v.p50)} | {fmt(v.p99)} | "
          f"{fmt(v.p999)} | {fmt(v.bulk_MBps, 0)} | {ratio(v.p99, d99)} |")
    a("")
    rp = column(s, "p99").get("REPEATER")
    if rp is not None:
        rep.target("head-of-line: p99 beside bulk < 1 ms", f"{fmt(rp)} µs", rp < 1000)


# ----------------------------------------------------------------------------- section 8

def write_scale(rep: Report) -> None:
    r = rep.record.results.get("scale")
    if not isinstance(r, ScaleResult):
        return
    a = rep.add
    a("## 8. Scale: concurrent sessions through one repeaterd", "",
      "`benchkit scale` opens the sessions (64 dialers, each session one 16-byte exchange, then left open and "
      "idle) through one `repeaterd` (default threads) whose link goes to `muxcat listen --echo`. RSS is "
      "repeaterd's VmRSS before and after; latency is a 64-byte ping-pong on one more session, alone and "
      "then among the idle ones (not pinned).", "",
      "| sessions | failed | opened/s | RSS before | RSS after | RSS per session | active p50 / p99 / p99.9 alone | among them |",
      "|---|---|---|---|---|---|---|---|")
    la, lm = r.latency_alone, r.latency_among
    a(f"| {r.sessions:,} | {r.failed} | {fmt(r.opened_per_second, 0)} | {fmt(r.rss_before_kib / 1024)} MiB | "
      f"{fmt(r.rss_after_kib / 1024)} MiB | {fmt(r.rss_per_session_bytes / 1024, 2)} KiB | "
      f"{fmt(la.get('p50_us'))} / {fmt(la.get('p99_us'))} / {fmt(la.get('p999_us'))} µs | "
      f"{fmt(lm.get('p50_us'))} / {fmt(lm.get('p99_us'))} / {fmt(lm.get('p999_us'))} µs |", "")
    rep.target(f"{r.sessions:,} sessions, idle session ≤ 32 KiB RSS",
               f"{r.rss_per_session_bytes / 1024:.2f} KiB, {r.failed} failed",
               r.rss_per_session_bytes <= 32 * 1024 and r.failed == 0 and r.sessions >= 10000)


# ----------------------------------------------------------------------------- section 9

def write_micro(rep: Report, outdir: str) -> None:
    r = rep.record.results.get("micro")
    if r is None:
        return
    a = rep.add
    a("## 9. Micro-benchmarks and length prefix vs decode-until-it-works", "")
    if isinstance(r, MeasurementFailure):
        a(f"failed: {r.error}")
    elif isinstance(r, MicroResult):
        a("`cd Benchmarks && swift package --allow-writing-to-package-directory benchmark --format markdown` "
          "(ordo-one/benchmark; what each one does: Benchmarks/README.md). p50 over the samples; the ×1000 "
          "benchmarks handle 1,000 frames or messages per iteration, so divide by 1,000 for one. The full "
          "percentile tables are in [bench/micro.md](bench/micro.md).", "", r.markdown)
        os.makedirs(os.path.join(outdir, "bench"), exist_ok=True)
        with open(os.path.join(outdir, "bench", "micro.md"), "w") as f:
            f.write(r.full)
    a("")


# ----------------------------------------------------------------------------- section 10

def _endpoint_latency(rep: Report, lat: PingPongResult) -> None:
    a = rep.add
    a(f"**(a) Ping-pong latency, 64 B, pinned.** `benchkit pingpong -size 64 -duration "
      f"{lat.seconds_per_round} -warmup {lat.warmup_seconds}` (tools/benchkit, Go: one TCP_NODELAY "
      "connection, write 64 B, read the 64 B back, each round trip timed with the monotonic clock), "
      "against `benchkit echo -blocking` (both ends use blocking raw read/write syscalls: under SCHED_FIFO "
      "on one CPU the Go runtime's netpoller and syscall handoffs added ~90 µs to every round trip; "
      "with raw syscalls DIRECT's p50 matches sockperf's, ~23 µs), "
      f"{lat.rounds} rounds per path"
      + (", after a 1 s warm-up connection per path" if lat.warmup_connection else "")
      + ". **Pinned** as in section 1: "
      "the client, the echo server and every relay process (all threads) on CPU 0 with `taskset -c 0`"
      + rt_clause(", run as `chrt -f {p}` (SCHED_FIFO)")
      + ". Round-trip times in µs; \"best peer\" is the best of HAPROXY, NGINX and SOCAT." + CPU_NOTE
      + floor_clause(lat.summary), "")
    lines, added, bp50, bp99 = latency_table(lat.summary)
    a(*lines)
    a("")
    note = floor_note(lat.summary, "round trip")
    if note:
        a(note, "")
    one = added.get("REPEATER_1HOP")
    if one and bp50 is not None:
        _, bp50n = best_peer({n: x.p50 for n, x in added.items()}, True)
        _, bp99n = best_peer({n: x.p99 for n, x in added.items()}, True)
        a(f"REPEATER_1HOP adds {fmt(one.p50)} µs p50 / {fmt(one.p99)} µs p99 over DIRECT; the best "
          f"one-hop peer adds {fmt(bp50)} µs p50 ({bp50n}) / {fmt(bp99)} µs p99 ({bp99n})"
          + (f", the floor NIO_1TO1 {fmt(added['NIO_1TO1'].p50)} / {fmt(added['NIO_1TO1'].p99)} µs"
             if "NIO_1TO1" in added else "")
          + " — with the endpoint difference above inside REPEATER_1HOP's figure. REPEATER_1HOP's relay CPU is "
          "`repeaterd`'s alone (muxcat is its endpoint, as `benchkit echo` is the others').", "")
        rep.target("deployment shape (section 10, one hop): added latency p50 ≤ best peer's",
                   f"{fmt(one.p50)} µs vs {fmt(bp50)} µs", one.p50 is not None and one.p50 <= bp50)
        rep.target("deployment shape (section 10, one hop): added latency p99 ≤ best peer's",
                   f"{fmt(one.p99)} µs vs {fmt(bp99)} µs", one.p99 is not None and bp99 is not None and one.p99 <= bp99)


def _endpoint_connrate(rep: Report, cr: ConnRateResult) -> None:
    rep.add(f"**(b) Connection rate.** `benchkit connrate` as in section 4: {cr.concurrency} concurrent "
            f"clients, each connecting, writing 64 B, reading the 64-byte echo, closing, for "
            f"{cr.seconds_per_round} s per round; {cr.rounds} rounds per path; not pinned; a fresh set of "
            "the same processes. For REPEATER_1HOP every connection is a new yamux stream that muxcat opens, "
            "echoes and closes.", "")
    lines, _, _ = connrate_table(cr.summary)
    rep.add(*lines)
    note = floor_note(cr.summary, "connection", 0)
    if note:
        rep.add(note, "")
    rates = column(cr.summary, "per_second")
    one, ng = rates.get("REPEATER_1HOP"), rates.get("NGINX")
    if one is not None and ng is not None:
        rep.target("deployment shape (section 10, one hop): connection rate ≥ NGINX",
                   f"{fmt(one, 0)} vs {fmt(ng, 0)}/s ({ratio(one, ng)})", one >= ng)


def write_endpoint(rep: Report) -> None:
    r = rep.record.results.get("endpoint")
    if r is None:
        return
    a = rep.add
    a("## 10. One relay hop: the repeater in its deployment shape", "")
    if isinstance(r, MeasurementFailure):
        a(f"failed: {r.error}", "")
        return
    a("In a deployment the yamux endpoint **is** the service: client → `repeaterd` → yamux link → "
      "`runtime-manager`, **one** user-space relay hop. Sections 1–4 measure with generic tools (sockperf, "
      "iperf3, a Go echo server), which cannot speak yamux, so REPEATER there needs an exit relay at the far "
      "end of the link (`muxcat listen --forward`): **two** hops, whose fair anchor is HAPROXYx2 — that is what "
      "a generic TCP service behind the repeater sees. This section measures the deployment shape against the "
      "one-hop peers and the one-hop floor: REPEATER_1HOP is client → `repeaterd` → yamux link → `muxcat listen "
      "--echo`, whose yamux endpoint answers every stream itself, as `runtime-manager` does; "
      + ("DIRECT, NIO_1TO1, HAPROXY, NGINX and SOCAT" if "NIO_1TO1" in r.paths else "DIRECT, HAPROXY, NGINX and SOCAT")
      + " sit in front of `benchkit echo`.", "",
      "**The endpoint differs.** REPEATER_1HOP's echo is `muxcat` (Swift NIO + yamux, in the same process "
      "that ends the link); every other path's echo is `benchkit echo` (Go; blocking raw syscalls in part a). "
      "So REPEATER_1HOP's numbers include any difference in endpoint cost, whichever way it goes; DIRECT "
      "shows the Go echo's own cost, not muxcat's. The relay-CPU columns are not touched by it: they count "
      "`repeaterd` alone against `nio-relay` alone.", "")
    if "REPEATER_1HOP_BEFORE" in r.paths and r.baseline_bin and r.baseline_bin == r.bin:
        a(f"Note: REPEATER_1HOP and REPEATER_1HOP_BEFORE ran the same binaries (`{r.bin}`) in this run, so "
          "the two rows are an A/A pair: their difference is this run's noise, not a change.", "")
    lat, cr = r.parts.latency, r.parts.connrate
    if isinstance(lat, PingPongResult):
        _endpoint_latency(rep, lat)
    elif isinstance(lat, MeasurementFailure):
        a(f"(a) latency failed: {lat.error}", "")
    if isinstance(cr, ConnRateResult):
        _endpoint_connrate(rep, cr)
    elif isinstance(cr, MeasurementFailure):
        a(f"(b) connection rate failed: {cr.error}", "")
    a("How to read this beside sections 1 and 4: this section is the shape of a real deployment "
      "(`repeaterd` → `runtime-manager`); sections 1 and 4 (REPEATER with two hops, HAPROXYx2 as the fair "
      "anchor) are what generic tools and a generic TCP service behind the repeater see. The tools differ "
      "too (`benchkit pingpong` here, sockperf in section 1), so compare rows within one table, not across "
      "sections.", "")


# ----------------------------------------------------------------------------- the end

# ----------------------------------------------------------------------------- section 11

def write_sessions(rep: Report) -> None:
    r = rep.record.results.get("sessions")
    if not isinstance(r, SessionsResult):
        return
    rep.add("## 11. Many sessions (wrk, keep-alive)", "",
            f"`wrk -t2 -cN -d{r.seconds_per_round}s` keep-alive GETs of a {r.response_bytes}-byte file from one nginx "
            "(1 worker, behind every path), N concurrent connections, each its own session; "
            f"{r.rounds} rounds per path. For each path's relay processes: CPU (from /proc) and system calls "
            "(`perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_{read,write,readv,writev,recvfrom,sendto,"
            "recvmsg,sendmsg,epoll_wait,epoll_pwait,epoll_pwait2}` attached while wrk runs), per request and per hop. "
            "A 1:1 relay pays a read and a write per message on each side (2 + 2 per request per hop); a "
            "multiplexer can carry every session's frames in one link write and one link read per event-loop turn, "
            "and pay per message only the client socket's own read and write (issue 43). — : perf could not count.",
            "")
    for level, lv in r.levels.items():
        rep.add(f"**{level}**", "")
        rep.add(*sessions_table(lv.summary))
    c512 = r.levels.get("c512")
    if c512 is None:
        return
    s = ok(c512.summary)
    rp, hp = s.get("REPEATER"), s.get("HAPROXYx2")
    if rp is None:
        return
    if rp.writes is not None:
        rep.target("c512: link writes per request per hop ≤ 1.3", f"{fmt(rp.writes, 2)}", rp.writes <= 1.3)
    if hp is not None:
        if rp.relay_cpu_us is not None and hp.relay_cpu_us:
            q = (rp.relay_cpu_us / HOPS["REPEATER"]) / (hp.relay_cpu_us / HOPS["HAPROXYx2"])
            rep.target("c512: relay CPU per request per hop ≤ 0.8× HAProxy×2's", f"{q:.2f}×", q <= 0.8)
        if rp.per_second and hp.per_second:
            rep.target("c512: requests/s ≥ 1.2× HAProxy×2", ratio(rp.per_second, hp.per_second),
                       rp.per_second >= 1.2 * hp.per_second)
    c64 = ok(r.levels["c64"].summary) if "c64" in r.levels else {}
    rp64, hp64 = c64.get("REPEATER"), c64.get("HAPROXYx2")
    if rp64 is not None and hp64 is not None and rp64.per_second and hp64.per_second:
        rep.target("c64: requests/s ≥ 1.0× HAProxy×2", ratio(rp64.per_second, hp64.per_second),
                   rp64.per_second >= hp64.per_second)


def write_plots(rep: Report, plots: list[str]) -> None:
    if plots:
        rep.add("## Plots", "")
        for p in plots:
            rep.add(f"![{p}](bench/{p})", "")


def write_targets(rep: Report) -> None:
    if rep.targets:
        rep.add("## Targets (issue 5): REPEATER against the best peer in this run", "",
                "| target | measured | met? |", "|---|---|---|")
        for t in rep.targets:
            rep.add(f"| {t.target} | {t.measured} | {'yes' if t.met else ('not measured' if t.met is None else '**no**')} |")
        rep.add("")


def write_notes(rep: Report) -> None:
    """A pointer, not a copy: the page is this run; before/after pairs of each change are in NOTES.md."""
    if not rep.quick:
        rep.add("## Before and after", "",
                "Each change's own measurements (the same paths before and after it, in one run, with their "
                "commands) are in [docs/bench/NOTES.md](bench/NOTES.md), not on this page.", "")


def write_report(record: RunRecord, outdir: str, plots: list[str], quick: bool) -> str:
    """The whole of BENCHMARKS.md; also sets `record.targets` (results.json keeps them)."""
    rep = Report(record, quick)
    write_header(rep)
    write_paths(rep)
    write_pingpong(rep, "latency", "1. Ping-pong latency, 64 B", 1)
    write_pingpong(rep, "nagle", "2. The Nagle trap (`-b 2`)", 2)
    write_throughput(rep)
    write_connrate(rep)
    write_tls(rep)
    write_rtt(rep)
    write_hol(rep)
    write_scale(rep)
    write_micro(rep, outdir)
    write_endpoint(rep)
    write_sessions(rep)
    write_plots(rep, plots)
    write_targets(rep)
    write_notes(rep)
    record.targets = rep.targets
    os.makedirs(outdir, exist_ok=True)
    return rep.text()
