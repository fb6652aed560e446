"""Typed results: one dataclass per round, per path summary and per measurement.

results.json keeps the shape it always had (so `--report-only` reads older files): a
dataclass is written as an object of its fields, leaving out the ones that are None, and a path or a
round that produced no number is `{"error": "..."}` (`Failure`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Union


@dataclass
class Failure:
    """A round or a path that produced no number, and why."""
    error: str


# ----------------------------------------------------------------------------- rounds

@dataclass(kw_only=True)
class PingPongRound:
    """One ping-pong round (sockperf or benchkit pingpong): round-trip percentiles in µs."""
    p50: float
    p99: float
    p999: float
    observations: int
    mean: float | None = None
    relay_cpu_us: float | None = None  # the path's relay processes' CPU per round trip
    relay_cpu_us_by_process: dict[str, float] | None = None  # the same per relay process


@dataclass(kw_only=True)
class GbpsRound:
    """One iperf3 run."""
    gbps: float
    relay_cpu_ms_per_gib: float | None = None  # relay CPU per GiB received


@dataclass(kw_only=True)
class ConnRateRound:
    """One `benchkit connrate` run."""
    connections: int
    per_second: float
    failed: int = 0
    first_error: str = ""
    seconds: float | None = None
    relay_cpu_us: float | None = None  # per connection
    relay_cpu_us_by_process: dict[str, float] | None = None


@dataclass(kw_only=True)
class TransferRound:
    """One runtime-client put (and get, unless the file is larger than a message may be)."""
    put_s: float
    put_mibps: float
    get_s: float | None = None
    get_mibps: float | None = None
    # runtime-manager's CPU seconds over the put and the get (its process, read from /proc).
    endpoint_cpu_s: float | None = None


@dataclass(kw_only=True)
class SessionCostRound:
    """One round of short TLS sessions (`runtime-client policy-hash` each, one after the other)."""
    sessions: int
    wall_s: float
    # runtime-manager's CPU seconds over the round (its process, read from /proc).
    endpoint_cpu_s: float


@dataclass(kw_only=True)
class SessionCostSummary:
    sessions: int
    wall_ms_per_session: float | None
    endpoint_cpu_us_per_session: float | None


@dataclass(kw_only=True)
class TLSSessions:
    """Section 5's short sessions: what a session costs runtime-manager (a handshake, a request, its log)."""
    raw: dict[str, list]
    summary: dict[str, SessionCostSummary | Failure]


@dataclass(kw_only=True)
class DelayedPutRound:
    """One put through the delay relay."""
    put_s: float
    put_mibps: float
    mib: int


@dataclass(kw_only=True)
class HOLRound:
    """A ping-pong alone, then beside a bulk session on the same path."""
    alone_p50: float
    alone_p99: float
    p50: float
    p99: float
    p999: float
    bulk_MBps: float | None = None


@dataclass(kw_only=True)
class SessionsRound:
    """One wrk run through a path (section 11); the system calls are per request per hop (perf), and
    absent where perf could not count."""
    requests: int
    per_second: float
    errors: int = 0
    syscalls: float | None = None
    reads: float | None = None
    writes: float | None = None
    epoll_waits: float | None = None
    relay_cpu_us: float | None = None  # per request, all the path's relay processes
    relay_cpu_us_by_process: dict[str, float] | None = None


Round = Union[PingPongRound, GbpsRound, ConnRateRound, TransferRound, DelayedPutRound, HOLRound, SessionsRound]


# ----------------------------------------------------------------------------- per-path summaries (medians over rounds)

@dataclass(kw_only=True)
class LatencySummary:
    p50: float | None
    p99: float | None
    p999: float | None
    rounds: int
    observations: int
    relay_cpu_us: float | None = None
    relay_cpu_us_by_process: dict[str, float] | None = None
    mean: float | None = None


@dataclass(kw_only=True)
class ThroughputSummary:
    gbps: float | None
    relay_cpu_ms_per_gib: float | None = None


@dataclass(kw_only=True)
class ConnRateSummary:
    per_second: float | None
    failed: int
    relay_cpu_us: float | None = None
    relay_cpu_us_by_process: dict[str, float] | None = None


@dataclass(kw_only=True)
class TransferSummary:
    put_mibps: float | None
    get_mibps: float | None
    put_s: float | None
    get_s: float | None
    endpoint_cpu_s: float | None = None


@dataclass(kw_only=True)
class DelayedPutSummary:
    put_mibps: float | None
    mib: int | None


@dataclass(kw_only=True)
class HOLSummary:
    alone_p50: float | None
    alone_p99: float | None
    p50: float | None
    p99: float | None
    p999: float | None
    bulk_MBps: float | None


@dataclass(kw_only=True)
class SessionsSummary:
    per_second: float | None
    errors: int
    syscalls: float | None = None
    reads: float | None = None
    writes: float | None = None
    epoll_waits: float | None = None
    relay_cpu_us: float | None = None


# ----------------------------------------------------------------------------- measurements

@dataclass(kw_only=True)
class Measurement:
    """What every measurement's result carries."""
    ran_at: str | None = None  # the run it came from (UTC)

    def summaries(self) -> list[dict]:
        """Every per-path table of this result (the no-number check walks them)."""
        return []


@dataclass(kw_only=True)
class MeasurementFailure(Measurement):
    """A measurement that failed as a whole."""
    error: str


@dataclass(kw_only=True)
class PingPongResult(Measurement):
    """Sections 1, 2 and 10 (a): ping-pong rounds per path."""
    raw: dict[str, list]
    summary: dict[str, LatencySummary | Failure]
    seconds_per_round: float
    rounds: int
    burst: int | None = None
    warmup_seconds: float | None = None
    warmup_connection: bool | None = None
    size: int | None = None

    def summaries(self):
        return [self.summary]


@dataclass(kw_only=True)
class ThroughputConfig:
    raw: dict[str, list]
    summary: dict[str, ThroughputSummary | Failure]


@dataclass(kw_only=True)
class ThroughputResult(Measurement):
    """Section 3: per iperf3 configuration ("1 stream, client→server", …)."""
    configs: dict[str, ThroughputConfig]
    seconds_per_round: float
    rounds: int

    def summaries(self):
        return [c.summary for c in self.configs.values()]


@dataclass(kw_only=True)
class ConnRateResult(Measurement):
    """Sections 4 and 10 (b)."""
    raw: dict[str, list]
    summary: dict[str, ConnRateSummary | Failure]
    seconds_per_round: float
    rounds: int
    concurrency: int

    def summaries(self):
        return [self.summary]


@dataclass(kw_only=True)
class TLSSize:
    raw: dict[str, list]
    summary: dict[str, TransferSummary | Failure]


@dataclass(kw_only=True)
class TLSResult(Measurement):
    """Section 5: per file size ("32 MiB", …)."""
    sizes: dict[str, TLSSize]
    rounds: int
    paths: list[str]
    note: str | None = None
    sessions: TLSSessions | None = None

    def summaries(self):
        return [s.summary for s in self.sizes.values()] + ([self.sessions.summary] if self.sessions else [])


@dataclass(kw_only=True)
class RTTPoint:
    raw: dict[str, list]
    summary: dict[str, DelayedPutSummary | Failure]


@dataclass(kw_only=True)
class RTTResult(Measurement):
    """Section 6: per round-trip time in ms ("0", "10", …)."""
    rtts: dict[str, RTTPoint]
    mib: int
    legacy_mib_at_high_rtt: int
    paths: list[str]

    def summaries(self):
        return [p.summary for p in self.rtts.values()]


@dataclass(kw_only=True)
class HOLResult(Measurement):
    """Section 7."""
    raw: dict[str, list]
    summary: dict[str, HOLSummary | Failure]
    seconds_per_round: float
    rounds: int

    def summaries(self):
        return [self.summary]


@dataclass(kw_only=True)
class SessionsLevel:
    raw: dict[str, list]
    summary: dict[str, SessionsSummary | Failure]


@dataclass(kw_only=True)
class SessionsResult(Measurement):
    """Section 11: per concurrency ("c64", "c512")."""
    levels: dict[str, SessionsLevel]
    seconds_per_round: float
    rounds: int
    response_bytes: int

    def summaries(self):
        return [lv.summary for lv in self.levels.values()]


@dataclass(kw_only=True)
class ScaleResult(Measurement):
    """Section 8: `benchkit scale`'s output."""
    sessions: int
    failed: int
    opened_per_second: float
    rss_before_kib: float
    rss_after_kib: float
    rss_per_session_bytes: float
    latency_alone: dict[str, float]  # p50_us, p99_us, p999_us
    latency_among: dict[str, float]
    open_seconds: float | None = None


@dataclass(kw_only=True)
class MicroResult(Measurement):
    """Section 9: the condensed table and ordo-one/benchmark's full output."""
    markdown: str
    full: str


@dataclass(kw_only=True)
class EndpointParts:
    latency: PingPongResult | MeasurementFailure | None = None
    connrate: ConnRateResult | MeasurementFailure | None = None


@dataclass(kw_only=True)
class EndpointResult(Measurement):
    """Section 10: one relay hop, (a) pinned ping-pong and (b) connection rate."""
    paths: list[str]
    parts: EndpointParts
    baseline_bin: str | None = None
    bin: str | None = None

    def summaries(self):
        return [p.summary for p in (self.parts.latency, self.parts.connrate)
                if isinstance(p, (PingPongResult, ConnRateResult))]


@dataclass
class Target:
    """One target of issue 5, as the report judged it (met: None when it could not be measured)."""
    target: str
    measured: str
    met: bool | None


# ----------------------------------------------------------------------------- JSON

def to_json(value: Any) -> Any:
    """A dataclass as a plain object of its fields (None fields left out), recursively."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value) if getattr(value, f.name) is not None}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def record(cls, data: dict):
    """A flat dataclass from an object, ignoring keys it does not know (older or newer files)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def outcome(cls, data: dict):
    """`cls` from an object, or a `Failure` if the object is one."""
    if "error" in data:
        return Failure(str(data.get("error")))
    return record(cls, data)


def per_path(cls, data: dict | None) -> dict:
    return {n: outcome(cls, v) for n, v in (data or {}).items()}


def per_path_rounds(cls, data: dict | None) -> dict:
    return {n: [outcome(cls, r) for r in v] for n, v in (data or {}).items()}


def _common(data: dict) -> dict:
    return {"ran_at": data.get("ran_at")}


def pingpong_from_json(data: dict) -> PingPongResult:
    return PingPongResult(
        raw=per_path_rounds(PingPongRound, data.get("raw")), summary=per_path(LatencySummary, data.get("summary")),
        seconds_per_round=data["seconds_per_round"], rounds=data["rounds"], burst=data.get("burst"),
        warmup_seconds=data.get("warmup_seconds"), warmup_connection=data.get("warmup_connection"),
        size=data.get("size"), **_common(data))


def connrate_from_json(data: dict) -> ConnRateResult:
    return ConnRateResult(
        raw=per_path_rounds(ConnRateRound, data.get("raw")), summary=per_path(ConnRateSummary, data.get("summary")),
        seconds_per_round=data["seconds_per_round"], rounds=data["rounds"], concurrency=data["concurrency"],
        **_common(data))


def _part(data: dict | None, parse):
    if data is None:
        return None
    if "error" in data and "summary" not in data:
        return MeasurementFailure(error=str(data["error"]), ran_at=data.get("ran_at"))
    return parse(data)


def measurement_from_json(name: str, data: dict) -> Measurement:
    """One measurement of results.json, as the type that `name` produces."""
    if "error" in data:
        return MeasurementFailure(error=str(data["error"]), **_common(data))
    if name in ("latency", "nagle"):
        return pingpong_from_json(data)
    if name == "throughput":
        return ThroughputResult(
            configs={k: ThroughputConfig(raw=per_path_rounds(GbpsRound, c.get("raw")),
                                         summary=per_path(ThroughputSummary, c.get("summary")))
                     for k, c in data["configs"].items()},
            seconds_per_round=data["seconds_per_round"], rounds=data["rounds"], **_common(data))
    if name == "connrate":
        return connrate_from_json(data)
    if name == "tls":
        return TLSResult(
            sizes={k: TLSSize(raw=per_path_rounds(TransferRound, s.get("raw")),
                              summary=per_path(TransferSummary, s.get("summary")))
                   for k, s in data["sizes"].items()},
            rounds=data["rounds"], paths=data.get("paths", []), note=data.get("note"),
            sessions=(TLSSessions(raw=per_path_rounds(SessionCostRound, data["sessions"].get("raw")),
                                  summary=per_path(SessionCostSummary, data["sessions"].get("summary")))
                      if isinstance(data.get("sessions"), dict) else None), **_common(data))
    if name == "rtt":
        return RTTResult(
            rtts={k: RTTPoint(raw=per_path_rounds(DelayedPutRound, p.get("raw")),
                              summary=per_path(DelayedPutSummary, p.get("summary")))
                  for k, p in data["rtts"].items()},
            mib=data["mib"], legacy_mib_at_high_rtt=data["legacy_mib_at_high_rtt"], paths=data["paths"],
            **_common(data))
    if name == "hol":
        return HOLResult(raw=per_path_rounds(HOLRound, data.get("raw")), summary=per_path(HOLSummary, data.get("summary")),
                         seconds_per_round=data["seconds_per_round"], rounds=data["rounds"], **_common(data))
    if name == "sessions":
        return SessionsResult(
            levels={k: SessionsLevel(raw=per_path_rounds(SessionsRound, lv.get("raw")),
                                     summary=per_path(SessionsSummary, lv.get("summary")))
                    for k, lv in data["levels"].items()},
            seconds_per_round=data["seconds_per_round"], rounds=data["rounds"],
            response_bytes=data["response_bytes"], **_common(data))
    if name == "scale":
        return record(ScaleResult, data)
    if name == "micro":
        return record(MicroResult, data)
    if name == "endpoint":
        parts = data.get("parts", {})
        return EndpointResult(
            paths=data.get("paths", []),
            parts=EndpointParts(latency=_part(parts.get("latency"), pingpong_from_json),
                                connrate=_part(parts.get("connrate"), connrate_from_json)),
            baseline_bin=data.get("baseline_bin"), bin=data.get("bin"), **_common(data))
    raise ValueError(f"unknown measurement {name!r}")


@dataclass
class RunRecord:
    """results.json as a whole: one run and what the report needs."""
    started: str
    command: str
    results: dict[str, Measurement]
    legacy_note: str = ""
    notes: list[str] = field(default_factory=list)
    baseline_bin: str | None = None
    load: list[str] = field(default_factory=lambda: ["?", "?"])
    targets: list[Target] = field(default_factory=list)

    def to_json(self) -> dict:
        results = {m: to_json(r) for m, r in self.results.items()}
        results["targets"] = [to_json(t) for t in self.targets]
        return {"started": self.started, "command": self.command, "results": results,
                "legacy_note": self.legacy_note, "notes": self.notes, "baseline_bin": self.baseline_bin,
                "load": self.load}

    @classmethod
    def from_json(cls, data: dict, measurements) -> "RunRecord":
        results = {m: measurement_from_json(m, v) for m, v in data.get("results", {}).items()
                   if m in measurements and isinstance(v, dict)}
        return cls(started=data.get("started", "?"), command=data.get("command", "tools/bench"), results=results,
                   legacy_note=data.get("legacy_note", ""), notes=list(data.get("notes", [])),
                   baseline_bin=data.get("baseline_bin"), load=list(data.get("load", ["?", "?"])),
                   targets=[Target(**t) for t in data.get("results", {}).get("targets", [])])
