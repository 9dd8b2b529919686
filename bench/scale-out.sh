#!/usr/bin/env bash
# Benchmark (not a test): 1,000 connections echoing 64-byte messages against one copas server
# process, then against two processes sharing the port with reuse_port
# (bench/reuse-port-echo.lua, Lua 5.4, one or two of them), nothing pinned.
# Two load generators of 500 connections each, so that the load is not one process's core.
# Prints messages per second per round and the ratio of the medians.
#   bash bench/scale-out.sh         ROUNDS=3 LUA=lua5.4
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
LUA=${LUA:-lua5.4}
ROUNDS=${ROUNDS:-3}

prepare_lua "$LUA"
cargo build --locked --release -q -p loadgen
ulimit -n "$(ulimit -Hn)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

# Messages per second of two loadgen processes (500 connections x 50 messages each) at once.
load() {
  local url=$1 first second
  first=$(mktemp)
  second=$(mktemp)
  target/release/loadgen many "$url" 500 50 64 >"$first" &
  local a=$!
  target/release/loadgen many "$url" 500 50 64 >"$second" &
  wait "$a" $!
  cat "$first" "$second" | awk '{ for (i = 1; i < NF; i++) if ($i == "messages/s") total += $(i + 1) } END { printf "%.0f", total }'
  rm -f "$first" "$second"
}

measure() {
  local label=$1 url=$2 values=()
  for _ in $(seq "$ROUNDS"); do values+=("$(load "$url")"); done
  echo "$label: ${values[*]} messages/s" >&2
  python3 -c 'import statistics, sys; print(statistics.median(float(v) for v in sys.argv[1:]))' "${values[@]}"
}

port=$(free_port)
"$LUA" bench/reuse-port-echo.lua "$port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$port"
one=$(measure "one process" "ws://127.0.0.1:$port/")
kill "${pids[-1]}"

port=$(free_port)
"$LUA" bench/reuse-port-echo.lua "$port" >/dev/null 2>&1 &
pids+=($!)
"$LUA" bench/reuse-port-echo.lua "$port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$port"
sleep 0.5
two=$(measure "two processes, reuse_port" "ws://127.0.0.1:$port/")
python3 -c 'import sys; one, two = map(float, sys.argv[1:]); print(f"median: one process {one:,.0f} msg/s, two processes {two:,.0f} msg/s, ratio {two / one:.2f}")' "$one" "$two"
