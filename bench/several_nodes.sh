#!/usr/bin/env bash
# The several-nodes sitting (issue 12), in one go on one machine: builds in release mode, starts
# its own redis-server on a free loopback port, and runs, each on fresh processes:
#
#   one    W1 on one node, memory store (the single-node broker)
#   redis1 W1 on one node sharing its rooms through Redis (the cost of the Redis hop)
#   two    W1 over two nodes on one Redis: the 2000 members spread over both, one pusher per node
#   ack    light load, no clients: 100 pushes/s, the ack latency of a push, memory vs Redis
#   quiet  W8 over two nodes on one Redis (issue 21): 5000 rooms of 2 members, one on each node
#          (node A's members join first, so A owns every room), 1 push/s a room, one pusher
#          per node; pushes go round-robin over the rooms and the pushers, so with an even
#          number of rooms room r's pushes all come through node r mod 2: half of them reach
#          the owner, half the other node. Redis's commands, CPU and bytes per push and the
#          calls per push by command (INFO commandstats)
#   idle   W9 on two nodes on one Redis (issue 21): 10 s of the two nodes with no rooms (the
#          baseline), then 1000 rooms of 1 member, all on node A (which owns them; node B runs
#          beside with nothing to do), nothing pushed; 5 s to settle, then 10 s of Redis's
#          commands a second per room (gross, and net of the baseline), by command, its CPU
#
# Not in the default set: quiet and idle (run them by name). Prints the machine, the commit,
# the broker and each command; the tables go to the terminal (with --redis-port a line of
# Redis's figures and one of its commands by name under each row), the JSON lines to $OUT.
#
#   bench/several_nodes.sh                  # one redis1 two ack
#   bench/several_nodes.sh two ack          # some
#   bench/several_nodes.sh quiet idle       # issue 21's pair
#   RATES=400,1200 bench/several_nodes.sh   # W1's steps (default 400,800,1200)
#   QUIET_ROOMS=200 IDLE_ROOMS=50 bench/several_nodes.sh quiet idle   # smaller (defaults 5000, 1000)
#   IDLE_MEMBERS=2 bench/several_nodes.sh idle   # W9 with a member of each room on each node
#   ACK_DURATION=60 bench/several_nodes.sh ack    # long enough for the rooms' checkpoints
#   BROKER=/tmp/old/danmu-broker CONFIG=/tmp/old/config.yaml bench/several_nodes.sh quiet idle
#          # another build in the same sitting: BROKER is the binary (default
#          # ./target/release/danmu-broker, built here), CONFIG its config file (default
#          # config.yaml; an older binary refuses keys it does not know). The generator is
#          # always this tree's; with BROKER set only it is built.
#
# Loopback only; every run is bounded in time; the processes it starts are stopped by PID.
set -euo pipefail
# BROKER and CONFIG as given, from where the script was started.
[ -z "${BROKER:-}" ] || BROKER=$(realpath "$BROKER")
[ -z "${CONFIG:-}" ] || CONFIG=$(realpath "$CONFIG")
cd "$(dirname "$0")/.."

OUT=${OUT:-several-nodes-results.jsonl}
RATES=${RATES:-400,800,1200}
QUIET_ROOMS=${QUIET_ROOMS:-5000}
# W8's rooms settle first: each room's lease moves to the node its pushes arrive on after 5 s
# of pushes (src/room_redis/handoff.rs), so the measurement starts after 10 s.
QUIET_WARMUP=${QUIET_WARMUP:-10}
# The ack run's measurement; 60 puts each room's checkpoints (every 256 commits) inside it.
ACK_DURATION=${ACK_DURATION:-10}
IDLE_ROOMS=${IDLE_ROOMS:-1000}
IDLE_MEMBERS=${IDLE_MEMBERS:-1}
CONFIG=${CONFIG:-config.yaml}
RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(one redis1 two ack)

if [ -n "${BROKER:-}" ]; then
  cargo build --release -p danmu-bench
else
  BROKER=./target/release/danmu-broker
  cargo build --release -p danmu-broker -p danmu-bench
fi
[ -x "$BROKER" ] || { echo "BROKER=$BROKER is not an executable" >&2; exit 2; }
[ -f "$CONFIG" ] || { echo "CONFIG=$CONFIG is not a file" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)')"
echo "# redis: $(redis-server --version | cut -d' ' -f3)"
echo "# broker: $BROKER ($(timeout 5 "$BROKER" --version 2>/dev/null || echo "?")), config $CONFIG"

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
    "$BROKER" --config "$CONFIG" > "/tmp/danmu-bench-$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
}

# pair NAME: two nodes on the run's Redis, NAME-a and NAME-b; their URLs go to $PAIR.
pair() {
  local a b
  a=$(free_port); b=$(free_port)
  node "$1-a" "$a" redis; node "$1-b" "$b" redis
  PAIR="ws://127.0.0.1:$a,ws://127.0.0.1:$b"
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
      pair two
      bench --url "$PAIR" --pushers 2 --workload w1 --rate "$RATES" \
        --redis-port "$REDIS_PORT" --label W1-two ;;
    ack)
      p=$(free_port); node ack-memory "$p" memory
      bench --url "ws://127.0.0.1:$p" --clients 0 --rooms 10 --rate 100 --label ack-memory
      stop_nodes
      p=$(free_port); node ack-redis "$p" redis
      bench --url "ws://127.0.0.1:$p" --clients 0 --rooms 10 --rate 100 --duration-s "$ACK_DURATION" \
        --redis-port "$REDIS_PORT" --label ack-redis ;;
    quiet)
      pair quiet
      bench --url "$PAIR" --pushers 2 --workload w8 --rooms "$QUIET_ROOMS" --warmup-s "$QUIET_WARMUP" \
        --redis-port "$REDIS_PORT" --label W8-quiet ;;
    idle)
      pair idle
      bench --url "$PAIR" --workload w9 --rooms "$IDLE_ROOMS" \
        --clients $((IDLE_ROOMS * IDLE_MEMBERS)) --redis-port "$REDIS_PORT" --label W9-idle ;;
    *) echo "unknown run $run (one redis1 two ack quiet idle)" >&2; exit 2 ;;
  esac
  stop_nodes
done
