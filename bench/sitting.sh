#!/usr/bin/env bash
# One benchmark sitting (issue 7): builds in release mode, then for each workload starts a fresh
# broker (so that RSS figures start from zero) on a loopback port, runs danmu-bench against it,
# and stops it. Prints the machine, the commit and each command; the results table goes to the
# terminal, the JSON lines to $OUT (default bench-results.jsonl).
#
#   bench/sitting.sh                 # W1, W1 batch=1, W2, W3, W4
#   bench/sitting.sh w1 w4           # only these
#   bench/sitting.sh w7 w7           # W7 (burst memory, issue 19) twice
#   bench/sitting.sh w6              # W6 (issue 20): plain, deflate, plain, deflate; then the ratios
#   ROUNDS=3 bench/sitting.sh w6 w3-deflate   # three rounds of W6; W3 with the extension
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

# W6's last N runs from $OUT: per run the wire's bytes per event, the broker's CPU per delivery,
# p99 and the clients' inflating; then deflate against plain (means over the runs).
w6_summary() {
  python3 - "$OUT" "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{"label":"W6-')][-int(sys.argv[2]):]
print("| run | broker deliveries/s | checked: delivered (expected) | wire B/event | broker CPU % | broker ns/delivery | p99 ms | inflate ns/event | inflate % | gen CPU % | load | ok |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f'| {r["label"]} | {r["broker_deliveries_per_s"]:,.0f} | {r["delivered"]:,} ({r["expected"]:,}) | {r["wire_bytes_per_event"]:.1f} | '
          f'{r["broker_cpu_pct"]:.1f} | {r["broker_cpu_ns_per_delivery"]:.0f} | {r["lat_p99_ms"]} | '
          f'{r["inflate_ns_per_event"]:.0f} | {r["inflate_cpu_pct"]:.1f} | {r["gen_cpu_pct"]:.1f} | {r["load_avg_1m"]} | '
          f'{"yes" if r["ok"] else "NO"} |')
mean = lambda rs, k: sum(r[k] for r in rs) / max(len(rs), 1)
plain = [r for r in rows if not r["deflate"]]
zipped = [r for r in rows if r["deflate"]]
if plain and zipped:
    b = mean(plain, "wire_bytes_per_event") / max(mean(zipped, "wire_bytes_per_event"), 1e-9)
    c = mean(zipped, "broker_cpu_ns_per_delivery") / max(mean(plain, "broker_cpu_ns_per_delivery"), 1e-9)
    print(f"# W6: deflate {mean(zipped, 'wire_bytes_per_event'):.1f} B/event against {mean(plain, 'wire_bytes_per_event'):.1f}"
          f" ({b:.2f}x fewer; done when >= 4x and <= 75 B); broker CPU per delivery {c:.2f}x (done when <= 1.15x);"
          f" p99 deflate {max(r['lat_p99_ms'] for r in zipped)} ms at most (bound {zipped[0]['latency_bound_ms']:.0f} ms)")
PY
}

for w in "${WORKLOADS[@]}"; do
  case $w in
    w1) run w1 --workload w1 --label W1 ;;
    w1-batch) run w1-batch --workload w1 --batch --label W1-batch ;;
    w2) run w2 --workload w2 --label W2 ;;
    w3) run w3 --workload w3 --label W3 --connect-rate 2000 --duration-s 20 ;;
    w3-deflate) run w3-deflate --workload w3 --deflate --label W3-deflate --connect-rate 2000 --duration-s 20 ;;
    # Compression (issue 20): the same run without and with permessage-deflate, alternating.
    w6) for round in $(seq "${ROUNDS:-2}"); do
          run w6-plain --workload w6 --label "W6-plain-$round"
          run w6-deflate --workload w6 --deflate --label "W6-deflate-$round"
        done
        w6_summary "$((2 * ${ROUNDS:-2}))" ;;
    w4) run w4 --workload w4 --label W4 ;;
    # Burst memory (issue 19): a 2 s write timeout, so that the members that read nothing go soon.
    w7) BROKER_ENV="DANMU__CLIENT__WRITE_TIMEOUT_MS=2000" run w7 --workload w7 --label W7 --write-timeout-ms 2000
        # Who the broker closed as too slow, and why (W7's readers are u0..u999).
        grep -o -- "-u[0-9]*: too slow in [^ ]* ([^)]*)" "/tmp/danmu-broker-w7.log" \
          | sed -E 's/^-u([0-9]+): too slow in [^ ]+ /\1 /' \
          | awk '{ who = ($1 < 1000) ? "reader" : "read nothing"; $1 = ""; n[who ":" $0]++ }
                 END { for (k in n) print "# broker log, too slow: " n[k] " x " k }' || true ;;
    *) echo "unknown workload $w (w1 w1-batch w2 w3 w3-deflate w4 w6 w7)" >&2; exit 2 ;;
  esac
done
