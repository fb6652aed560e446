"""tools/bench's command line: parse, set up, run the measurements, check that every path gave a number,
write the report, plots and results.json."""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time

from . import measure, procs
from .catalog import ALL_MEASUREMENTS, DESCRIPTIONS, ROOT, select_paths
from .env import Env, build, install
from .procs import log
from .report import write_report
from .results import MeasurementFailure, RunRecord, ScaleResult
from .summary import failed_paths


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one round, no plots")
    ap.add_argument("--only", help="comma-separated measurements (see --list)")
    ap.add_argument("--skip", help="comma-separated measurements to leave out")
    ap.add_argument("--paths", help="comma-separated generic paths (DIRECT is always included)")
    ap.add_argument("--list", action="store_true", help="list the measurements and exit")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement (default 3)")
    ap.add_argument("--seconds", type=int, default=4, help="seconds per path per round (default 4)")
    ap.add_argument("--conn-concurrency", type=int, default=8)
    ap.add_argument("--rt-priority", type=int, default=10,
                    help="SCHED_FIFO priority for the pinned latency runs (0: normal scheduling)")
    ap.add_argument("--build-config", default="release", choices=["release", "debug"])
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in .build/CONFIG")
    ap.add_argument("--debug", action="store_true",
                    help="use the debug build already in .build/debug (no build; for the CI smoke run, where a "
                    "release build would not fit the budget; its numbers mean nothing)")
    ap.add_argument("--bin", help="take repeaterd, muxcat, runtime-manager, runtime-client from DIR (implies --no-build)")
    ap.add_argument("--baseline-bin", help="also measure REPEATER_BEFORE: repeaterd and muxcat from DIR (for "
                    "before/after in one run; generic measurements only)")
    ap.add_argument("--no-install", action="store_true",
                    help="do not run tools/install-deps.sh --bench (apt-get/pip) before measuring")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--out", help="directory for BENCHMARKS.md (default docs/, or .build/bench-quick with --quick)")
    ap.add_argument("--keep-workdir", action="store_true")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: rewrite OUT/BENCHMARKS.md from OUT/bench/results.json (e.g. after "
                    "a change to the report's layout), keeping the command and date of that run")
    return ap


def report_only(args) -> int:
    outdir = args.out or os.path.join(ROOT, "docs")
    with open(os.path.join(outdir, "bench", "results.json")) as f:
        record = RunRecord.from_json(json.load(f), ALL_MEASUREMENTS)
    plots = sorted(p for p in os.listdir(os.path.join(outdir, "bench")) if p.endswith(".png"))
    report = write_report(record, outdir, plots, quick=args.quick)
    with open(os.path.join(outdir, "BENCHMARKS.md"), "w") as f:
        f.write(report)
    log(f"rewrote {os.path.join(outdir, 'BENCHMARKS.md')} from results.json")
    return 0


def default_out(args, measurements: list[str]) -> str:
    """Where a run writes when --out is not given: docs/ only for a whole run, so that
    docs/BENCHMARKS.md always names one run of every measurement and path (issue 46: a page
    stitched from ten runs, with --merge, could not say what the code did at any one time);
    a smoke run or one narrowed by --only, --skip or --paths goes under .build/."""
    if args.quick:
        return os.path.join(ROOT, ".build", "bench-quick")
    whole = set(measurements) == set(ALL_MEASUREMENTS) and not args.paths and not args.debug
    return os.path.join(ROOT, "docs") if whole else os.path.join(ROOT, ".build", "bench-partial")


def main(description: str = "") -> int:
    ap = parser(description)
    args = ap.parse_args()
    if args.list:
        for m in ALL_MEASUREMENTS:
            print(f"{m:12s} {DESCRIPTIONS[m]}")
        return 0
    if args.quick:
        args.no_plots = True
    if args.debug:
        args.build_config = "debug"
        args.no_build = True
    if args.bin:
        args.no_build = True
        args.bin = os.path.abspath(args.bin)
    measurements = args.only.split(",") if args.only else [m for m in ALL_MEASUREMENTS
                                                           if not (args.quick and m == "micro")]
    if args.skip:
        measurements = [m for m in measurements if m not in args.skip.split(",")]
    unknown = [m for m in measurements if m not in ALL_MEASUREMENTS]
    if unknown:
        ap.error(f"unknown measurement(s): {', '.join(unknown)}; see --list")
    if args.baseline_bin:
        args.baseline_bin = os.path.abspath(args.baseline_bin)
    try:
        paths = select_paths(args.paths.split(",") if args.paths else None, args.baseline_bin)
    except ValueError as e:
        ap.error(str(e))

    procs.set_rt_priority(args.rt_priority)
    if args.report_only:
        return report_only(args)
    return run(args, measurements, paths)


def run(args, measurements: list[str], paths: list[str]) -> int:
    env = Env(args)
    outdir = args.out or default_out(args, measurements)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    load_before = open("/proc/loadavg").read().split()[:3]
    command = "tools/bench " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else "tools/bench"
    results: dict = {}
    failures: list[str] = []
    try:
        if not args.no_install:
            install(env)
        build(env)
        for m in measurements:
            log(DESCRIPTIONS[m])
            t0 = time.time()
            try:
                results[m] = measure.run(m, env, paths)
            except Exception as e:  # noqa: BLE001
                log(f"  {m} failed: {e}")
                results[m] = MeasurementFailure(error=str(e))
                failures.append(m)
            results[m].ran_at = started
            log(f"  {m}: {time.time() - t0:.0f} s")
    finally:
        env.procs.stop_all()
    load_after = open("/proc/loadavg").read().split()[:3]
    results = {m: results[m] for m in ALL_MEASUREMENTS if m in results}

    # A path that produced no number is a failure too (the smoke run must not rot quietly).
    for m, r in results.items():
        failures += failed_paths(m, r)
        if isinstance(r, ScaleResult) and r.failed:
            failures.append("scale: sessions failed")

    record = RunRecord(started=started, command=command, results=results, legacy_note=env.legacy_note,
                       notes=env.notes, baseline_bin=args.baseline_bin,
                       load=[" ".join(load_before), " ".join(load_after)])
    plots = []
    if not args.no_plots:
        try:
            from .plots import make_plots
            plots = make_plots(results, os.path.join(outdir, "bench"))
        except Exception as e:  # noqa: BLE001
            log(f"plots failed: {e}")
    report = write_report(record, outdir, plots, quick=args.quick)
    with open(os.path.join(outdir, "BENCHMARKS.md"), "w") as f:
        f.write(report)
    os.makedirs(os.path.join(outdir, "bench"), exist_ok=True)
    with open(os.path.join(outdir, "bench", "results.json"), "w") as f:
        json.dump(record.to_json(), f, indent=1, default=str)
    log(f"wrote {os.path.join(outdir, 'BENCHMARKS.md')}")
    for t in record.targets:
        log(f"  target: {t.target}: {t.measured} — {'met' if t.met else ('not measured' if t.met is None else 'MISSED')}")
    if not args.keep_workdir:
        shutil.rmtree(env.workdir, ignore_errors=True)
    else:
        log(f"logs kept in {env.workdir}")
    checks = sum(sum(len(p or {}) for p in r.summaries()) or 1 for r in results.values())
    failed = len(failures)
    if failures:
        log(f"FAILED: {', '.join(failures)}")
    print(f"bench: {checks - min(failed, checks)} passed, {failed} failed", flush=True)
    return 1 if failures else 0
