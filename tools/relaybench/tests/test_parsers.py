import pytest

from relaybench.measure.endpoint import parse_pingpong
from relaybench.measure.latency import parse_sockperf
from relaybench.measure.micro import condense
from relaybench.measure.throughput import GiB, config_name, cpu_ms_per_gib, parse_iperf3
from relaybench.paths import render
from relaybench.plots import bar_groups

SOCKPERF = """sockperf: Summary: Round trip is 23.456 usec
sockperf: Total 1234 observations; each percentile contains 12.34 observations
sockperf: ---> <MAX> observation =  400.123
sockperf: ---> percentile 99.999 =  300.000
sockperf: ---> percentile 99.990 =  250.000
sockperf: ---> percentile 99.900 =  120.500
sockperf: ---> percentile 99.000 =   45.250
sockperf: ---> percentile 90.000 =   30.000
sockperf: ---> percentile 50.000 =   23.125
sockperf: ---> <MIN> observation =   15.000
"""


def test_parse_sockperf():
    r = parse_sockperf(SOCKPERF)
    assert (r.p50, r.p99, r.p999, r.observations) == (23.125, 45.25, 120.5, 1234)


def test_sockperf_that_received_nothing_is_an_error_although_it_exits_0():
    with pytest.raises(RuntimeError, match="received nothing"):
        parse_sockperf("sockperf: No messages were received from the server. Is the server down?\n")


def test_parse_iperf3_and_cpu_per_gib():
    r, received = parse_iperf3({"end": {"sum_received": {"bits_per_second": 9.5e9, "bytes": 2 * GiB}}})
    assert r.gbps == 9.5 and received == 2 * GiB
    assert cpu_ms_per_gib({"nio-relay": 1.0}, 2 * GiB) == 500.0
    assert cpu_ms_per_gib({"a": 0.5, "b": 0.5}, GiB) == 1000.0
    assert cpu_ms_per_gib(None, GiB) is None
    assert cpu_ms_per_gib({"a": 1.0}, 0) is None
    assert config_name(1, False) == "1 stream, client→server"
    assert config_name(8, True) == "8 streams, server→client (-R)"


def test_parse_benchkit_pingpong():
    r = parse_pingpong({"p50_us": 20.0, "p99_us": 40.0, "p999_us": 90.0, "mean_us": 22.0, "count": 1000})
    assert (r.p50, r.p99, r.p999, r.mean, r.observations) == (20.0, 40.0, 90.0, 22.0, 1000)


def test_condense_micro_benchmarks():
    md = """### FrameDecode
| Metric | p0 | p25 | p50 | p75 | p99 | Samples |
|---|---|---|---|---|---|---|
| Time (wall clock) (μs) * | 1 | 2 | 3 | 4 | 5 | 100 |
| Malloc (total) * | 0 | 0 | 7 | 0 | 0 | 100 |
### Other
| Time (wall clock) (ms) * | 1 | 2 | 9 | 4 | 5 | 10 |
"""
    lines = condense(md).splitlines()
    assert lines[2] == "| FrameDecode | 3 μs | 7 | 100 |"
    assert lines[3] == "| Other | 9 ms | — | 10 |"


def test_templates_fill_every_name():
    cfg = render("haproxy.cfg", front=1000, target=2000, splice_options="    option splice-request\n")
    assert "bind 127.0.0.1:1000" in cfg and "server s1 127.0.0.1:2000" in cfg
    assert "option splice-request\nfrontend fe" in cfg and cfg.count("option splice-request") == 1
    assert cfg.count("127.0.0.1:1000") == 1
    conf = render("nginx.conf", front=1000, target=2000, dir="/tmp/x")
    assert conf.count("/tmp/x") == 2
    assert "listen 127.0.0.1:1000 reuseport" in conf and "proxy_pass 127.0.0.1:2000;" in conf
    assert "pid /tmp/x/nginx.pid;" in conf and "events { worker_connections 9000; multi_accept on; }" in conf
    with pytest.raises(KeyError):
        render("nginx.conf", front=1000)


def test_bar_groups_collects_paths_in_first_seen_order():
    assert bar_groups({"p50": {"A": 1, "B": 2}, "p99": {"C": 3, "A": 4}}) == (["p50", "p99"], ["A", "B", "C"])
