#!/usr/bin/env bash
# Benchmark (not a test): 1,000 connections echoing 64-byte messages against one copas server
# process, then against two processes sharing the port with reuse_port
# (bench/reuse-port-echo.lua, Lua 5.4, one or two of them), nothing pinned.
# Two load generators of 500 connections each, so that the load is not one process's core.
# Prints per round the messages per second and the CPU time per message of the servers and
# of the load generators, then the ratio of the medians. The load generators share the two
# cores with the servers: with L their CPU per message and S the one server's, two servers
# can reach at most 2 / (1 + L/S) times one server's throughput (one server is limited by
# its own core; two by both cores, which the generators use too). The script prints that
# bound beside the ratio.
#   bash bench/scale-out.sh         ROUNDS=3 LUA=lua5.4
#
# QUOTA=<cores> (as root, with the cgroup v1 cpu controller) measures with every server
# process in a cgroup of its own limited to that many cores (cpu.cfs_quota_us), so that the
# servers are the bottleneck and the load generators have the rest of the machine: 1 process
# against N (default "2 4"), first the 1,000-connection echo with reuse_port, then the cluster
# path: chat rooms of ten connections spread over the processes (each on a port of its own,
# all on one Redis channel; redis-server and the load generator unlimited), every message
# published to its room (`loadgen rooms`: lost and duplicated deliveries counted per
# connection). Prints each N's ratio to one process (the goal: at least 0.8 N).
#   QUOTA=0.3 N="2 4" bash bench/scale-out.sh      ROOMS_CONNECTIONS=1000 ROOMS_MESSAGES=100
#   WORKLOADS=rooms (or echo) measures one of the two only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
source bench/lib/server-cpu.sh
LUA=${LUA:-lua5.4}
ROUNDS=${ROUNDS:-3}

prepare_lua "$LUA"
cargo build --locked --release -q -p loadgen
ulimit -n "$(ulimit -Hn)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }


# One round: two loadgen processes (500 connections x 100 messages each) at once. Prints
# "messages/s server-µs-per-message loadgen-µs-per-message".
load() {
  local url=$1 first second before
  first=$(mktemp)
  second=$(mktemp)
  before=$(servers_cpu_ns)
  target/release/loadgen many "$url" 500 100 64 >"$first" &
  local a=$!
  target/release/loadgen many "$url" 500 100 64 >"$second" &
  wait "$a" $!
  cat "$first" "$second" | awk -v servers_ns="$(($(servers_cpu_ns) - before))" '
    { rate += $2; loadgen_s += $4 }
    END { printf "%.0f %.2f %.2f\n", rate, servers_ns / 1e3 / 100000, loadgen_s * 1e6 / 100000 }'
  rm -f "$first" "$second"
}

# ROUNDS rounds against `url`; prints the medians: messages/s, server µs, loadgen µs.
measure() {
  local label=$1 url=$2 rounds=()
  for _ in $(seq "$ROUNDS"); do rounds+=("$(load "$url")"); done
  printf '%s (messages/s, server and load generator CPU µs per message):\n' "$label" >&2
  printf '  %s\n' "${rounds[@]}" >&2
  printf '%s\n' "${rounds[@]}" | python3 -c '
import statistics, sys
rows = [[float(v) for v in line.split()] for line in sys.stdin]
print(" ".join(str(statistics.median(column)) for column in zip(*rows)))'
}

if [ -n "${QUOTA:-}" ]; then
  source bench/lib/quota.sh
  run_quota_mode
  exit 0
fi

port=$(free_port)
"$LUA" bench/reuse-port-echo.lua "$port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$port"
one=$(SERVERS=${pids[-1]} measure "one process" "ws://127.0.0.1:$port/")
kill "${pids[-1]}"

port=$(free_port)
"$LUA" bench/reuse-port-echo.lua "$port" >/dev/null 2>&1 &
pids+=($!)
"$LUA" bench/reuse-port-echo.lua "$port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$port"
sleep 0.5
two=$(SERVERS="${pids[-1]} ${pids[-2]}" measure "two processes, reuse_port" "ws://127.0.0.1:$port/")
python3 - $one $two <<'PY'
import sys
one, server_us, loadgen_us, two, two_server_us, _ = map(float, sys.argv[1:])
print(f"median: one process {one:,.0f} msg/s, two processes {two:,.0f} msg/s, ratio {two / one:.2f}; "
      f"server CPU per message {server_us:.2f} µs (one) and {two_server_us:.2f} µs (two), "
      f"load generators {loadgen_us:.2f} µs: at most {2 / (1 + loadgen_us / server_us):.2f} on two shared cores")
PY
