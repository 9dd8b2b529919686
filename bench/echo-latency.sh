#!/usr/bin/env bash
# Benchmark (not a test): one connection echoing 16-byte messages one at a time, against the
# copas echo server (examples/echo-server-copas.lua) and against a plain tokio-tungstenite
# echo server (tools/testpeer), all pinned to one core as in docs/design.md.
# Three rounds; prints each and the copas/plain ratio of the medians.
# COUNT, SIZE and LUA override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
LUA=${LUA:-lua5.4}
COUNT=${COUNT:-50000}
SIZE=${SIZE:-16}

prepare_lua "$LUA"
cargo build --locked --release -q -p loadgen -p testpeer

port=$(free_port)
taskset -c 0 "$LUA" examples/echo-server-copas.lua "$port" >build/run/bench-server.log 2>&1 &
copas_server=$!
rm -f build/run/bench-plain.ports
taskset -c 0 target/release/testpeer build/run/bench-plain.ports >/dev/null 2>&1 &
plain_server=$!
trap 'kill $copas_server $plain_server 2>/dev/null || true' EXIT
until grep -q listening build/run/bench-server.log && [ -s build/run/bench-plain.ports ]; do sleep 0.1; done
plain_port=$(sed -n 's/^plain=//p' build/run/bench-plain.ports)

run() { taskset -c 0 target/release/loadgen echo "$1" "$COUNT" "$SIZE"; }
copas_rates=() plain_rates=()
for round in 1 2 3; do
  copas=$(run "ws://127.0.0.1:$port/")
  plain=$(run "ws://127.0.0.1:$plain_port/echo")
  echo "round $round: copas server ($LUA): $copas"
  echo "round $round: tokio-tungstenite:  $plain"
  copas_rates+=("$(awk '{ print $2 }' <<<"$copas")")
  plain_rates+=("$(awk '{ print $2 }' <<<"$plain")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
awk -v c="$(median "${copas_rates[@]}")" -v p="$(median "${plain_rates[@]}")" -v s="$SIZE" \
  'BEGIN { printf "median messages/s at %d bytes: copas %d, plain %d, ratio %.2f\n", s, c, p, c / p }'
