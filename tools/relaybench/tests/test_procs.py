import pytest

from relaybench import procs
from relaybench.procs import parse_stat, per_operation_us, placed, tree_ticks

# /proc/PID/stat of a process whose name holds a space and a parenthesis; ppid 7, utime 100, stime 20,
# cutime 3, cstime 4.
STAT = "42 (nio relay) x) S 7 42 42 0 -1 4194560 500 0 0 0 100 20 3 4 20 0 2 0 100 1000 50"


def test_parse_stat_counts_fields_after_the_last_parenthesis():
    assert parse_stat(STAT) == (7, 127)


def test_tree_ticks_counts_roots_and_descendants_once():
    stats = {1: (0, 1000), 10: (1, 5), 11: (10, 7), 12: (10, 11), 20: (1, 100), 30: (11, 13)}
    assert tree_ticks(stats, [10]) == 5 + 7 + 11 + 13
    assert tree_ticks(stats, [10, 11]) == 36  # 11 is under 10: not counted twice
    assert tree_ticks(stats, [99]) == 0  # gone
    assert tree_ticks(stats, [20, 12]) == 111


def test_per_operation_us():
    assert per_operation_us({"repeaterd": 0.2, "muxcat": 0.1}, 10_000) == pytest.approx({"repeaterd": 20.0, "muxcat": 10.0})
    assert per_operation_us({"x": 1.0}, 0) == {}


def test_placed_pins_and_schedules():
    assert placed(["a"], None) == ["a"]
    assert placed(["a"], "nice") == ["nice", "-n", "-10", "a"]
    assert placed(["a"], "0", rt_priority=10) == ["taskset", "-c", "0", "chrt", "-f", "10", "a"]
    assert placed(["a"], "0", rt_priority=0) == ["taskset", "-c", "0", "a"]


def test_placed_follows_rt_priority(monkeypatch):
    monkeypatch.setattr(procs, "RT_PRIORITY", 0)
    assert placed(["a"], "1") == ["taskset", "-c", "1", "a"]


def test_threads_cpu_seconds_sees_a_millisecond_of_work():
    import os
    import time
    from relaybench.procs import threads_cpu_seconds
    before = threads_cpu_seconds(os.getpid())
    t = time.process_time()
    while time.process_time() - t < 0.005:  # 5 ms of CPU, however busy the machine is
        pass
    spent = threads_cpu_seconds(os.getpid()) - before
    assert 0.0045 <= spent < 1.0
