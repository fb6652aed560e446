#!/usr/bin/env bash
# Builds muxcat, repeaterd and the tests, then runs the MuxCatTests (real processes and
# sockets: needs nc from netcat-openbsd and openssl).
#
#   tools/muxcat-tests.sh            # all MuxCatTests
#   tools/muxcat-tests.sh Decode     # only tests whose name matches
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in nc openssl; do
  command -v "$tool" >/dev/null || { echo "muxcat-tests: $tool is missing (apt-get install netcat-openbsd openssl)" >&2; exit 2; }
done
swift build --build-tests
exec swift test --skip-build --filter "MuxCatTests${1:+.*$1}"
