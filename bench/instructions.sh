#!/usr/bin/env bash
# Benchmark (not a test): user-space instructions the server executes per echoed message,
# counted by valgrind's callgrind, which does not move with the machine's load. Servers:
# plain tokio-tungstenite (tools/testpeer, with the 4 KiB read buffer this project uses:
# under valgrind, zero-filling tungstenite's default 128 KiB buffer before every read would
# dominate the count) and this project's copas echo server on each Lua
# of LUAS. For each, two runs of SMALL and LARGE messages of SIZE bytes (loadgen echo) on one
# connection each; instructions per message = (I_large - I_small) / (LARGE - SMALL), which
# takes out the connection's own cost. Kernel work is not counted (the same for every server).
# A second table does the same for whole client processes (tools/loadgen as plain Rust, and
# bench/client.lua's sync and copas clients) against plain tokio-tungstenite's echo server.
# Under valgrind a server is so slow that the next message always waits in the kernel when
# it looks; natively an echo's next message never does, so the paths differ: a third table
# counts the system calls per message of a native run with perf's tracepoints (when perf
# works here), which is where the kernel's share differs.
#   bash bench/instructions.sh      LUAS="lua5.1 lua5.4 luajit" SIZE=16 SMALL=1000 LARGE=6000
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
source bench/lib/callgrind.sh
LUAS=${LUAS:-"lua5.1 lua5.4 luajit"}
SIZE=${SIZE:-16}
SMALL=${SMALL:-1000}
LARGE=${LARGE:-6000}

ensure_system_packages
ensure_rust
ensure_valgrind
mkdir -p build/run
for lua in $LUAS; do install_rock "$lua"; done
cargo build --locked --release -q -p loadgen -p testpeer
pid=
trap 'kill $pid 2>/dev/null || true' EXIT
# The read buffer this project uses (see above), for every run of the plain peer.
export TESTPEER_READ_BUFFER=4096
port_file=build/run/instructions-plain.ports

wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

# Instructions since the last dump of callgrind's counters in process $pid.
dump_instructions() {
  local before after
  before=$(ls build/run/callgrind.out.* 2>/dev/null | wc -l)
  callgrind_control --dump "$pid" >/dev/null
  for _ in $(seq 100); do
    after=$(ls build/run/callgrind.out.* 2>/dev/null | wc -l)
    [ "$after" -gt "$before" ] && break
    sleep 0.1
  done
  local newest
  newest=$(ls -t build/run/callgrind.out.* | head -1)
  awk '/^summary:/ { print $2 }' "$newest"
}

# Starts the server command in $@ under callgrind (its pid in $pid).
start_under_callgrind() {
  rm -f build/run/callgrind.out.*
  valgrind --tool=callgrind --callgrind-out-file=build/run/callgrind.out.%p.%n "$@" \
    >build/run/callgrind-server.log 2>&1 &
  pid=$!
}

# Starts the command in $@ natively (its pid in $pid).
start_native() {
  "$@" >/dev/null 2>&1 &
  pid=$!
}

# Starts plain tokio-tungstenite's echo server with the launcher $1 (start_native or
# start_under_callgrind); its URL in $plain_url.
start_plain_peer() {
  rm -f "$port_file"
  "$1" target/release/testpeer "$port_file"
  for _ in $(seq 300); do [ -s "$port_file" ] && break; sleep 0.1; done
  plain_url="ws://127.0.0.1:$(sed -n 's/^plain=//p' "$port_file")/echo"
}

# Echoes through $url: a warm-up, SMALL and LARGE messages; prints the table row for $1.
measure_row() {
  local label=$1 url=$2 small large
  target/release/loadgen echo "$url" 50 "$SIZE" >/dev/null
  dump_instructions >/dev/null
  target/release/loadgen echo "$url" "$SMALL" "$SIZE" >/dev/null
  small=$(dump_instructions)
  target/release/loadgen echo "$url" "$LARGE" "$SIZE" >/dev/null
  large=$(dump_instructions)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  awk -v l="$label" -v s="$small" -v g="$large" -v n=$((LARGE - SMALL)) \
    'BEGIN { printf "| %s | %.0f |\n", l, (g - s) / n }'
}

echo "| server ($SIZE-byte echo) | instructions per message |"
echo "|---|---|"
start_plain_peer start_under_callgrind
measure_row "tokio-tungstenite (plain Rust)" "$plain_url"
for lua in $LUAS; do
  use_rock "$lua"
  port=$(free_port)
  start_under_callgrind "$lua" examples/echo-server-copas.lua "$port"
  wait_port "$port"
  measure_row "lua-websockets-rs copas server ($lua)" "ws://127.0.0.1:$port/"
done

# Clients: instructions per message of a whole client process echoing against plain
# tokio-tungstenite's echo server (the same two-run difference).
client_instructions() {
  per_unit "$(callgrind_total "$@" "$SMALL" "$SIZE")" "$(callgrind_total "$@" "$LARGE" "$SIZE")" \
    $((LARGE - SMALL))
}
echo
echo "| client ($SIZE-byte echo) | instructions per message |"
echo "|---|---|"
start_plain_peer start_native
echo "| tokio-tungstenite (plain Rust, tools/loadgen) | $(client_instructions target/release/loadgen echo "$plain_url") |"
for lua in $LUAS; do
  use_rock "$lua"
  for flavour in sync copas; do
    echo "| lua-websockets-rs $flavour client ($lua) | $(client_instructions "$lua" bench/client.lua "$flavour" "$plain_url") |"
  done
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true

# System calls per echoed message of a native run, counted by perf's tracepoints.
SYSCALLS="epoll_wait pselect6 recvfrom sendto"
if ! perf stat -e syscalls:sys_enter_epoll_wait true >/dev/null 2>&1; then
  echo "(no syscall table: perf cannot count tracepoints here)"
  exit 0
fi
count_syscalls() {
  local label=$1 url=$2 server=$3 events="" counts
  for name in $SYSCALLS; do events="$events${events:+,}syscalls:sys_enter_$name"; done
  target/release/loadgen echo "$url" 500 "$SIZE" >/dev/null
  perf stat -x, -e "$events" -p "$server" -o build/run/syscalls.csv &
  local counter=$!
  sleep 0.3
  target/release/loadgen echo "$url" "$LARGE" "$SIZE" >/dev/null
  kill -INT "$counter"
  wait "$counter" 2>/dev/null || true
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  counts=$(awk -F, -v n="$LARGE" '/sys_enter/ { printf "%.2f | ", $1 / n; total += $1 / n }
    END { printf "%.2f", total }' build/run/syscalls.csv)
  echo "| $label | $counts |"
}
echo
echo "| server (native $SIZE-byte echo) | epoll_wait | select | recv | send | total per message |"
echo "|---|---|---|---|---|---|"
start_plain_peer start_native
count_syscalls "tokio-tungstenite (plain Rust)" "$plain_url" "$pid"
for lua in $LUAS; do
  use_rock "$lua"
  port=$(free_port)
  start_native "$lua" examples/echo-server-copas.lua "$port"
  wait_port "$port"
  count_syscalls "lua-websockets-rs copas server ($lua)" "ws://127.0.0.1:$port/" "$pid"
done
