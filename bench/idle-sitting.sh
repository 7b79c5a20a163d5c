#!/usr/bin/env bash
# Idle connections in one sitting (issue 13): W3 (10,000 idle clients over 100 rooms) against
# two broker builds and `danmu-bench serve-bare`, alternating A, B, bare per round; then the
# cost of a TLS connection beside a plain one (bench/idle-conns.py, 2000 clients in 20
# rooms) for both builds. Each run starts a fresh server on a loopback port and stops it.
# With DEFLATE=1 (issue 20) every W3 run of a broker is followed by the same run with the
# clients offering permessage-deflate (`danmu-bench --deflate`, which fails unless the broker
# accepts it), and the plain/TLS part adds plain with the extension (`idle-conns.py --deflate`).
#
#   bench/idle-sitting.sh OLD_BROKER NEW_BROKER [rounds]
#   DEFLATE=1 bench/idle-sitting.sh BROKER [rounds]      # one build: W3 plain and with deflate
#
# The generator is this tree's target/release/danmu-bench; CONFIG= names the config file both
# brokers read (default ./config.yaml). JSON lines go to $OUT (default idle-results.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 1 ] || { echo "usage: $0 OLD_BROKER [NEW_BROKER] [rounds]" >&2; exit 2; }
A=$1; shift
B=
if [ $# -ge 1 ] && ! [[ $1 =~ ^[0-9]+$ ]]; then B=$1; shift; fi
ROUNDS=${1:-2}
DEFLATE=${DEFLATE:-0}
PORT=${PORT:-18280}
OUT=${OUT:-idle-results.jsonl}
BENCH=./target/release/danmu-bench
ulimit -n "$(ulimit -Hn)"
echo "# machine: $(nproc) cores, $(uname -r); commit $(git rev-parse --short HEAD); A = $A; B = ${B:-none}; DEFLATE=$DEFLATE"

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# w3 LABEL PID [--deflate]
w3() {
  local label=$1 pid=$2; shift 2
  echo "# $(date -u +%FT%TZ) $label, $(uptime | sed 's/.*load/load/')"
  echo "# $BENCH --url ws://127.0.0.1:$PORT --broker-pid $pid --workload w3 --connect-rate 2000 --duration-s 20 $*"
  timeout 300 $BENCH --url "ws://127.0.0.1:$PORT" --broker-pid "$pid" --workload w3 --connect-rate 2000 \
    --duration-s 20 --label "$label" --json-out "$OUT" "$@" | grep -v '^{' || true
}

# w3_broker NAME BIN ROUND: W3 against a fresh broker BIN, then (DEFLATE=1) with the extension.
w3_broker() {
  local name=$1 bin=$2 round=$3 pid
  pid=$(broker "$bin"); wait_port $PORT; w3 "W3-$name$round" "$pid"; stop "$pid"
  if [ "$DEFLATE" = 1 ]; then
    pid=$(broker "$bin"); wait_port $PORT; w3 "W3-$name-deflate$round" "$pid" --deflate; stop "$pid"
  fi
}

# broker BIN [VAR=value...]: starts BIN on $PORT with those settings; prints its pid.
broker() {
  local bin=$1; shift
  env RUST_LOG=warn DANMU__SERVER__PORT=$PORT "$@" "$bin" --config "${CONFIG:-config.yaml}" \
    > "/tmp/danmu-idle-broker.log" 2>&1 &
  echo $!
}

# Stops a server and waits until it has exited (a broker drains for up to 10 s, and the
# servers started by broker() are not this shell's children, so `wait` would not wait).
stop() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null || true
}

for round in $(seq "$ROUNDS"); do
  w3_broker A "$A" "$round"
  [ -z "$B" ] || w3_broker B "$B" "$round"
  $BENCH serve-bare --listen "127.0.0.1:$PORT" > /tmp/danmu-idle-bare.log 2>&1 &
  pid=$!; wait_port $PORT; w3 "W3-bare$round" "$pid"; stop "$pid"
done

# TLS beside plain, with a certificate made here; the clients send nothing, so the broker's
# idle timeout is raised for these runs.
dir=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 1 \
  -subj /CN=127.0.0.1 > /dev/null 2>&1
kinds=(ws wss); [ "$DEFLATE" = 1 ] && kinds+=(ws-deflate)
for label in A B; do
  bin=$A; [ $label = B ] && bin=$B
  [ -n "$bin" ] || continue
  for kind in "${kinds[@]}"; do
    tls_env=(); scheme=ws; deflate=()
    [ $kind = wss ] && { scheme=wss; tls_env=(DANMU__SERVER__TLS__CERT="$dir/cert.pem" DANMU__SERVER__TLS__KEY="$dir/key.pem"); }
    [ $kind = ws-deflate ] && deflate=(--deflate)
    pid=$(broker "$bin" DANMU__CLIENT__IDLE_TIMEOUT_MS=600000 "${tls_env[@]}")
    wait_port $PORT
    echo "# $(date -u +%FT%TZ) $label $kind, $(uptime | sed 's/.*load/load/')"
    bench/idle-conns.py --url "$scheme://127.0.0.1:$PORT" --pid "$pid" --clients 2000 --rooms 20 "${deflate[@]}" \
      | sed "s/^{/{\"label\":\"$label-$kind\",/" | tee -a "$OUT"
    stop "$pid"
  done
done
rm -rf "$dir"
