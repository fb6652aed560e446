#!/usr/bin/env bash
# Runs the Swift test suite under ThreadSanitizer and/or AddressSanitizer (docs/SANITIZERS.md).
# Each sanitizer builds into its own scratch path (.build-tsan, .build-asan), executables too,
# so the tests that spawn muxcat, repeaterd, runtime-manager or runtime-client run sanitized
# binaries. Every process writes its reports to <scratch>/sanitizer-reports/; any report
# there, or a failing test, makes the script fail.
#
#   tools/sanitize.sh [thread|address|all]     (default all; thread first)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

case "${1:-all}" in
  thread) sanitizers=(thread) ;;
  address) sanitizers=(address) ;;
  all) sanitizers=(thread address) ;;
  *) echo "usage: tools/sanitize.sh [thread|address|all]" >&2; exit 2 ;;
esac

bash tools/install-deps.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

status=0
for sanitizer in "${sanitizers[@]}"; do
  case $sanitizer in
    thread) scratch="$ROOT/.build-tsan" ;;
    address) scratch="$ROOT/.build-asan" ;;
  esac
  reports="$scratch/sanitizer-reports"
  rm -rf "$reports"; mkdir -p "$reports"
  # Reports go to files (one per process, child processes included) instead of stderr,
  # so a report from a spawned executable is not lost in a test's captured output.
  export TSAN_OPTIONS="log_path=$reports/tsan second_deadlock_stack=1 suppressions=$ROOT/tools/tsan-suppressions.txt"
  export ASAN_OPTIONS="log_path=$reports/asan detect_leaks=0"
  started=$SECONDS
  echo "== build (debug, with tests, --sanitize=$sanitizer) in ${scratch#"$ROOT/"}"
  swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch"
  built=$SECONDS
  echo "== swift test --sanitize=$sanitizer"
  result=0
  swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" || result=$?
  if compgen -G "$reports/*" >/dev/null; then
    echo "sanitize: $sanitizer reports:"
    cat "$reports"/*
    [ "$result" -ne 0 ] || result=1
  fi
  echo "sanitize: $sanitizer build $((built - started)) s, tests $((SECONDS - built)) s, exit $result"
  [ "$result" -eq 0 ] || status=1
done
exit $status
