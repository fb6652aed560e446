import json

from relaybench.results import (ConnRateResult, EndpointResult, Failure, LatencySummary, MeasurementFailure,
                                PingPongResult, PingPongRound, RunRecord, ScaleResult, Target, ThroughputResult,
                                measurement_from_json, to_json)
from relaybench.summary import summarize_pingpong


def test_to_json_leaves_out_none_and_writes_failures_as_errors():
    raw = {"DIRECT": [PingPongRound(p50=1.0, p99=2.0, p999=3.0, observations=4)], "X": [Failure("boom")]}
    r = PingPongResult(raw=raw, summary=summarize_pingpong(raw), seconds_per_round=1, rounds=1, burst=1)
    j = to_json(r)
    assert j["raw"]["DIRECT"] == [{"p50": 1.0, "p99": 2.0, "p999": 3.0, "observations": 4}]
    assert j["summary"]["X"] == {"error": "boom"}
    assert "relay_cpu_us" not in j["summary"]["DIRECT"]
    assert "ran_at" not in j


def test_a_result_survives_json_and_back():
    raw = {"NIO_1TO1": [PingPongRound(p50=1.0, p99=2.0, p999=3.0, observations=4, relay_cpu_us=13.6,
                                      relay_cpu_us_by_process=None)]}
    r = PingPongResult(raw=raw, summary=summarize_pingpong(raw), seconds_per_round=1, rounds=1, burst=2, ran_at="now")
    back = measurement_from_json("nagle", json.loads(json.dumps(to_json(r))))
    assert back == r


def test_older_results_json_is_read():
    # As tools/bench wrote it before the package (docs/bench/results.json of session 3), trimmed.
    data = {"started": "2026-11-27 08:29", "command": "tools/bench", "legacy_note": "n", "notes": [],
            "baseline_bin": None, "load": ["1 1 1", "2 2 2"],
            "results": {
                "connrate": {"raw": {"DIRECT": [{"connections": 13180, "failed": 0, "first_error": "",
                                                 "per_second": 6587.9, "seconds": 2.0}]},
                             "summary": {"DIRECT": {"per_second": 6587.9, "failed": 0}, "SOCAT": {"error": None}},
                             "seconds_per_round": 2, "rounds": 3, "concurrency": 8, "ran_at": "2026-11-27 08:29"},
                "throughput": {"configs": {"1 stream, client→server": {"raw": {}, "summary": {"DIRECT": {"gbps": 13.05}}}},
                               "seconds_per_round": 4, "rounds": 3},
                "scale": {"failed": 0, "latency_alone": {"p50_us": 187.1}, "latency_among": {"p50_us": 196.1},
                          "open_seconds": 1.26, "opened_per_second": 7923.4, "rss_after_kib": 77100,
                          "rss_before_kib": 18452, "rss_per_session_bytes": 6005.6, "sessions": 10000},
                "endpoint": {"paths": ["DIRECT"], "parts": {"latency": {"error": "x"}}, "bin": "/b"},
                "micro": {"error": "no benchmark plugin"},
                "targets": [{"target": "t", "measured": "m", "met": False}],
            }}
    rec = RunRecord.from_json(data, ["connrate", "throughput", "scale", "endpoint", "micro"])
    cr = rec.results["connrate"]
    assert isinstance(cr, ConnRateResult) and cr.summary["DIRECT"].per_second == 6587.9
    assert cr.summary["SOCAT"] == Failure("None")
    assert isinstance(rec.results["throughput"], ThroughputResult)
    assert isinstance(rec.results["scale"], ScaleResult) and rec.results["scale"].sessions == 10000
    ep = rec.results["endpoint"]
    assert isinstance(ep, EndpointResult) and isinstance(ep.parts.latency, MeasurementFailure)
    assert ep.parts.connrate is None and ep.summaries() == []
    assert isinstance(rec.results["micro"], MeasurementFailure)
    assert rec.targets == [Target("t", "m", False)]
    assert rec.to_json()["results"]["targets"] == [{"target": "t", "measured": "m", "met": False}]


def test_a_tls_result_with_short_sessions_survives_json_and_back():
    from relaybench.results import SessionCostRound, TLSResult, TLSSessions, TLSSize, TransferRound
    from relaybench.summary import summarize_session_costs, summarize_transfers
    raw = {"REPEATER": [TransferRound(put_s=1.0, put_mibps=32.0, get_s=1.0, get_mibps=32.0, endpoint_cpu_s=0.25)]}
    costs = {"REPEATER_ACCESSLOG": [SessionCostRound(sessions=10, wall_s=0.5, endpoint_cpu_s=0.03)]}
    r = TLSResult(sizes={"32 MiB": TLSSize(raw=raw, summary=summarize_transfers(raw))}, rounds=1, paths=["REPEATER"],
                  sessions=TLSSessions(raw=costs, summary=summarize_session_costs(costs)), ran_at="now")
    back = measurement_from_json("tls", json.loads(json.dumps(to_json(r))))
    assert back == r
    older = to_json(r)
    del older["sessions"]
    assert measurement_from_json("tls", older).sessions is None
