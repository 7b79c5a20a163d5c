#!/usr/bin/env bash
# One benchmark sitting (issue 7): builds in release mode, then for each workload starts a fresh
# broker (so that RSS figures start from zero) on a loopback port, runs danmu-bench against it,
# and stops it. Prints the machine, the commit and each command; the results table goes to the
# terminal, the JSON lines to $OUT (default bench-results.jsonl).
#
#   bench/sitting.sh                 # W1, W1 batch=1, W2, W3, W4
#   bench/sitting.sh w1 w4           # only these
#   bench/sitting.sh w7 w7           # W7 (burst memory, issue 19) twice
#   PORT=18080 OUT=run.jsonl bench/sitting.sh
#   BROKER=/tmp/base/danmu-broker CONFIG=/tmp/base/config.yaml bench/sitting.sh w7   # another build
#
# Needs a hard open-file limit above 10,000 for W3 (`ulimit -Hn`); both processes raise their
# soft limit here. Loopback only; every run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18080}
OUT=${OUT:-bench-results.jsonl}
BROKER=${BROKER:-./target/release/danmu-broker}
CONFIG=${CONFIG:-config.yaml}
WORKLOADS=("$@")
[ ${#WORKLOADS[@]} -gt 0 ] || WORKLOADS=(w1 w1-batch w2 w3 w4)

cargo build --release -p danmu-broker -p danmu-bench
ulimit -n "$(ulimit -Hn)"

echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
echo "# open files: $(ulimit -n)"
echo "# broker: $BROKER --config $CONFIG"

# BROKER_ENV: extra settings of the broker for one run, e.g. "DANMU__CLIENT__WRITE_TIMEOUT_MS=2000".
run() {
  local name=$1; shift
  # shellcheck disable=SC2086 # BROKER_ENV is a list of NAME=value words
  env RUST_LOG=warn DANMU__SERVER__PORT=$PORT DANMU__SERVER__PUBLIC_URL=ws://127.0.0.1:$PORT ${BROKER_ENV:-} \
    "$BROKER" --config "$CONFIG" > "/tmp/danmu-broker-$name.log" 2>&1 &
  local broker=$!
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    sleep 0.1
  done
  echo
  echo "# $(date -u +%FT%TZ) $name, $(uptime | sed 's/.*load/load/')${BROKER_ENV:+, broker with $BROKER_ENV}"
  echo "# ./target/release/danmu-bench --url ws://127.0.0.1:$PORT --broker-pid $broker $*"
  timeout 900 ./target/release/danmu-bench --url "ws://127.0.0.1:$PORT" --broker-pid "$broker" \
    --json-out "$OUT" "$@" | grep -v '^{' || true
  kill "$broker" 2>/dev/null || true
  wait "$broker" 2>/dev/null || true
}

for w in "${WORKLOADS[@]}"; do
  case $w in
    w1) run w1 --workload w1 --label W1 ;;
    w1-batch) run w1-batch --workload w1 --batch --label W1-batch ;;
    w2) run w2 --workload w2 --label W2 ;;
    w3) run w3 --workload w3 --label W3 --connect-rate 2000 --duration-s 20 ;;
    w4) run w4 --workload w4 --label W4 ;;
    # Burst memory (issue 19): a 2 s write timeout, so that the members that read nothing go soon.
    w7) BROKER_ENV="DANMU__CLIENT__WRITE_TIMEOUT_MS=2000" run w7 --workload w7 --label W7 --write-timeout-ms 2000
        # Who the broker closed as too slow, and why (W7's readers are u0..u999).
        grep -o -- "-u[0-9]*: too slow in [^ ]* ([^)]*)" "/tmp/danmu-broker-w7.log" \
          | sed -E 's/^-u([0-9]+): too slow in [^ ]+ /\1 /' \
          | awk '{ who = ($1 < 1000) ? "reader" : "read nothing"; $1 = ""; n[who ":" $0]++ }
                 END { for (k in n) print "# broker log, too slow: " n[k] " x " k }' || true ;;
    *) echo "unknown workload $w (w1 w1-batch w2 w3 w4 w7)" >&2; exit 2 ;;
  esac
done
