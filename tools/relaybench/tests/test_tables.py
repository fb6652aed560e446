from relaybench.results import ConnRateSummary, Failure, LatencySummary, ThroughputSummary
from relaybench.tables import (added_over_direct, best_peer, connrate_table, floor_note, floor_ratio, fmt,
                               latency_table, ratio, throughput_table)


def lat(p50, p99, cpu=None, by=None):
    return LatencySummary(p50=p50, p99=p99, p999=p99 * 2, rounds=1, observations=10, relay_cpu_us=cpu,
                          relay_cpu_us_by_process=by)


def test_fmt():
    assert fmt(None) == "—"
    assert fmt("failed") == "failed"
    assert fmt(1234.567) == "1,234.6"
    assert fmt(1234.567, 0) == "1,235"
    assert fmt(2.5, 2) == "2.50"


def test_ratio():
    assert ratio(3, 2) == "1.50×"
    assert ratio(1, 3, 3) == "0.333×"
    assert ratio(None, 2) == "—"
    assert ratio(2, None) == "—"
    assert ratio(2, 0) == "—"


def test_best_peer_chooses_among_peers_only():
    values = {"DIRECT": 1.0, "NIO_1TO1": 2.0, "HAPROXY": 5.0, "NGINX": 4.0, "SOCAT": None, "REPEATER": 3.0}
    assert best_peer(values, lower_is_better=True) == (4.0, "NGINX")
    assert best_peer(values, lower_is_better=False) == (5.0, "HAPROXY")
    assert best_peer({"DIRECT": 1.0}, True) == (None, None)


def test_added_over_direct():
    s = {"DIRECT": lat(20, 40), "HAPROXY": lat(50, 100), "X": Failure("no")}
    added = added_over_direct(s)
    assert (added["HAPROXY"].p50, added["HAPROXY"].p99) == (30, 60)
    assert "X" not in added
    assert added_over_direct({"HAPROXY": lat(50, 100)})["HAPROXY"].p50 is None  # no DIRECT, nothing to subtract


def test_floor_ratio_divides_by_the_floor_with_as_many_hops():
    cpu = {"REPEATER": 40.0, "NIO_1TO1x2": 27.2, "HAPROXY": 12.0, "NIO_1TO1": 13.6, "DIRECT": None}
    assert floor_ratio(cpu, "REPEATER") == "1.47×"
    assert floor_ratio(cpu, "HAPROXY") == "0.88×"
    assert floor_ratio(cpu, "NIO_1TO1") == "floor"
    assert floor_ratio(cpu, "DIRECT") == "—"
    assert floor_ratio({"REPEATER": 40.0}, "REPEATER") == "—"  # floor not measured


def cells(line):
    """The cells of a markdown table row (empty ones too)."""
    return [c.strip() for c in line.strip()[1:-1].split("|")]


def test_latency_table_rows_and_best_peer():
    s = {"DIRECT": lat(20, 40), "REPEATER": lat(120, 240, cpu=40.0), "NIO_1TO1x2": lat(80, 160, cpu=27.2),
         "HAPROXY": lat(50, 100, cpu=12.0), "NIO_1TO1": lat(55, 110, cpu=13.6), "NGINX": lat(45, 120, cpu=11.0),
         "SOCAT": Failure("socat: address in use")}
    lines, added, bp50, bp99 = latency_table(s)
    assert (bp50, bp99) == (25, 60)  # NGINX's p50, HAPROXY's p99: each column's own best; NIO is no peer
    header = cells(lines[0])
    rows = {cells(line)[0]: dict(zip(header, cells(line))) for line in lines[2:]}
    assert rows["REPEATER"]["added p50"] == "100.0"
    assert rows["REPEATER"]["added p50 ÷ best peer's"] == "4.00×"
    assert rows["REPEATER"]["relay CPU ÷ NIO floor's"] == "1.47×"
    assert rows["HAPROXY"]["relay CPU ÷ NIO floor's"] == "0.88×"
    assert rows["NIO_1TO1"]["relay CPU ÷ NIO floor's"] == "floor"
    assert rows["DIRECT"]["relay CPU µs per round trip"] == "—"
    assert "failed: socat: address in use" in lines[-1]
    assert len(cells(lines[-1])) == len(header)  # a failed row spans the table
    assert len(cells(lines[1])) == len(header)


def test_connrate_table_and_throughput_table():
    s = {"DIRECT": ConnRateSummary(per_second=6000.0, failed=0), "HAPROXY": ConnRateSummary(per_second=3000.0, failed=0),
         "NIO_1TO1": ConnRateSummary(per_second=2000.0, failed=1, relay_cpu_us=150.0)}
    s["SOCAT"] = Failure("no connection completed")
    lines, bp, bpn = connrate_table(s)
    assert (bp, bpn) == (3000.0, "HAPROXY")
    assert all(len(cells(line)) == len(cells(lines[0])) for line in lines[1:6])
    row = cells(lines[4])
    assert row[:7] == ["NIO_1TO1", "1", "2,000", "0.33×", "0.67×", "floor", "1"]
    t = {"DIRECT": ThroughputSummary(gbps=10.0), "NIO_1TO1": ThroughputSummary(gbps=8.0, relay_cpu_ms_per_gib=500.0),
         "HAPROXY": ThroughputSummary(gbps=6.0, relay_cpu_ms_per_gib=400.0)}
    t["SOCAT"] = Failure("iperf3: busy")
    lines, bp, bpn = throughput_table(t)
    assert bpn == "HAPROXY"
    assert all(len(cells(line)) == len(cells(lines[0])) for line in lines[1:6])
    haproxy = cells([line for line in lines if line.startswith("| HAPROXY")][0])
    assert haproxy[5] == "0.75×"  # Gbit/s ÷ NIO_1TO1's
    assert haproxy[7] == "0.80×"  # CPU per GiB ÷ NIO_1TO1's


def test_floor_note_reads_each_repeater_process_against_nio_1to1_and_both_against_x2():
    s = {"REPEATER": lat(1, 2, cpu=39.6, by={"repeaterd": 19.8, "muxcat": 19.8}),
         "NIO_1TO1x2": lat(1, 2, cpu=27.2), "NIO_1TO1": lat(1, 2, cpu=13.6), "HAPROXY": lat(1, 2, cpu=12.0)}
    note = floor_note(s, "round trip")
    assert "`repeaterd` 19.8 µs (1.46× NIO_1TO1)" in note
    assert "`muxcat --forward` 19.8 µs (1.46× NIO_1TO1)" in note
    assert "both hops 39.6 µs (1.46× NIO_1TO1x2)" in note
    assert "HAPROXY 12.0 µs (0.88× NIO_1TO1)" in note
    assert floor_note({"REPEATER": lat(1, 2, cpu=39.6)}, "round trip") is None


def test_floor_note_one_hop_repeater_is_repeaterd_alone():
    s = {"REPEATER_1HOP": lat(1, 2, cpu=20.4), "NIO_1TO1": lat(1, 2, cpu=13.6)}
    assert "REPEATER_1HOP: `repeaterd` 20.4 µs (1.50× NIO_1TO1)" in floor_note(s, "round trip")
