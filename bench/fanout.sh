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
# row gives the medians over the runs and the spread of the deliveries per second. The
# servers of one size take their runs in turn.
# DEFLATE=1 measures compressed broadcasts instead: every server agrees to permessage-deflate
# (Node's ws with perMessageDeflate and threshold 0, Python's websockets with its default,
# ours with compression = 'deflate'), the listeners offer it without context takeover and
# the message is a JSON chat message of MESSAGE bytes (default 1024; 64 without DEFLATE).
# TOPICS=N measures publishes to topics instead: each listening connection subscribes to one
# of N topics, and the trigger publishes to one topic at a time, in turn, against this
# project's server (with max_buffered = MAX_BUFFERED, 1 MiB, and on_backpressure 'drop')
# and Node's ws keeping a Set per topic; then this project's server again with SLOW of the
# connections (default 1 %) never reading.
#   bash bench/fanout.sh            SIZES="1000 10000" ROUNDS=3 BROADCASTS=100 LUA=lua5.4
#   TOPICS=100 SIZES=10000 BROADCASTS=1000 bash bench/fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
source bench/lib/server-cpu.sh
LUA=${LUA:-lua5.4}
SIZES=${SIZES:-"1000 10000"}
ROUNDS=${ROUNDS:-3}
BROADCASTS=${BROADCASTS:-100}
if [ -n "${DEFLATE:-}" ]; then
  MESSAGE=${MESSAGE:-1024}
  export FANOUT_DEFLATE=1 LOADGEN_DEFLATE=1
else
  MESSAGE=${MESSAGE:-64}
fi

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

# One run of loadgen fanout with the given targets against the server processes in SERVERS
# (pids); appends "deliveries/s p50-ms p99-ms cpu-µs" to build/run/fanout-<name>.results.
run_once() {
  local name=$1 trigger=$2 output
  shift 2
  output=$(LOADGEN_SERVER_PIDS=$SERVERS taskset -c 1 target/release/loadgen fanout "$trigger" "$BROADCASTS" "$MESSAGE" "$@")
  awk '{ print $2, $4, $6, $16, $14 }' <<<"$output" >>"build/run/fanout-$name.results"
  wait_idle
}

# Waits (up to 10 s) until the servers in SERVERS are done closing the run's connections, so
# that the next run has core 0 to itself.
wait_idle() {
  local before after
  for _ in $(seq 50); do
    before=$(servers_cpu_ns)
    sleep 0.2
    after=$(servers_cpu_ns)
    [ $((after - before)) -lt 2000000 ] && return
  done
}

# The table row for label $1 from build/run/fanout-$2.results: medians, and the spread of
# the deliveries per second.
row() {
  python3 - "$1" "build/run/fanout-$2.results" <<'PY'
import statistics, sys
label, path = sys.argv[1:3]
rates, lasts, lasts99, cpus, frames = zip(*([float(v) for v in line.split()] for line in open(path)))
print(f"| {label} | {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
      f"| {statistics.median(lasts):.2f} / {statistics.median(lasts99):.2f} | {statistics.median(cpus):.2f} "
      f"| {statistics.median(frames):,.0f} |")
PY
}

echo "| server, connections | deliveries/s (median) | spread | ms until the last has it, p50 / p99 (medians) | server CPU µs per delivery (median) | bytes per delivery |"
echo "|---|---|---|---|---|---|"

if [ -n "${TOPICS:-}" ]; then
  export LOADGEN_TOPICS=$TOPICS FANOUT_MAX_BUFFERED=${MAX_BUFFERED:-1048576}
  for size in $SIZES; do
    slow=${SLOW:-$((size / 100))}
    ports=("$(free_port)" "$(free_port)")
    start "ours-topics-$size" "$LUA" bench/fanout-server.lua "${ports[0]}"
    start "node-topics-$size" env NODE_PATH=build/node/node_modules node bench/fanout-server.cjs "${ports[1]}"
    servers=("${pids[@]: -2}")
    rm -f build/run/fanout-{ours,node,ours-slow}-topics-"$size".results
    for _ in $(seq "$ROUNDS"); do
      for i in 0 1; do
        url="ws://127.0.0.1:${ports[$i]}/"
        name=$([ "$i" = 0 ] && echo ours || echo node)
        SERVERS=${servers[$i]} run_once "$name-topics-$size" "$url" "$url:$size"
      done
      url="ws://127.0.0.1:${ports[0]}/"
      LOADGEN_SLOW=$slow SERVERS=${servers[0]} run_once "ours-slow-topics-$size" "$url" "$url:$size"
    done
    row "lua-websockets-rs ($LUA), $size over $TOPICS topics" "ours-topics-$size"
    row "Node ws, $size over $TOPICS topics" "node-topics-$size"
    row "lua-websockets-rs ($LUA), $size over $TOPICS topics, $slow never reading" "ours-slow-topics-$size"
    kill "${servers[@]}"
  done
  exit 0
fi
# The three servers run side by side, idle but for the one measured, and take their runs in
# turn: a drift in the machine's speed then falls on all of them alike.
for size in $SIZES; do
  names=("ours-$size" "node-$size" "python-$size")
  labels=("lua-websockets-rs ($LUA), $size" "Node ws, $size" "Python websockets, $size")
  ports=("$(free_port)" "$(free_port)" "$(free_port)")
  start "${names[0]}" "$LUA" bench/fanout-server.lua "${ports[0]}"
  start "${names[1]}" env NODE_PATH=build/node/node_modules node bench/fanout-server.cjs "${ports[1]}"
  start "${names[2]}" build/venv/bin/python bench/fanout-server.py "${ports[2]}"
  servers=("${pids[@]: -3}")
  rm -f build/run/fanout-{ours,node,python}-"$size".results
  for _ in $(seq "$ROUNDS"); do
    for i in 0 1 2; do
      url="ws://127.0.0.1:${ports[$i]}/"
      SERVERS=${servers[$i]} run_once "${names[$i]}" "$url" "$url:$size"
    done
  done
  for i in 0 1 2; do row "${labels[$i]}" "${names[$i]}"; done
  kill "${servers[@]}"
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
    rm -f "build/run/fanout-cluster-$size.results"
    for _ in $(seq "$ROUNDS"); do
      SERVERS="${pids[-1]} ${pids[-2]}" run_once "cluster-$size" "ws://127.0.0.1:$first/" \
        "ws://127.0.0.1:$first/:$half" "ws://127.0.0.1:$second/:$half"
    done
    row "lua-websockets-rs, 2 processes over Redis, $size" "cluster-$size"
    kill "${pids[-1]}" "${pids[-2]}"
  done
fi
