#!/usr/bin/env bash
# Runs every test from a fresh clone: installs what is missing, checks the sources (no Foundation,
# errno texts and locks each one way, tools/format.sh --check), builds, runs the Swift test
# suite (unit, embedded-channel, real-socket and real-process tests), then every example command
# of README.md (tools/readme_examples.py), the status page in chromium (tools/status_page_test.py),
# then the interop runs
# against HashiCorp's Go yamux, the bench library's unit tests (pytest), a smoke run of the
# benchmark (tools/bench-smoke.sh), then each libFuzzer target for a minute (tools/fuzz.sh).
# Exits non-zero if anything fails.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash tools/install-deps.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== no module imports Foundation (issue 45), system errors only through SystemErrorText, one lock API (issue 46)"
python3 - <<'PY'
import pathlib, sys
bad = []
for path in sorted(pathlib.Path("Sources").rglob("*.swift")):
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        # Allowed only as the fallback of `#if canImport(FoundationEssentials)` (non-Linux).
        if line.strip() in ("import Foundation", "@preconcurrency import Foundation") and (number == 0 or lines[number - 1].strip() != "#else"):
            bad.append(f"{path}:{number + 1}: import Foundation (use FoundationEssentials, or none)")
        if "strerror" in line and path.parts[1] != "SystemErrorText":
            bad.append(f"{path}:{number + 1}: strerror (say it with SystemErrorText.errnoText or .describe)")
        if "NIOLockedValueBox" in line:
            bad.append(f"{path}:{number + 1}: NIOLockedValueBox (the one lock is Mutex: docs/ARCHITECTURE.md)")
print("\n".join(bad) or "  none")
sys.exit(1 if bad else 0)
PY

echo "== format (.swift-format: swift format lint --strict; tools/format.sh fixes in place)"
bash tools/format.sh --check

echo "== build (debug, with tests)"
swift build --build-tests

echo "== swift test"
swift test --skip-build

echo "== README examples (every sh block of README.md, run against real processes)"
python3 tools/readme_examples.py

echo "== the status page in a real browser (chromium + Selenium)"
python3 tools/status_page_test.py

echo "== interop with HashiCorp yamux"
bash tools/interop/run.sh

echo "== bench library tests (pytest: summaries, ratios, tables, CPU accounting)"
python3 -m pytest -q tools/relaybench/tests

echo "== bench smoke run (debug build, tiny sizes)"
bash tools/bench-smoke.sh

echo "== fuzzing (libFuzzer + AddressSanitizer), a minute per target"
bash tools/fuzz.sh 60
