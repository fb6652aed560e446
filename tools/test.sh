#!/usr/bin/env bash
# Runs every test from a fresh clone: installs what is missing, builds, runs the Swift test
# suite (unit, embedded-channel, real-socket and real-process tests), then every example command
# of README.md (tools/readme_examples.py), then the interop runs
# against HashiCorp's Go yamux, the bench library's unit tests (pytest), a smoke run of the
# benchmark (tools/bench-smoke.sh), then each libFuzzer target for a minute (tools/fuzz.sh).
# Exits non-zero if anything fails.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash tools/install-deps.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== build (debug, with tests)"
swift build --build-tests

echo "== swift test"
swift test --skip-build

echo "== README examples (every sh block of README.md, run against real processes)"
python3 tools/readme_examples.py

echo "== interop with HashiCorp yamux"
bash tools/interop/run.sh

echo "== bench library tests (pytest: summaries, ratios, tables, CPU accounting)"
python3 -m pytest -q tools/relaybench/tests

echo "== bench smoke run (debug build, tiny sizes)"
bash tools/bench-smoke.sh

echo "== fuzzing (libFuzzer + AddressSanitizer), a minute per target"
bash tools/fuzz.sh 60
