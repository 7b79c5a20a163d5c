#!/usr/bin/env bash
# A/B sitting: the same workloads against two broker builds, alternating A, B, A, B so that a
# change in the machine's load hits both alike. Each run starts a fresh broker on a loopback
# port and stops it afterwards; the table rows go to the terminal, JSON lines to $OUT.
#
#   bench/compare.sh OLD_BROKER NEW_BROKER [rounds] -- danmu-bench args...
#   bench/compare.sh /tmp/base/danmu-broker target/release/danmu-broker 2 -- --workload w1 --rate 1200
#
# The generator is this tree's target/release/danmu-bench; CONFIG= names the config file both
# brokers read (default ./config.yaml: an older build may not know its newer keys). Loopback
# only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 3 ] || { echo "usage: $0 OLD_BROKER NEW_BROKER [rounds] -- danmu-bench args..." >&2; exit 2; }
A=$1; B=$2; shift 2
ROUNDS=2
if [ "$1" != "--" ]; then ROUNDS=$1; shift; fi
[ "$1" = "--" ] && shift
PORT=${PORT:-18180}
OUT=${OUT:-compare-results.jsonl}
ulimit -n "$(ulimit -Hn)"
echo "# machine: $(nproc) cores, $(uname -r); commit $(git rev-parse --short HEAD)"
echo "# A = $A"
echo "# B = $B"

run() {
  local label=$1 bin=$2; shift 2
  RUST_LOG=warn DANMU__SERVER__PORT=$PORT DANMU__SERVER__PUBLIC_URL=ws://127.0.0.1:$PORT \
    "$bin" --config "${CONFIG:-config.yaml}" > "/tmp/danmu-compare-$label.log" 2>&1 &
  local broker=$!
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break
    sleep 0.1
  done
  echo "# $(date -u +%FT%TZ) $label, $(uptime | sed 's/.*load/load/')"
  timeout 900 ./target/release/danmu-bench --url "ws://127.0.0.1:$PORT" --broker-pid "$broker" \
    --json-out "$OUT" --label "$label" "$@" > /dev/null || true
  kill "$broker" 2>/dev/null || true
  wait "$broker" 2>/dev/null || true
}

for round in $(seq "$ROUNDS"); do
  run "A$round" "$A" "$@"
  run "B$round" "$B" "$@"
done

# One line per run, from the JSON lines this sitting appended.
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| run | pushes/s | ack p99 ms | deliveries/s | p99 ms | lost | dup | ooo | broker CPU % | CPU us/1000 deliveries | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    per = (r["broker_cpu_s"] * 1e6 / r["delivered"] * 1000) if r.get("delivered") else float("nan")
    print(f'| {r["label"]} | {r["pushes_per_s"]:,.0f} | {r["ack_p99_ms"]} | {r.get("deliveries_per_s", 0):,.0f} | '
          f'{r.get("lat_p99_ms", "-")} | {r.get("lost", 0)} | {r.get("duplicated", 0)} | {r.get("out_of_order", 0)} | '
          f'{r["broker_cpu_pct"]:.0f} | {per:.0f} | {r["load_avg_1m"]} |')
PY
