"""Where a run writes: docs/ only for a whole run (docs/BENCHMARKS.md names one run, issue 46)."""
import os
from types import SimpleNamespace

from relaybench.catalog import ALL_MEASUREMENTS, ROOT
from relaybench.cli import default_out, parser


def args(**kw):
    base = dict(quick=False, paths=None, debug=False)
    base.update(kw)
    return SimpleNamespace(**base)


def test_only_a_whole_run_writes_docs():
    assert default_out(args(), list(ALL_MEASUREMENTS)) == os.path.join(ROOT, "docs")


def test_a_narrowed_run_goes_under_build():
    partial = os.path.join(ROOT, ".build", "bench-partial")
    assert default_out(args(), ["latency"]) == partial
    assert default_out(args(paths="REPEATER,NIO_1TO1"), list(ALL_MEASUREMENTS)) == partial
    assert default_out(args(debug=True), list(ALL_MEASUREMENTS)) == partial
    assert default_out(args(quick=True), ["latency"]) == os.path.join(ROOT, ".build", "bench-quick")


def test_merge_is_gone():
    names = {a.dest for a in parser("")._actions}
    assert "merge" not in names
