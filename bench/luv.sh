#!/usr/bin/env bash
# Benchmark (not a test): the luv flavour's CPU per echoed message against plain
# tokio-tungstenite (tools/testpeer and tools/loadgen, with the 4 KiB read buffer this
# project uses) and against the copas flavour, in alternating rounds of the same run.
#   - servers: plain tokio-tungstenite's echo, examples/echo-server-copas.lua and
#     examples/echo-server-luv.lua, each echoing COUNT SIZE-byte messages for
#     `loadgen echo`: the server's CPU (all threads, user and kernel) per message;
#   - clients: `loadgen echo` (plain Rust) and bench/client.lua's sync, copas and luv
#     clients echoing against plain tokio-tungstenite: the client's CPU per message.
# Everything runs on core 0 (as bench/compare.sh: a wake-up across cores costs more than a
# message here). Each row: medians of ROUNDS rounds with their spread, and the ratio to
# plain tokio-tungstenite of each round.
#   bash bench/luv.sh            LUAS=lua5.4 ROUNDS=5 COUNT=20000 SIZES="16 1024"
set -euo pipefail
cd "$(dirname "$0")/.."
LUAS=${LUAS:-"lua5.4"}
ROUNDS=${ROUNDS:-5}
COUNT=${COUNT:-20000}
SIZES=${SIZES:-"16 1024"}
source scripts/lib/setup.sh
source bench/lib/server-cpu.sh
ensure_system_packages
ensure_rust
mkdir -p build/run
cargo build --locked --release -q -p loadgen -p testpeer
for lua in $LUAS; do install_rock "$lua"; done
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

ports=build/run/luv-plain.ports
rm -f "$ports"
TESTPEER_READ_BUFFER=4096 taskset -c 0 target/release/testpeer "$ports" >/dev/null 2>&1 &
pids+=($!)
plain_pid=$!
for _ in $(seq 100); do [ -s "$ports" ] && break; sleep 0.1; done
plain_url="ws://127.0.0.1:$(sed -n 's/^plain=//p' "$ports")/echo"

# Starts example server $2 on Lua $1 on core 0; prints "pid url".
start_server() {
  local port
  port=$(free_port)
  (use_rock "$1" && exec taskset -c 0 "$1" "examples/echo-server-$2.lua" "$port" >/dev/null 2>&1) &
  wait_port "$port"
  echo "$! ws://127.0.0.1:$port/"
}

# Server CPU µs per message of server pid $1 echoing for loadgen at URL $2, SIZE bytes.
server_cpu() {
  local before
  before=$(SERVERS=$1 servers_cpu_ns)
  taskset -c 0 target/release/loadgen echo "$2" "$COUNT" "$size" >/dev/null
  awk -v ns="$(($(SERVERS=$1 servers_cpu_ns) - before))" -v n="$COUNT" 'BEGIN { printf "%.2f", ns / n / 1000 }'
}

# Client CPU µs per message of the command in $@ (its user and system time over COUNT echoes).
client_cpu() {
  /usr/bin/time -f 'cpu %U %S' taskset -c 0 "$@" 2>&1 >/dev/null |
    awk -v n="$COUNT" '/^cpu / { printf "%.2f", ($2 + $3) * 1e6 / n }'
}

# Prints a table from file $1: a header line of labels, then one line of values per round;
# the first column is the reference the others are divided by.
table() {
  python3 - "$1" <<'PY'
import statistics, sys
lines = open(sys.argv[1]).read().splitlines()
labels = lines[0].split("\t")
rounds = [[float(v) for v in line.split()] for line in lines[1:]]
for index, label in enumerate(labels):
    values = [r[index] for r in rounds]
    ratios = [r[index] / r[0] for r in rounds]
    print(f"| {label} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) "
          f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")
PY
}

for size in $SIZES; do
  for lua in $LUAS; do
    read -r copas_pid copas_url <<<"$(start_server "$lua" copas)"
    read -r luv_pid luv_url <<<"$(start_server "$lua" luv)"
    pids+=("$copas_pid" "$luv_pid")
    rounds=build/run/luv-servers-$lua-$size.rounds
    printf 'plain tokio-tungstenite server\tcopas server (%s)\tluv server (%s)\n' "$lua" "$lua" >"$rounds"
    for _ in $(seq "$ROUNDS"); do
      echo "$(server_cpu "$plain_pid" "$plain_url") $(server_cpu "$copas_pid" "$copas_url") $(server_cpu "$luv_pid" "$luv_url")" >>"$rounds"
    done
    echo "| $size-byte echo, $COUNT messages: server | CPU µs/message | / plain tokio-tungstenite |"
    echo "|---|---|---|"
    table "$rounds"
    kill "$copas_pid" "$luv_pid" 2>/dev/null || true
    echo
    rounds=build/run/luv-clients-$lua-$size.rounds
    printf 'plain tokio-tungstenite client\tsync client (%s)\tcopas client (%s)\tluv client (%s)\n' "$lua" "$lua" "$lua" >"$rounds"
    for _ in $(seq "$ROUNDS"); do
      line=$(client_cpu target/release/loadgen echo "$plain_url" "$COUNT" "$size")
      for flavour in sync copas luv; do
        line="$line $(use_rock "$lua" && client_cpu "$lua" bench/client.lua "$flavour" "$plain_url" "$COUNT" "$size")"
      done
      echo "$line" >>"$rounds"
    done
    echo "| $size-byte echo, $COUNT messages: client | CPU µs/message | / plain tokio-tungstenite |"
    echo "|---|---|---|"
    table "$rounds"
    echo
  done
done
