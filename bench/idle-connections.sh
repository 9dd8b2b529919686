#!/usr/bin/env bash
# Benchmark (not a test): 10,000 concurrent idle connections to one copas server process
# (examples/echo-server-copas.lua on Lua 5.4). Reports the server's RSS with all connections
# open and its CPU time over 10 s while they are idle, then checks every connection still
# echoes. CONNECTIONS, IDLE_SECONDS and LUA override the defaults; PING_INTERVAL (seconds)
# turns the server's keepalive on (the load generator answers the pings).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
LUA=${LUA:-lua5.4}
CONNECTIONS=${CONNECTIONS:-10000}
IDLE_SECONDS=${IDLE_SECONDS:-10}

prepare_lua "$LUA"
cargo build --locked --release -q -p loadgen
# One descriptor per connection on each side, plus some.
ulimit -n "$(ulimit -Hn)"

port=$(free_port)
"$LUA" examples/echo-server-copas.lua "$port" ${PING_INTERVAL:-} >build/run/bench-server.log 2>&1 &
server=$!
trap 'kill $server $client 2>/dev/null || true' EXIT
until grep -q listening build/run/bench-server.log; do sleep 0.1; done
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$server/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
echo "server pid $server, RSS before connections: $(($(rss_kib) / 1024)) MiB"

started=$(date +%s.%N)
mkfifo build/run/bench-loadgen.fifo 2>/dev/null || true
target/release/loadgen idle "ws://127.0.0.1:$port/" "$CONNECTIONS" $((IDLE_SECONDS + 2)) >build/run/bench-loadgen.fifo &
client=$!
exec 4<build/run/bench-loadgen.fifo
read -r _ opened <&4
echo "opened $opened connections in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
sleep 1
ticks_before=$(cpu_ticks)
sleep "$IDLE_SECONDS"
ticks_after=$(cpu_ticks)
hz=$(getconf CLK_TCK)
echo "server RSS with $opened connections: $(($(rss_kib) / 1024)) MiB"
awk -v t=$((ticks_after - ticks_before)) -v hz="$hz" -v s="$IDLE_SECONDS" \
  'BEGIN { printf "server CPU while idle for %d s: %.2f s (%.2f %%)\n", s, t / hz, 100 * t / hz / s }'
read -r _ echoed _ sampled _ _ _ round_trip _ _ pings <&4
echo "connections still echoing after the idle time: ${echoed} of a sample of ${sampled%,}"
[ -n "${PING_INTERVAL:-}" ] && echo "keepalive every $PING_INTERVAL s: $pings pings answered while idle"
echo "one message at a time with all $opened connections open: mean round trip $round_trip ms"
