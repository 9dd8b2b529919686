#!/usr/bin/env bash
# Benchmark (not a test): one 64-byte broadcast to 1,000 and 10,000 connections, against this
# project's copas server (Lua 5.4), Node's ws (a loop over wss.clients) and Python's
# websockets.broadcast; then the same over two processes of a cluster (Redis pub/sub), half
# of the connections on each. The servers run on core 0, the load generator on core 1; the
# listening connections are raw sockets that count bytes (tools/loadgen fanout). Each row is
# ROUNDS runs; a run is BROADCASTS broadcasts one at a time (the time until the last
# connection has one: median and 99th percentile over the run) and then BROADCASTS
# broadcasts triggered back to back (deliveries per second, and the server's CPU time per
# delivery meanwhile: all its threads, user and kernel; for a cluster, both processes). The
# row gives the medians over the runs and the spread of the deliveries per second.
#   bash bench/fanout.sh            SIZES="1000 10000" ROUNDS=3 BROADCASTS=100 LUA=lua5.4
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
LUA=${LUA:-lua5.4}
SIZES=${SIZES:-"1000 10000"}
ROUNDS=${ROUNDS:-3}
BROADCASTS=${BROADCASTS:-100}

prepare_lua "$LUA"
ensure_python_websockets
ensure_node_ws
cargo build --locked --release -q -p loadgen
ulimit -n "$(ulimit -Hn)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# Starts `command` on core 0, logging to build/run/fanout-<name>.log, and waits for its
# "listening" line.
start() {
  local name=$1
  shift
  taskset -c 0 "$@" >"build/run/fanout-$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q listening "build/run/fanout-$name.log" && return; sleep 0.1; done
  echo "$name did not start" >&2
  cat "build/run/fanout-$name.log" >&2
  exit 1
}

# One row: ROUNDS runs of loadgen fanout with the given targets, against the server
# processes in SERVERS (pids).
row() {
  local label=$1 trigger=$2
  shift 2
  local rates=() lasts=() lasts99=() cpus=() output
  for _ in $(seq "$ROUNDS"); do
    output=$(LOADGEN_SERVER_PIDS=$SERVERS taskset -c 1 target/release/loadgen fanout "$trigger" "$BROADCASTS" 64 "$@")
    rates+=("$(awk '{ print $2 }' <<<"$output")")
    lasts+=("$(awk '{ print $4 }' <<<"$output")")
    lasts99+=("$(awk '{ print $6 }' <<<"$output")")
    cpus+=("$(awk '{ print $14 }' <<<"$output")")
  done
  python3 - "$label" "${rates[*]}" "${lasts[*]}" "${lasts99[*]}" "${cpus[*]}" <<'PY'
import statistics, sys
label = sys.argv[1]
rates, lasts, lasts99, cpus = ([float(v) for v in arg.split()] for arg in sys.argv[2:6])
print(f"| {label} | {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
      f"| {statistics.median(lasts):.2f} / {statistics.median(lasts99):.2f} | {statistics.median(cpus):.2f} |")
PY
}

echo "| server, connections | deliveries/s (median) | spread | ms until the last has it, p50 / p99 (medians) | server CPU µs per delivery (median) |"
echo "|---|---|---|---|---|"
for size in $SIZES; do
  port=$(free_port)
  start "ours-$size" "$LUA" bench/fanout-server.lua "$port"
  SERVERS=${pids[-1]} row "lua-websockets-rs ($LUA), $size" "ws://127.0.0.1:$port/" "ws://127.0.0.1:$port/:$size"
  kill "${pids[-1]}"
  port=$(free_port)
  start "node-$size" env NODE_PATH=build/node/node_modules node bench/fanout-server.cjs "$port"
  SERVERS=${pids[-1]} row "Node ws, $size" "ws://127.0.0.1:$port/" "ws://127.0.0.1:$port/:$size"
  kill "${pids[-1]}"
  port=$(free_port)
  start "python-$size" build/venv/bin/python bench/fanout-server.py "$port"
  SERVERS=${pids[-1]} row "Python websockets, $size" "ws://127.0.0.1:$port/" "ws://127.0.0.1:$port/:$size"
  kill "${pids[-1]}"
done

# Across processes: two cluster processes (reuse_port off: one port each), Redis on core 1.
if command -v redis-server >/dev/null; then
  redis_port=$(free_port)
  taskset -c 1 redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >build/run/fanout-redis.log 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break; sleep 0.1; done
  for size in $SIZES; do
    first=$(free_port)
    start "cluster-a-$size" "$LUA" bench/fanout-server.lua "$first" "redis://127.0.0.1:$redis_port"
    second=$(free_port)
    start "cluster-b-$size" "$LUA" bench/fanout-server.lua "$second" "redis://127.0.0.1:$redis_port"
    half=$((size / 2))
    SERVERS="${pids[-1]} ${pids[-2]}" row "lua-websockets-rs, 2 processes over Redis, $size" "ws://127.0.0.1:$first/" \
      "ws://127.0.0.1:$first/:$half" "ws://127.0.0.1:$second/:$half"
    kill "${pids[-1]}" "${pids[-2]}"
  done
fi
