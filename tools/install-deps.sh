#!/usr/bin/env bash
# Installs what the project's tests, demo and interop runs need (idempotent): Debian packages, and
# pytest for the bench library's tests (tools/relaybench/tests).
#
#   tools/install-deps.sh                      what the tests need
#   tools/install-deps.sh --bench [--no-plots] also tools/bench's peers and tools (sockperf, iperf3,
#                                              nginx's stream module, socat) and,
#                                              unless --no-plots, matplotlib (pip) for its plots
#   tools/install-deps.sh --packaging          only what tools/package.sh and tools/package-test.sh
#                                              need (dpkg-dev, binutils, gzip, lintian, man-db)
#
# Swift itself and the Swift packages come with the machine; nothing else is downloaded. PYTHON
# names the interpreter pip installs for (default: python3 on PATH).
set -euo pipefail
bench=0
plots=1
packaging=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --no-plots) plots=0 ;;
    --packaging) packaging=1 ;;
    *) echo "usage: tools/install-deps.sh [--bench [--no-plots] | --packaging]" >&2; exit 2 ;;
  esac
done
PYTHON=${PYTHON:-python3}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

packages=(
  golang-go golang-github-hashicorp-yamux-dev  # the reference yamux, for interop
  netcat-openbsd openssl                       # real peers: nc, openssl s_client / s_server
  protobuf-compiler                            # only to regenerate the committed protobuf code
  curl jq xxd less iproute2                    # README examples (tools/readme_examples.py), ss
  haproxy nginx-light                          # real PROXY protocol peers (send-proxy, listen … proxy_protocol)
  time                                         # GNU time: a process's peak RSS (the streaming get test)
  man-db                                       # man -l: the manual pages (ManualPageAndCompletionTests)
  systemd                                      # systemd-analyze verify/security on dist/systemd's units
  chromium chromium-driver                     # a real browser on the status page (tools/status_page_test.py)
)
if [ "$packaging" -eq 1 ]; then
  packages=(dpkg-dev binutils gzip lintian man-db)  # dpkg-deb, dpkg-shlibdeps, strip; the package checks
fi
if [ "$bench" -eq 1 ]; then
  packages+=(
    sockperf iperf3                              # latency and throughput clients and servers
    libnginx-mod-stream socat                    # the peer relays (with haproxy and nginx above)
    util-linux procps                            # taskset, chrt; /proc readers
    wrk linux-perf                               # section 11: keep-alive HTTP load; system calls per request
  )
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

[ "$packaging" -eq 1 ] && exit 0

# The bench library's tests (tools/test.sh runs them).
if ! "$PYTHON" -m pytest --version >/dev/null 2>&1; then
  echo "installing: pytest (pip)"
  "$PYTHON" -m pip install -q pytest
fi
# The admin endpoint's tests parse /metrics with Prometheus' own text-format parser.
if ! "$PYTHON" -c "import prometheus_client" >/dev/null 2>&1; then
  echo "installing: prometheus-client (pip)"
  "$PYTHON" -m pip install -q prometheus-client
fi
# The status page's browser test drives chromium with Selenium.
if ! "$PYTHON" -c "import selenium" >/dev/null 2>&1; then
  echo "installing: selenium (pip)"
  "$PYTHON" -m pip install -q selenium
fi
if [ "$bench" -eq 1 ] && [ "$plots" -eq 1 ] && ! "$PYTHON" -c "import matplotlib" >/dev/null 2>&1; then
  echo "installing: matplotlib (pip)"
  "$PYTHON" -m pip install -q matplotlib
fi
