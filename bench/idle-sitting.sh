#!/usr/bin/env bash
# Idle connections in one sitting (issue 13): W3 (10,000 idle clients over 100 rooms) against
# two broker builds and `danmu-bench serve-bare`, alternating A, B, bare per round; then the
# cost of a TLS connection beside a plain one (bench/idle-conns.py, 2000 clients in 20
# rooms) for both builds. Each run starts a fresh server on a loopback port and stops it.
#
#   bench/idle-sitting.sh OLD_BROKER NEW_BROKER [rounds]
#
# The generator is this tree's target/release/danmu-bench; CONFIG= names the config file both
# brokers read (default ./config.yaml). JSON lines go to $OUT (default idle-results.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 2 ] || { echo "usage: $0 OLD_BROKER NEW_BROKER [rounds]" >&2; exit 2; }
A=$1; B=$2; ROUNDS=${3:-2}
PORT=${PORT:-18280}
OUT=${OUT:-idle-results.jsonl}
BENCH=./target/release/danmu-bench
ulimit -n "$(ulimit -Hn)"
echo "# machine: $(nproc) cores, $(uname -r); commit $(git rev-parse --short HEAD); A = $A; B = $B"

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

w3() {
  local label=$1 pid=$2
  echo "# $(date -u +%FT%TZ) $label, $(uptime | sed 's/.*load/load/')"
  timeout 300 $BENCH --url "ws://127.0.0.1:$PORT" --broker-pid "$pid" --workload w3 --connect-rate 2000 \
    --duration-s 20 --label "$label" --json-out "$OUT" | grep -v '^{' || true
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
  pid=$(broker "$A"); wait_port $PORT; w3 "W3-A$round" "$pid"; stop "$pid"
  pid=$(broker "$B"); wait_port $PORT; w3 "W3-B$round" "$pid"; stop "$pid"
  $BENCH serve-bare --listen "127.0.0.1:$PORT" > /tmp/danmu-idle-bare.log 2>&1 &
  pid=$!; wait_port $PORT; w3 "W3-bare$round" "$pid"; stop "$pid"
done

# TLS beside plain, with a certificate made here; the clients send nothing, so the broker's
# idle timeout is raised for these runs.
dir=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 1 \
  -subj /CN=127.0.0.1 > /dev/null 2>&1
for label in A B; do
  bin=$A; [ $label = B ] && bin=$B
  for scheme in ws wss; do
    tls_env=()
    [ $scheme = wss ] && tls_env=(DANMU__SERVER__TLS__CERT="$dir/cert.pem" DANMU__SERVER__TLS__KEY="$dir/key.pem")
    pid=$(broker "$bin" DANMU__CLIENT__IDLE_TIMEOUT_MS=600000 "${tls_env[@]}")
    wait_port $PORT
    echo "# $(date -u +%FT%TZ) $label $scheme, $(uptime | sed 's/.*load/load/')"
    bench/idle-conns.py --url "$scheme://127.0.0.1:$PORT" --pid "$pid" --clients 2000 --rooms 20 | sed "s/^{/{\"label\":\"$label-$scheme\",/" \
      | tee -a "$OUT"
    stop "$pid"
  done
done
rm -rf "$dir"
