"""Section 11's parsers and table, on captured output (wrk 4.1.0, perf stat -x, on Linux 6.x)."""
import pytest

from relaybench.measure.sessions import parse_perf, parse_wrk, syscalls_per_request
from relaybench.results import Failure, SessionsResult, SessionsLevel, SessionsRound, measurement_from_json, to_json
from relaybench.summary import summarize_sessions
from relaybench.tables import sessions_table

WRK = """Running 4s test @ http://127.0.0.1:40123/1k
  2 threads and 512 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    19.81ms    3.02ms  45.11ms   86.51%
    Req/Sec    12.95k     1.03k   14.88k    71.25%
  103296 requests in 4.01s, 125.89MB read
Requests/sec:  25759.31
Transfer/sec:     31.39MB
"""

WRK_ERRORS = """Running 1s test @ http://127.0.0.1:40123/1k
  2 threads and 8 connections
  100 requests in 1.00s, 12.00KB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:    100.00
"""

PERF = """# started on Mon Dec  7 15:05:30 2026

120000,,raw_syscalls:sys_enter,4010000000,100.00,,
40000,,syscalls:sys_enter_read,4010000000,100.00,,
2000,,syscalls:sys_enter_readv,4010000000,100.00,,
<not counted>,,syscalls:sys_enter_recvfrom,0,100.00,,
41000,,syscalls:sys_enter_write,4010000000,100.00,,
1000,,syscalls:sys_enter_writev,4010000000,100.00,,
6000,,syscalls:sys_enter_epoll_wait,4010000000,100.00,,
"""


def test_parse_wrk():
    assert parse_wrk(WRK) == (103296, 25759.31, 0)


def test_wrk_socket_errors_and_bad_responses_are_counted():
    assert parse_wrk(WRK_ERRORS) == (100, 100.0, 10)


def test_wrk_without_a_result_is_an_error():
    with pytest.raises(RuntimeError, match="no result"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_parse_perf_skips_comments_and_events_not_counted():
    counts = parse_perf(PERF)
    assert counts["raw_syscalls:sys_enter"] == 120000
    assert counts["syscalls:sys_enter_read"] == 40000
    assert "syscalls:sys_enter_recvfrom" not in counts


def test_syscalls_per_request_per_hop_by_group():
    s = syscalls_per_request(parse_perf(PERF), requests=10000, hops=2)
    assert s == pytest.approx({"syscalls": 6.0, "reads": 2.1, "writes": 2.1, "epoll_waits": 0.3})
    assert syscalls_per_request({}, requests=10000, hops=2) == {}, "perf counted nothing: no figures, not zeros"


def test_sessions_table_reads_against_haproxy_x2_per_hop():
    raw = {
        "REPEATER": [SessionsRound(requests=100, per_second=30000, writes=1.04, relay_cpu_us=30.0),
                     SessionsRound(requests=100, per_second=32000, writes=1.06, relay_cpu_us=34.0)],
        "HAPROXYx2": [SessionsRound(requests=100, per_second=25000, writes=2.0, relay_cpu_us=40.0)],
        "NIO_1TO1x2": [Failure("wrk printed no result")],
    }
    summary = summarize_sessions(raw)
    assert summary["REPEATER"].per_second == 31000 and summary["REPEATER"].relay_cpu_us == 32.0
    rows = sessions_table(summary)
    rep = next(r for r in rows if r.startswith("| REPEATER "))
    assert "| 31,000 | 1.24× | 16.00 | 0.80× |" in rep
    assert any(r.startswith("| NIO_1TO1x2 ") and "wrk printed no result" in r for r in rows)


def test_a_sessions_result_survives_json_and_back():
    r = SessionsResult(levels={"c64": SessionsLevel(
        raw={"REPEATER": [SessionsRound(requests=5, per_second=5.0, reads=1.1)]},
        summary=summarize_sessions({"REPEATER": [SessionsRound(requests=5, per_second=5.0, reads=1.1)]}))},
        seconds_per_round=4, rounds=1, response_bytes=1024)
    back = measurement_from_json("sessions", to_json(r))
    assert back == r
