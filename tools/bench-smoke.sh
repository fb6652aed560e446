#!/usr/bin/env bash
# The benchmark's smoke run, for CI (.ci/run → tools/test.sh, after the tests): every
# measurement but the micro-benchmarks (a separate package), on every path, with tiny sizes and
# one round, on the debug build tools/test.sh has just made — a release build would not fit CI's
# budget. Its numbers mean nothing; it fails (non-zero) if the bench breaks or any path produced
# no number, so the bench cannot rot. Takes 2–3 minutes; its report goes to .build/bench-quick/.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "== bench smoke: apt-get update (tools/bench runs tools/install-deps.sh --bench: sockperf, iperf3, haproxy, nginx, socat, go)"
$SUDO apt-get update -q >/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== bench smoke: tools/bench --quick --debug"
exec timeout 900 python3 tools/bench --quick --debug
