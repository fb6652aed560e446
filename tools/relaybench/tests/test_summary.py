import pytest

from relaybench.results import ConnRateRound, Failure, GbpsRound, HOLRound, LatencySummary, PingPongRound
from relaybench.summary import (failed_paths, median, median_by_process, summarize_connrate, summarize_hol,
                                summarize_pingpong, summarize_throughput)
from relaybench.results import PingPongResult


def rt(p50, p99=None, p999=None, obs=100, cpu=None, by=None):
    return PingPongRound(p50=p50, p99=p99 if p99 is not None else p50 * 2, p999=p999 if p999 is not None else p50 * 3,
                         observations=obs, relay_cpu_us=cpu, relay_cpu_us_by_process=by)


def test_median_ignores_missing_values_and_is_none_without_any():
    assert median([3, None, 1, 2]) == 2
    assert median([1, 2, 3, 4]) == 2.5
    assert median([None, None]) is None
    assert median([]) is None


def test_pingpong_summary_is_the_median_of_each_percentile_over_good_rounds():
    raw = {"X": [rt(10, 20, 30, obs=5), Failure("boom"), rt(30, 10, 50, obs=7), rt(20, 40, 10, obs=1)]}
    s = summarize_pingpong(raw)["X"]
    assert isinstance(s, LatencySummary)
    assert (s.p50, s.p99, s.p999) == (20, 20, 30)  # each percentile's own median, not one round's
    assert s.rounds == 3
    assert s.observations == 13


def test_a_path_without_a_good_round_keeps_the_last_reason():
    s = summarize_pingpong({"X": [Failure("first"), Failure("sockperf received nothing")], "Y": []})
    assert s["X"] == Failure("sockperf received nothing")
    assert s["Y"] == Failure("not run")


def test_relay_cpu_is_the_median_over_the_rounds_that_measured_it():
    raw = {"R": [rt(1, cpu=10.0, by={"repeaterd": 4.0, "muxcat": 6.0}),
                 rt(1, cpu=30.0, by={"repeaterd": 20.0, "muxcat": 10.0}),
                 rt(1, cpu=20.0, by={"repeaterd": 12.0, "muxcat": 8.0}),
                 rt(1)],
           "D": [rt(1), rt(2)]}
    s = summarize_pingpong(raw)
    assert s["R"].relay_cpu_us == 20.0
    assert s["R"].relay_cpu_us_by_process == {"repeaterd": 12.0, "muxcat": 8.0}
    assert s["D"].relay_cpu_us is None and s["D"].relay_cpu_us_by_process is None


def test_median_by_process_keeps_first_seen_order_and_missing_labels():
    rounds = [rt(1, by={"a": 1.0}), rt(1, by={"b": 5.0, "a": 3.0})]
    assert list(median_by_process(rounds)) == ["a", "b"]
    assert median_by_process(rounds) == {"a": 2.0, "b": 5.0}
    assert median_by_process([rt(1)]) is None


def test_connrate_summary_sums_failures_and_takes_the_median_rate():
    raw = {"X": [ConnRateRound(connections=100, per_second=50.0, failed=1),
                 ConnRateRound(connections=300, per_second=150.0, failed=2, relay_cpu_us=200.0),
                 Failure("no connection completed")]}
    s = summarize_connrate(raw)["X"]
    assert s.per_second == 100.0
    assert s.failed == 3
    assert s.relay_cpu_us == 200.0


def test_throughput_and_hol_summaries():
    t = summarize_throughput({"X": [GbpsRound(gbps=1.0, relay_cpu_ms_per_gib=900.0), GbpsRound(gbps=3.0)],
                              "Y": [Failure("iperf3: busy")]})
    assert t["X"].gbps == 2.0 and t["X"].relay_cpu_ms_per_gib == 900.0
    assert isinstance(t["Y"], Failure)
    h = summarize_hol({"X": [HOLRound(alone_p50=1, alone_p99=2, p50=3, p99=4, p999=5, bulk_MBps=None),
                             HOLRound(alone_p50=3, alone_p99=4, p50=5, p99=6, p999=7, bulk_MBps=100.0)]})
    assert (h["X"].alone_p50, h["X"].p99, h["X"].bulk_MBps) == (2, 5, 100.0)


def test_failed_paths_names_measurement_and_path():
    raw = {"DIRECT": [rt(10)], "NIO_1TO1": [Failure("nothing listens")]}
    r = PingPongResult(raw=raw, summary=summarize_pingpong(raw), seconds_per_round=1, rounds=1)
    assert failed_paths("latency", r) == ["latency/NIO_1TO1"]


def test_transfer_summary_takes_the_median_endpoint_cpu_and_older_rounds_have_none():
    from relaybench.results import TransferRound
    from relaybench.summary import summarize_transfers
    raw = {"REPEATER_ACCESSLOG": [TransferRound(put_s=1, put_mibps=32, get_s=1, get_mibps=32, endpoint_cpu_s=0.5),
                                  TransferRound(put_s=2, put_mibps=16, get_s=1, get_mibps=32, endpoint_cpu_s=0.7),
                                  TransferRound(put_s=1, put_mibps=32, get_s=2, get_mibps=16, endpoint_cpu_s=0.6)],
           "OLD": [TransferRound(put_s=1, put_mibps=32)]}
    s = summarize_transfers(raw)
    assert s["REPEATER_ACCESSLOG"].endpoint_cpu_s == 0.6
    assert s["REPEATER_ACCESSLOG"].put_mibps == 32
    assert s["OLD"].endpoint_cpu_s is None and s["OLD"].get_mibps is None


def test_session_costs_are_per_session_medians():
    from relaybench.results import SessionCostRound
    from relaybench.summary import summarize_session_costs
    raw = {"REPEATER": [SessionCostRound(sessions=200, wall_s=8.0, endpoint_cpu_s=0.4),
                        SessionCostRound(sessions=200, wall_s=10.0, endpoint_cpu_s=0.6),
                        Failure("boom"),
                        SessionCostRound(sessions=200, wall_s=6.0, endpoint_cpu_s=0.5)],
           "X": [Failure("no")]}
    s = summarize_session_costs(raw)
    assert s["REPEATER"].wall_ms_per_session == 40.0
    assert s["REPEATER"].endpoint_cpu_us_per_session == pytest.approx(2500.0)
    assert s["X"] == Failure("no")
