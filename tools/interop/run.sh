#!/usr/bin/env bash
# Interop tests between Repeater's yamux and HashiCorp's Go yamux (Debian).
#
#   tools/interop/run.sh               # against $BIN/repeaterd and $BIN/muxcat
#   tools/interop/run.sh --self-test   # Go stand-ins for both, plus negative controls
#
# Environment:
#   BIN            directory of repeaterd and muxcat (default .build/debug;
#                  a relative path is taken from the repository root)
#   TIMEOUT        time limit per load run (default 60s)
#   SERVER_WINDOW  --window of the Go yamux server in scenario 1 (default 262144)
#   KEEP_LOGS=1    keep the log directory even when everything passed
#
# Scenario 1: plain TCP clients -> repeaterd -> Go yamux server (echo);
#   1c: small requests the Go server accepts late, so it never ACKs them.
# Scenario 2: Go yamux client -> muxcat listen --echo.
# Scenario 3: Go yamux client -> muxcat listen --forward -> TCP echo (not in --self-test).
# See docs/INTEROP.md.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PEER="$HERE/bin/yamux-peer"
TIMEOUT=${TIMEOUT:-60s}
SERVER_WINDOW=${SERVER_WINDOW:-262144}
SELF_TEST=0

usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
for arg in "$@"; do
  case "$arg" in
    --self-test) SELF_TEST=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $arg" >&2; usage >&2; exit 2 ;;
  esac
done

BIN=${BIN:-.build/debug}
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/interop.XXXXXX")
PIDS=()
PASSED=0
FAILED=0

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}
on_exit() {
  cleanup
  if [ "$FAILED" -eq 0 ] && [ "${KEEP_LOGS:-0}" != 1 ]; then
    rm -rf "$LOGDIR"
  else
    echo "logs kept in $LOGDIR"
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- build the Go peer -------------------------------------------------------
if ! command -v go >/dev/null; then
  echo "run.sh: go not found (apt-get install golang-go golang-github-hashicorp-yamux-dev)" >&2
  exit 2
fi
echo "building $PEER"
if ! (cd "$HERE" && GOPROXY=off GOFLAGS=-mod=mod go build -o bin/yamux-peer .); then
  echo "run.sh: building yamux-peer failed" >&2
  exit 2
fi

# --- self-test: Go stand-ins for the project's binaries ----------------------
if [ "$SELF_TEST" = 1 ]; then
  BIN="$LOGDIR/fake-bin"
  mkdir -p "$BIN"
  cat >"$BIN/repeaterd" <<EOF
#!/bin/sh
# stand-in: yamux-peer relay accepts the same --listen/--backend flags
exec "$PEER" relay "\$@"
EOF
  cat >"$BIN/muxcat" <<EOF
#!/bin/sh
# stand-in for: muxcat listen HOST:PORT --echo
[ "\$1" = listen ] && [ "\$3" = --echo ] || { echo "fake muxcat: unsupported: \$*" >&2; exit 2; }
exec "$PEER" server --listen "\$2" -v
EOF
  chmod +x "$BIN/repeaterd" "$BIN/muxcat"
  echo "self-test: repeaterd = yamux-peer relay, muxcat = yamux-peer server"
fi

# --- helpers -----------------------------------------------------------------
free_ports() { # prints N distinct free TCP ports on 127.0.0.1
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

listening() { # port
  if command -v ss >/dev/null; then
    ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# start NAME LOGFILE CMD... : runs CMD in the background, stderr+stdout to LOGFILE
start() {
  local name=$1 log=$2
  shift 2
  echo "   start $name: $*"
  "$@" >"$log" 2>&1 &
  LASTPID=$!
  PIDS+=("$LASTPID")
}

wait_listen() { # name pid port log
  local i
  for i in $(seq 1 100); do
    if listening "$3"; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "   $1 exited before listening on port $3; last lines of its log:"
      tail -n 20 "$4" | sed 's/^/   | /'
      return 1
    fi
    sleep 0.1
  done
  echo "   $1 not listening on port $3 after 10 s; last lines of its log:"
  tail -n 20 "$4" | sed 's/^/   | /'
  return 1
}

# launch NAME LOG CMD... : starts a daemon whose arguments contain @PORT@,
# replaced by a free port; waits until it listens. Another port is tried if
# the chosen one was taken in the meantime. Sets LASTPID and LASTPORT.
launch() {
  local name=$1 log=$2
  shift 2
  local attempt port a args
  for attempt in 1 2 3; do
    port=$(free_ports 1)
    args=()
    for a in "$@"; do args+=("${a//@PORT@/$port}"); done
    start "$name" "$log" "${args[@]}"
    if wait_listen "$name" "$LASTPID" "$port" "$log"; then
      LASTPORT=$port
      return 0
    fi
    kill "$LASTPID" 2>/dev/null
    if [ "$attempt" -lt 3 ] && grep -qi 'address already in use' "$log"; then
      echo "   port $port was taken meanwhile; trying another"
      continue
    fi
    return 1
  done
  return 1
}

pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1"; }

# run_case NAME EXPECT DAEMONS CHECK CMD...
#   EXPECT  ok, or fail for a negative control (must detect corruption)
#   DAEMONS space-separated name:pid:log entries, checked and shown on failure
#   CHECK   empty, or N:BYTES:LOG = the Go yamux server logging LOG must have
#           echoed at least N new streams of BYTES bytes (proves the bytes
#           really crossed the yamux link)
run_case() {
  local name=$1 expect=$2 daemons=$3 check=$4
  shift 4
  local out="$LOGDIR/case-${name%% *}.log"
  local rc=0 d dname dpid dlog problems=""
  local cn cb clog before=0 seen i
  if [ -n "$check" ]; then
    IFS=: read -r cn cb clog <<<"$check"
    before=$(wc -l <"$clog")
  fi
  local -a dbefore=()
  for d in $daemons; do
    IFS=: read -r dname dpid dlog <<<"$d"
    dbefore+=("$(wc -l <"$dlog")")
  done
  "$@" >"$out" 2>&1 || rc=$?
  if [ -n "$check" ]; then
    for i in $(seq 1 20); do
      seen=$(tail -n "+$((before + 1))" "$clog" | grep -Ec "stream [0-9]+: echoed $cb bytes")
      [ "$seen" -ge "$cn" ] && break
      sleep 0.05
    done
    [ "$seen" -ge "$cn" ] || problems="$problems yamux-server-echoed-only-$seen-of-$cn-streams"
  fi
  local k=0 newerr=""
  for d in $daemons; do
    IFS=: read -r dname dpid dlog <<<"$d"
    if ! kill -0 "$dpid" 2>/dev/null; then
      problems="$problems $dname-died"
    fi
    # The Go yamux server logs [ERR] for protocol errors, and its sniffer
    # "protocol note" for frames a compatible peer must not send.
    if [ "$dname" = yamux-server ]; then
      newerr=$(tail -n "+$((dbefore[k] + 1))" "$dlog" | grep -E 'protocol note|\[ERR\]' | head -n 10)
      [ -z "$newerr" ] || problems="$problems $dname-reported-errors"
    fi
    k=$((k + 1))
  done
  local summary
  summary=$(grep -E '^(client|tcpload): (FAILED:|[0-9]+ (streams|conns) x)' "$out" | tail -n 1)
  [ -n "$summary" ] || summary="(no summary; exit status $rc)"
  if [ "$expect" = fail ]; then
    if [ "$rc" -ne 0 ] && grep -q 'mismatch at offset' "$out"; then
      pass "$name (negative control, corruption detected): $(grep -m1 'mismatch at offset' "$out")"
    else
      fail "$name (negative control: corruption NOT detected): $summary"
    fi
    return
  fi
  if [ "$rc" -eq 0 ] && [ -z "$problems" ]; then
    pass "$name: $summary"
    return
  fi
  fail "$name: $summary${problems:+ [$problems ]}"
  sed 's/^/   | /' "$out" | tail -n 30
  [ -z "$newerr" ] || { echo "   --- errors logged by the Go yamux server during this case:"; echo "$newerr" | sed 's/^/   ! /'; }
  for d in $daemons; do
    IFS=: read -r dname dpid dlog <<<"$d"
    echo "   --- last lines of $dname log ($dlog):"
    tail -n 20 "$dlog" | sed 's/^/   | /'
  done
}

need_bin() { # name cases...
  local name=$1
  shift
  if [ -x "$BIN/$name" ]; then return 0; fi
  echo "   $BIN/$name not found (swift build, or set BIN=...)"
  local c
  for c in "$@"; do fail "$c: $name missing"; done
  return 1
}

# --- scenario 1: TCP clients -> repeaterd -> Go yamux server -----------------
echo "== scenario 1: plain TCP clients -> repeaterd -> Go yamux server (echo, FIN after echo)"
if need_bin repeaterd "1a" "1b"; then
  if launch yamux-server "$LOGDIR/yamux-server.log" \
       "$PEER" server --listen "127.0.0.1:@PORT@" --window "$SERVER_WINDOW" -v; then
    SRV_PID=$LASTPID P_SRV=$LASTPORT
    if launch repeaterd "$LOGDIR/repeaterd.log" \
         "$BIN/repeaterd" --listen "127.0.0.1:@PORT@" --backend "127.0.0.1:$P_SRV"; then
      REP_PID=$LASTPID P_REP=$LASTPORT
      D="repeaterd:$REP_PID:$LOGDIR/repeaterd.log yamux-server:$SRV_PID:$LOGDIR/yamux-server.log"
      run_case "1a 100 TCP conns x 1 MiB" ok "$D" "100:1048576:$LOGDIR/yamux-server.log" \
        "$PEER" tcpload --connect "127.0.0.1:$P_REP" --conns 100 --bytes 1048576 --timeout "$TIMEOUT"
      run_case "1b 4 TCP conns x 32 MiB" ok "$D" "4:33554432:$LOGDIR/yamux-server.log" \
        "$PEER" tcpload --connect "127.0.0.1:$P_REP" --conns 4 --bytes 33554432 --timeout "$TIMEOUT"
    else
      fail "1a: repeaterd did not start"
      fail "1b: repeaterd did not start"
    fi
  else
    fail "1a: yamux-peer server did not start"
    fail "1b: yamux-peer server did not start"
  fi
  cleanup
fi

# --- scenario 1c: small half-closed requests; the Go server ACKs none of them -
echo "== scenario 1c: small requests half-closed before the Go server accepts (Go then never ACKs)"
if need_bin repeaterd "1c"; then
  if launch yamux-server-slow "$LOGDIR/yamux-server-slow.log" \
       "$PEER" server --listen "127.0.0.1:@PORT@" --accept-delay 2ms -v; then
    SRV_PID=$LASTPID P_SRV=$LASTPORT
    if launch repeaterd-2 "$LOGDIR/repeaterd-2.log" \
         "$BIN/repeaterd" --listen "127.0.0.1:@PORT@" --backend "127.0.0.1:$P_SRV"; then
      REP_PID=$LASTPID P_REP=$LASTPORT
      D="repeaterd:$REP_PID:$LOGDIR/repeaterd-2.log yamux-server:$SRV_PID:$LOGDIR/yamux-server-slow.log"
      run_case "1c 200 TCP conns x 100 bytes, server accepts late" ok "$D" "200:100:$LOGDIR/yamux-server-slow.log" \
        "$PEER" tcpload --connect "127.0.0.1:$P_REP" --conns 200 --bytes 100 --timeout "$TIMEOUT"
      echo "   ($(grep -c 'no ACK sent' "$LOGDIR/yamux-server-slow.log") of 200 streams were never ACKed by the Go server)"
    else
      fail "1c: repeaterd did not start"
    fi
  else
    fail "1c: yamux-peer server did not start"
  fi
  cleanup
fi

# --- scenario 2: Go yamux client -> muxcat listen --echo ----------------------
echo "== scenario 2: Go yamux client -> muxcat listen --echo"
CLIENT_EXTRA=()
if [ "$SELF_TEST" = 1 ]; then
  # The Go server skips the ACK when a stream's FIN arrives before Accept
  # (small streams); a compatible muxcat must always ACK.
  CLIENT_EXTRA=(--require-ack=false)
fi
if need_bin muxcat "2a" "2b" "2c"; then
  if launch muxcat "$LOGDIR/muxcat.log" "$BIN/muxcat" listen "127.0.0.1:@PORT@" --echo; then
    MUX_PID=$LASTPID P_MUX=$LASTPORT
    D="muxcat:$MUX_PID:$LOGDIR/muxcat.log"
    run_case "2a 64 streams x 1 MiB, window 1 MiB" ok "$D" "" \
      "$PEER" client --connect "127.0.0.1:$P_MUX" --streams 64 --bytes 1048576 --window 1048576 --timeout "$TIMEOUT" -v ${CLIENT_EXTRA[@]+"${CLIENT_EXTRA[@]}"}
    run_case "2b 2 streams x 32 MiB, window 256 KiB" ok "$D" "" \
      "$PEER" client --connect "127.0.0.1:$P_MUX" --streams 2 --bytes 33554432 --timeout "$TIMEOUT" -v ${CLIENT_EXTRA[@]+"${CLIENT_EXTRA[@]}"}
    run_case "2c 1000 streams x 4 KiB, all at once" ok "$D" "" \
      "$PEER" client --connect "127.0.0.1:$P_MUX" --streams 1000 --bytes 4096 --timeout "$TIMEOUT" -v ${CLIENT_EXTRA[@]+"${CLIENT_EXTRA[@]}"}
  else
    fail "2a: muxcat did not start"
    fail "2b: muxcat did not start"
    fail "2c: muxcat did not start"
  fi
  cleanup
fi

# --- scenario 3: Go yamux client -> muxcat listen --forward -> TCP echo -------
# muxcat --forward relays each stream straight to its target socket (YamuxSocketRelay, no child
# channel): the same relay endpoint as repeaterd's, here with the peer opening the streams.
if [ "$SELF_TEST" = 0 ]; then
  echo "== scenario 3: Go yamux client -> muxcat listen --forward -> TCP echo"
  if need_bin muxcat "3a" "3b"; then
    if launch tcpecho "$LOGDIR/tcpecho.log" "$PEER" tcpecho --listen "127.0.0.1:@PORT@"; then
      P_ECHO=$LASTPORT
      if launch muxcat-forward "$LOGDIR/muxcat-forward.log" \
           "$BIN/muxcat" listen "127.0.0.1:@PORT@" --forward "127.0.0.1:$P_ECHO"; then
        MUX_PID=$LASTPID P_MUX=$LASTPORT
        D="muxcat:$MUX_PID:$LOGDIR/muxcat-forward.log"
        run_case "3a 64 streams x 1 MiB through --forward, window 1 MiB" ok "$D" "" \
          "$PEER" client --connect "127.0.0.1:$P_MUX" --streams 64 --bytes 1048576 --window 1048576 --timeout "$TIMEOUT" -v
        run_case "3b 2 streams x 32 MiB through --forward, window 256 KiB" ok "$D" "" \
          "$PEER" client --connect "127.0.0.1:$P_MUX" --streams 2 --bytes 33554432 --timeout "$TIMEOUT" -v
      else
        fail "3a: muxcat did not start"
        fail "3b: muxcat did not start"
      fi
    else
      fail "3a: yamux-peer tcpecho did not start"
      fail "3b: yamux-peer tcpecho did not start"
    fi
    cleanup
  fi
fi

# --- self-test only: the checkers must catch corruption -----------------------
if [ "$SELF_TEST" = 1 ]; then
  echo "== self-test negative controls: a peer that corrupts one byte must be caught"
  if launch tcpecho-corrupt "$LOGDIR/tcpecho-corrupt.log" \
       "$PEER" tcpecho --listen "127.0.0.1:@PORT@" --corrupt-at 123456; then
    run_case "n1 tcpload vs corrupting TCP echo" fail "" "" \
      "$PEER" tcpload --connect "127.0.0.1:$LASTPORT" --conns 4 --bytes 1048576 --timeout "$TIMEOUT"
  else
    fail "n1: corrupting TCP echo did not start"
  fi
  if launch server-corrupt "$LOGDIR/server-corrupt.log" \
       "$PEER" server --listen "127.0.0.1:@PORT@" --corrupt-at 654321; then
    run_case "n2 client vs corrupting yamux server" fail "" "" \
      "$PEER" client --connect "127.0.0.1:$LASTPORT" --streams 4 --bytes 1048576 --timeout "$TIMEOUT"
  else
    fail "n2: corrupting yamux server did not start"
  fi
  cleanup
fi

echo "interop: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
