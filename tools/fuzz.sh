#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (with AddressSanitizer) and runs each for a while.
# Every input in Fuzz/Corpus/<target> and Fuzz/Regressions/<target> is replayed first, so
# crashes found earlier (kept in Regressions/) are regression tests. A new crash input is
# written to Fuzz/Regressions/<target>/ and the script fails. A single allocation over 64 MiB
# counts as a crash: no input of at most 4 KiB may make the code allocate a claimed length.
#
#   tools/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_PER_TARGET=${1:-60}
TARGETS=(YamuxFuzzer:yamux LengthPrefixFuzzer:lengthprefix ProxyHeaderFuzzer:proxyheader)
cd "$ROOT/Fuzz"
echo "== building fuzzers (libFuzzer + AddressSanitizer)"
swift build -c release --scratch-path "$ROOT/.build-fuzz" \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -D -Xswiftc FUZZING
BIN=$(swift build -c release --scratch-path "$ROOT/.build-fuzz" --show-bin-path)
status=0
for entry in "${TARGETS[@]}"; do
  target=${entry%%:*}; corpus=${entry##*:}
  work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$corpus.XXXXXX")
  mkdir -p "$ROOT/Fuzz/Regressions/$corpus"
  echo "== $target for ${SECONDS_PER_TARGET}s"
  if SWIFT_BACKTRACE=enable=no "$BIN/$target" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=64 \
      -artifact_prefix="$ROOT/Fuzz/Regressions/$corpus/" "$work" "$ROOT/Fuzz/Corpus/$corpus" \
      "$ROOT/Fuzz/Regressions/$corpus" >"$work.log" 2>&1; then
    grep -E "^(#[0-9]+ +DONE|Done)" "$work.log" | tail -1 || tail -1 "$work.log"
    echo "fuzz: $target ok"
  else
    status=1
    # The start of the report (the first stack says where), then where the input went.
    grep -m1 -A60 -E "==ERROR|Fatal error|deadly signal|timeout after|out-of-memory" "$work.log" || true
    echo "..."
    tail -n 6 "$work.log"
    echo "fuzz: $target FOUND A CRASH; its input is in Fuzz/Regressions/$corpus/"
  fi
  rm -rf "$work" "$work.log"
done
exit $status
