#!/usr/bin/env bash
# The one formatter configuration (.swift-format: 4 spaces, 140 columns, swift-format's default
# rules otherwise) over every Swift file of the repository.
#
#   tools/format.sh           format in place
#   tools/format.sh --check   lint only, --strict (a finding fails; tools/test.sh runs this)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# Fuzz/Sources links the project's own modules (Yamux, ...): only the fuzzers' own folders here.
PATHS=(Package.swift Sources Tests tools/nio-relay
       Fuzz/Package.swift Fuzz/Sources/FuzzDriver Fuzz/Sources/LengthPrefixFuzzer Fuzz/Sources/ProxyHeaderFuzzer
       Benchmarks/Package.swift Benchmarks/Benchmarks Benchmarks/Sources)
if [ "${1:-}" = "--check" ]; then
  if ! swift format lint --strict --parallel --recursive "${PATHS[@]}"; then
    echo "format: the findings above break .swift-format's style; tools/format.sh fixes most of them in place" >&2
    exit 1
  fi
  echo "format: every Swift file follows .swift-format"
else
  swift format format --in-place --parallel --recursive "${PATHS[@]}"
fi
