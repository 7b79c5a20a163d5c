#!/usr/bin/env bash
# The several-nodes sitting (issue 12), in one go on one machine: builds in release mode, starts
# its own redis-server on a free loopback port, and runs, each on fresh processes:
#
#   one    W1 on one node, memory store (the single-node broker)
#   redis1 W1 on one node sharing its rooms through Redis (the cost of the Redis hop)
#   two    W1 over two nodes on one Redis: the 2000 members spread over both, one pusher per node
#   ack    light load, no clients: 100 pushes/s, the ack latency of a push, memory vs Redis
#
# Prints the machine, the commit and each command; the table goes to the terminal (Redis's CPU
# and the Redis commands per acknowledged push in the last two columns), the JSON lines to $OUT.
#
#   bench/several_nodes.sh                  # all four
#   bench/several_nodes.sh two ack          # some
#   RATES=400,1200 bench/several_nodes.sh   # W1's steps (default 400,800,1200)
#
# Loopback only; every run is bounded in time; the processes it starts are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-several-nodes-results.jsonl}
RATES=${RATES:-400,800,1200}
RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(one redis1 two ack)

cargo build --release -p danmu-broker -p danmu-bench
ulimit -n "$(ulimit -Hn)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
echo "# redis: $(redis-server --version | cut -d' ' -f3)"

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no > /tmp/danmu-bench-redis.log 2>&1 &
REDIS=$!
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}" "$REDIS"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1 && break; sleep 0.1; done

# node NAME PORT STORE-KIND: starts a broker; its pid is appended to PIDS. The nodes of one run
# share one key prefix ($run): a node with a prefix of its own would share nothing with the others.
node() {
  local name=$1 port=$2 kind=$3
  RUST_LOG=${NODE_LOG:-warn} DANMU__SERVER__PORT=$port DANMU__SERVER__PUBLIC_URL=ws://127.0.0.1:$port \
    DANMU__STORE__KIND=$kind DANMU__STORE__REDIS_URL=redis://127.0.0.1:$REDIS_PORT DANMU__STORE__SHARED_ROOMS=true \
    DANMU__STORE__KEY_PREFIX="bench-$run-$$:" DANMU__STORE__NODE_ID="$name" \
    ./target/release/danmu-broker --config config.yaml > "/tmp/danmu-bench-$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
}

stop_nodes() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

bench() {
  echo "# $(date -u +%FT%TZ) $(uptime | sed 's/.*load/load/')"
  echo "# ./target/release/danmu-bench $*"
  timeout 900 ./target/release/danmu-bench --json-out "$OUT" "$@" | grep -v '^{' || true
}

for run in "${RUNS[@]}"; do
  echo
  case $run in
    one)
      p=$(free_port); node one "$p" memory
      bench --url "ws://127.0.0.1:$p" --workload w1 --rate "$RATES" --label W1-one ;;
    redis1)
      p=$(free_port); node redis1 "$p" redis
      bench --url "ws://127.0.0.1:$p" --workload w1 --rate "$RATES" --redis-port "$REDIS_PORT" --label W1-redis1 ;;
    two)
      a=$(free_port); b=$(free_port)
      node two-a "$a" redis; node two-b "$b" redis
      bench --url "ws://127.0.0.1:$a,ws://127.0.0.1:$b" --pushers 2 --workload w1 --rate "$RATES" \
        --redis-port "$REDIS_PORT" --label W1-two ;;
    ack)
      p=$(free_port); node ack-memory "$p" memory
      bench --url "ws://127.0.0.1:$p" --clients 0 --rooms 10 --rate 100 --label ack-memory
      stop_nodes
      p=$(free_port); node ack-redis "$p" redis
      bench --url "ws://127.0.0.1:$p" --clients 0 --rooms 10 --rate 100 --redis-port "$REDIS_PORT" --label ack-redis ;;
    *) echo "unknown run $run (one redis1 two ack)" >&2; exit 2 ;;
  esac
  stop_nodes
done
