#!/usr/bin/env bash
# Benchmark (not a test): user-space instructions the server executes per echoed message,
# counted by valgrind's callgrind, which does not move with the machine's load. Servers:
# plain tokio-tungstenite (tools/testpeer, with the 4 KiB read buffer this project uses:
# under valgrind, zero-filling tungstenite's default 128 KiB buffer before every read would
# dominate the count), a copas server echoing lines over plain TCP (bench/tcp-echo-copas.lua:
# copas' own loop with no WebSocket work, the floor under any copas server) and this
# project's copas and luv echo servers, each on every Lua of LUAS. For each, runs of SMALL and LARGE
# messages of SIZE bytes on one connection; instructions per message = (I_large - I_small) /
# (LARGE - SMALL), which takes out the connection's own cost. Kernel work is not counted.
# Two columns: back to back (each message sent as soon as the last echo came: under
# valgrind the server is so slow that the next message is then always there already when it
# looks) and paced (GAP_US microseconds before each message, PACED_SMALL and PACED_LARGE
# messages: the server is idle when a message comes and waits for it in copas' select, the
# path every message of a native echo takes).
# A second table does the same for whole client processes (tools/loadgen as plain Rust, and
# bench/client.lua's sync, copas and luv clients) against plain tokio-tungstenite's echo server,
# paced, beside luasocket over plain TCP (bench/tcp-client.lua), the floor under them.
# A third counts the system calls per message of a native run with perf's tracepoints
# (when perf works here).
#   bash bench/instructions.sh      LUAS="lua5.1 lua5.4 luajit" SIZE=16 SMALL=1000 LARGE=6000
#   PARTS=clients bash bench/instructions.sh     (some of: servers clients syscalls)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
source bench/lib/callgrind.sh
LUAS=${LUAS:-"lua5.1 lua5.4 luajit"}
SIZE=${SIZE:-16}
SMALL=${SMALL:-1000}
LARGE=${LARGE:-6000}
GAP_US=${GAP_US:-3000}
PACED_SMALL=${PACED_SMALL:-200}
PACED_LARGE=${PACED_LARGE:-1200}
PARTS=${PARTS:-"servers clients syscalls"}
wants() { [[ " $PARTS " == *" $1 "* ]]; }

prepare_callgrind_bench
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
  callgrind_control --dump "$pid" >/dev/null 2>&1
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

# Instructions per message of the echo `loadgen $kind $target COUNT SIZE` (kind: echo or
# tcp-echo) from runs of $1 and $2 messages, each counted from a fresh dump.
instructions_per_message() {
  local small large
  target/release/loadgen "$kind" "$target" "$1" "$SIZE" >/dev/null
  small=$(dump_instructions)
  target/release/loadgen "$kind" "$target" "$2" "$SIZE" >/dev/null
  large=$(dump_instructions)
  per_unit "$small" "$large" $(($2 - $1))
}

# Prints the table row for label $1: echoes of kind $2 through $3, back to back and paced;
# then stops the server.
measure_row() {
  local label=$1 kind=$2 target=$3 back_to_back paced
  target/release/loadgen "$kind" "$target" 50 "$SIZE" >/dev/null
  dump_instructions >/dev/null
  back_to_back=$(instructions_per_message "$SMALL" "$LARGE")
  paced=$(LOADGEN_GAP_US=$GAP_US instructions_per_message "$PACED_SMALL" "$PACED_LARGE")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "| $label | $back_to_back | $paced |"
}

if wants servers; then
echo "| server ($SIZE-byte echo) | instructions per message, back to back | paced ($GAP_US µs apart) |"
echo "|---|---|---|"
start_plain_peer start_under_callgrind
measure_row "tokio-tungstenite (plain Rust)" echo "$plain_url"
for lua in $LUAS; do
  use_rock "$lua"
  port=$(free_port)
  start_under_callgrind "$lua" bench/tcp-echo-copas.lua "$port"
  wait_port "$port"
  measure_row "copas TCP line echo, no WebSocket ($lua)" tcp-echo "127.0.0.1:$port"
  port=$(free_port)
  start_under_callgrind "$lua" examples/echo-server-copas.lua "$port"
  wait_port "$port"
  measure_row "lua-websockets-rs copas server ($lua)" echo "ws://127.0.0.1:$port/"
  port=$(free_port)
  start_under_callgrind "$lua" examples/echo-server-luv.lua "$port"
  wait_port "$port"
  measure_row "lua-websockets-rs luv server ($lua)" echo "ws://127.0.0.1:$port/"
done
fi

# Clients: instructions per message of a whole client process echoing against plain
# tokio-tungstenite's echo server (the same two-run difference), with each echo sent back
# GAP_US after it came (TESTPEER_ECHO_DELAY_US): the client then always waits for its
# answer, as it does natively (back to back, a client slowed down by valgrind finds the
# answer already there now and then, and its count moves from run to run). The TCP rows
# are the floor: luasocket sending a line and waiting for it, blocking and in copas.
client_instructions() {
  per_unit "$(callgrind_total "$@" "$PACED_SMALL" "$SIZE")" \
    "$(callgrind_total "$@" "$PACED_LARGE" "$SIZE")" $((PACED_LARGE - PACED_SMALL))
}
if wants clients; then
echo
echo "| client ($SIZE-byte echo, answered $GAP_US µs later) | instructions per message |"
echo "|---|---|"
export TESTPEER_ECHO_DELAY_US=$GAP_US
start_plain_peer start_native
unset TESTPEER_ECHO_DELAY_US
tcp_echo="127.0.0.1:$(sed -n 's/^tcpecho=//p' "$port_file")"
echo "| tokio-tungstenite (plain Rust, tools/loadgen) | $(client_instructions target/release/loadgen echo "$plain_url") |"
echo "| plain Rust over TCP, no WebSocket (tools/loadgen tcp-echo) | $(client_instructions target/release/loadgen tcp-echo "$tcp_echo") |"
for lua in $LUAS; do
  use_rock "$lua"
  for flavour in sync copas; do
    echo "| luasocket $flavour over TCP, no WebSocket ($lua) | $(client_instructions "$lua" bench/tcp-client.lua "$flavour" "$tcp_echo") |"
    echo "| lua-websockets-rs $flavour client ($lua) | $(client_instructions "$lua" bench/client.lua "$flavour" "$plain_url") |"
  done
  echo "| lua-websockets-rs luv client ($lua) | $(client_instructions "$lua" bench/client.lua luv "$plain_url") |"
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
fi

# System calls per echoed message of a native run, counted by perf's tracepoints.
SYSCALLS="epoll_wait pselect6 recvfrom sendto"
wants syscalls || exit 0
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
  port=$(free_port)
  start_native "$lua" examples/echo-server-luv.lua "$port"
  wait_port "$port"
  count_syscalls "lua-websockets-rs luv server ($lua)" "ws://127.0.0.1:$port/" "$pid"
done
