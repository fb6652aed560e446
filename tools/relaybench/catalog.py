"""What the bench knows by name: its measurements, its paths, how many hops each path has, and
which paths compare with which."""
from __future__ import annotations

import os

# tools/relaybench/catalog.py → the repository
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1024 * 1024

ALL_MEASUREMENTS = ["latency", "nagle", "throughput", "connrate", "tls", "rtt", "hol", "scale", "micro", "endpoint",
                    "sessions"]
DESCRIPTIONS = {
    "latency": "1. ping-pong latency, 64 B (sockperf ping-pong --tcp --full-rtt), pinned",
    "nagle": "2. the Nagle trap (sockperf ping-pong --tcp --full-rtt -b 2), pinned",
    "throughput": "3. iperf3 throughput, 1 and 8 streams, both directions",
    "connrate": "4. connection rate: new connections per second, one 64-byte exchange each",
    "tls": "5. TLS file transfer, runtime-client put/get",
    "rtt": "6. put 32 MiB through a user-space delay relay at 0, 1, 10, 50 ms RTT",
    "hol": "7. head-of-line: ping-pong beside a bulk session on the same link",
    "scale": "8. 10,000 concurrent sessions through one repeaterd",
    "micro": "9 + micro-benchmarks: Benchmarks/ package (ordo-one/benchmark)",
    "endpoint": "10. one relay hop: the repeater in its deployment shape (yamux endpoint answers itself), "
                "pinned ping-pong + connection rate",
    "sessions": "11. many sessions: wrk keep-alive requests at c64 and c512, system calls and CPU per request",
}

# The generic paths (sections 1–4, and as far as they fit 7 and 10), in report order: each floor
# beside what it is read against (NIO_1TO1x2 beside REPEATER, NIO_1TO1 beside HAPROXY).
GENERIC_PATHS = ["DIRECT", "REPEATER", "NIO_1TO1x2", "HAPROXY", "NIO_1TO1", "HAPROXY_SPLICE", "HAPROXYx2", "NGINX",
                 "SOCAT"]
# Paths measured only when --paths names them: REPEATER_ADMIN is REPEATER with `repeaterd --admin`
# scraped every second (what the admin endpoint and its metrics cost, beside REPEATER in one run);
# REPEATER_STATUS is REPEATER_ADMIN with its status page open in headless chromium (/status.json every second).
OPTIONAL_PATHS = ["REPEATER_ADMIN", "REPEATER_STATUS", "REPEATER_ACCESSLOG"]
PEERS = ["HAPROXY", "HAPROXY_SPLICE", "NGINX", "SOCAT"]  # the 1:1 relays a user would pick instead
ENDPOINT_PEERS = ["HAPROXY", "NGINX", "SOCAT"]  # the one-hop peers of section 10
# Section 11 compares the two-hop paths: the multiplexer against two 1:1 relays and their NIO floor.
SESSIONS_PATHS = ("REPEATER", "REPEATER_BEFORE", "REPEATER_ACCESSLOG", "NIO_1TO1x2", "HAPROXYx2")
HOL_PATHS = ("DIRECT", "REPEATER", "REPEATER_BEFORE", "NIO_1TO1x2", "HAPROXY", "HAPROXYx2", "NGINX")
HOPS = {"DIRECT": 0, "REPEATER": 2, "REPEATER_BEFORE": 2, "NIO_1TO1": 1, "NIO_1TO1x2": 2, "HAPROXY": 1,
        "HAPROXY_SPLICE": 1, "HAPROXYx2": 2, "NGINX": 1, "SOCAT": 1, "LEGACY_HTTP": 1, "REPEATER_1HOP": 1,
        "REPEATER_1HOP_BEFORE": 1, "REPEATER_ADMIN": 2, "REPEATER_STATUS": 2, "REPEATER_ACCESSLOG": 2}
# The floor: our own minimal SwiftNIO relay (tools/nio-relay), per number of hops. What it costs is
# what SwiftNIO costs; what a repeater path costs above it is ours.
FLOORS = {1: "NIO_1TO1", 2: "NIO_1TO1x2"}


def floor_for(path: str) -> str | None:
    """The NIO floor a path's figures are read against: the one with as many hops (none for DIRECT)."""
    return FLOORS.get(HOPS.get(path, 0))


def select_paths(want: list[str] | None, baseline_bin: str | None) -> list[str]:
    """The generic paths of a run: all, or DIRECT plus those of --paths, in report order; with
    --baseline-bin, REPEATER_BEFORE right after REPEATER. Raises ValueError for unknown names."""
    paths = list(GENERIC_PATHS)
    if want:
        bad = [p for p in want if p not in GENERIC_PATHS + OPTIONAL_PATHS]
        if bad:
            raise ValueError(f"unknown path(s): {', '.join(bad)}")
        paths = ["DIRECT"] + [p for p in GENERIC_PATHS if p in want and p != "DIRECT"]
    if baseline_bin:
        at = paths.index("REPEATER") + 1 if "REPEATER" in paths else 1
        paths = paths[:at] + ["REPEATER_BEFORE"] + paths[at:]
    for optional in ("REPEATER_ADMIN", "REPEATER_STATUS", "REPEATER_ACCESSLOG"):
        if want and optional in want:
            at = max((paths.index(p) + 1 for p in ("REPEATER", "REPEATER_BEFORE", "REPEATER_ADMIN", "REPEATER_STATUS")
                      if p in paths),
                     default=1)
            paths = paths[:at] + [optional] + paths[at:]
    return paths


def endpoint_paths(paths: list[str], baseline_bin: str | None) -> list[str]:
    """Section 10's paths: DIRECT, REPEATER_1HOP (+ _BEFORE with --baseline-bin), NIO_1TO1 (the floor of one
    hop), and the one-hop peers, as far as --paths keeps them (REPEATER in --paths stands for REPEATER_1HOP)."""
    out = ["DIRECT"]
    if "REPEATER" in paths:
        out.append("REPEATER_1HOP")
        if baseline_bin:
            out.append("REPEATER_1HOP_BEFORE")
    if "NIO_1TO1" in paths:
        out.append("NIO_1TO1")
    return out + [p for p in ENDPOINT_PEERS if p in paths]


def hol_paths(paths: list[str]) -> list[str]:
    return [p for p in paths if p in HOL_PATHS]


def sessions_paths(paths: list[str]) -> list[str]:
    return [p for p in paths if p in SESSIONS_PATHS]
