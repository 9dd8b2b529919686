#!/usr/bin/env bash
# Benchmark (not a test): this checkout against another one (BASE: e.g. a git worktree of
# an earlier commit) on the same machine, in alternating rounds so that a drift of the
# machine falls on both alike. Per Lua of LUAS:
#   - the copas echo server (examples/echo-server-copas.lua) echoing COUNT SIZE-byte
#     messages for tools/loadgen: server CPU per message, messages/s;
#   - the sync and copas clients (bench/client.lua) echoing against plain
#     tokio-tungstenite: client CPU per message, messages/s.
# Everything runs on core 0, as bench/run.sh's one-connection workloads do: on this kind of
# VM a wake-up across cores costs more than the whole message.
# Each row: medians of ROUNDS rounds with their spread, and this/base of every round.
# MANY=<n>: the server row only, COUNT messages spread over n connections (the load on
# core 1, as bench/run.sh's many-connection rows).
#   BASE=/tmp/base bash bench/compare.sh        LUAS=lua5.4 ROUNDS=5 COUNT=20000 SIZE=16
#   BASE=/tmp/base MANY=1000 COUNT=50000 SIZE=64 bash bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:?set BASE to the other checkout}
LUAS=${LUAS:-"lua5.4"}
ROUNDS=${ROUNDS:-5}
COUNT=${COUNT:-20000}
SIZE=${SIZE:-16}
MANY=${MANY:-}
source scripts/lib/setup.sh
source bench/lib/server-cpu.sh

ensure_system_packages
ensure_rust
mkdir -p build/run
cargo build --locked --release -q -p loadgen -p testpeer
for lua in $LUAS; do
  install_rock "$lua"
  (cd "$BASE" && mkdir -p build/run && source scripts/lib/setup.sh && install_rock "$lua")
done

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }
field() { awk -v f="$1" '{ for (i = 1; i < NF; i++) if ($i == f) print $(i + 1) }'; }

# Plain tokio-tungstenite's echo server for the clients.
ports=build/run/compare-plain.ports
rm -f "$ports"
TESTPEER_READ_BUFFER=4096 taskset -c 0 target/release/testpeer "$ports" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$ports" ] && break; sleep 0.1; done
plain_url="ws://127.0.0.1:$(sed -n 's/^plain=//p' "$ports")/echo"

# The copas echo server of checkout $1 on Lua $2; prints its pid and port.
start_server() {
  local port
  port=$(free_port)
  (cd "$1" && use_rock "$2" && exec taskset -c 0 "$2" examples/echo-server-copas.lua "$port" \
    >/dev/null 2>&1) &
  wait_port "$port"
  echo "$! $port"
}

# One round of the server row for the server of pid $1 on port $2: "cpu_us messages/s".
server_round() {
  local before output
  before=$(SERVERS=$1 servers_cpu_ns)
  if [ -n "$MANY" ]; then
    output=$(taskset -c 1 target/release/loadgen many "ws://127.0.0.1:$2/" "$MANY" $((COUNT / MANY)) "$SIZE")
  else
    # Large messages binary, as bench/run.sh sends them.
    local kind=text
    [ "$SIZE" -ge 65536 ] && kind=binary
    output=$(taskset -c 0 target/release/loadgen echo "ws://127.0.0.1:$2/" "$COUNT" "$SIZE" "$kind")
  fi
  awk -v ns="$(($(SERVERS=$1 servers_cpu_ns) - before))" -v n="$COUNT" -v rate="$(field messages/s <<<"$output")" \
    'BEGIN { printf "%.2f %s\n", ns / n / 1000, rate }'
}

# One round of a client row: checkout $1, Lua $2, flavour $3: "cpu_us messages/s".
client_round() {
  local output
  output=$(cd "$1" && use_rock "$2" && /usr/bin/time -f 'cpu %U %S' \
    taskset -c 0 "$2" bench/client.lua "$3" "$plain_url" "$COUNT" "$SIZE" 2>&1)
  awk -v n="$COUNT" '/^cpu / { cpu = ($2 + $3) * 1e6 / n } /messages\/s/ { rate = $2 }
    END { printf "%.2f %s\n", cpu, rate }' <<<"$output"
}

# Prints the table row for label $1 from the file $2 of "base_cpu base_rate this_cpu this_rate".
row() {
  awk -v label="$1" '
    { base_cpu[NR] = $1; base_rate[NR] = $2; this_cpu[NR] = $3; this_rate[NR] = $4;
      ratio[NR] = $3 / $1 }
    function median(values, count,   sorted, i, j, t) {
      for (i = 1; i <= count; i++) sorted[i] = values[i]
      for (i = 1; i <= count; i++) for (j = i + 1; j <= count; j++)
        if (sorted[j] < sorted[i]) { t = sorted[i]; sorted[i] = sorted[j]; sorted[j] = t }
      return sorted[int((count + 1) / 2)] " (" sorted[1] "-" sorted[count] ")"
    }
    END {
      ratios = ""
      for (i = 1; i <= NR; i++) ratios = ratios sprintf("%s%.2f", i > 1 ? " " : "", ratio[i])
      printf "| %s | %s | %s | %s | %s | %s |\n", label, median(base_cpu, NR), median(this_cpu, NR),
        median(base_rate, NR), median(this_rate, NR), ratios
    }' "$2"
}

echo "| $SIZE-byte echo, $COUNT messages | CPU µs/message, base | this | messages/s, base | this | this/base CPU, each round |"
echo "|---|---|---|---|---|---|"
for lua in $LUAS; do
  read -r base_pid base_port <<<"$(start_server "$BASE" "$lua")"
  read -r this_pid this_port <<<"$(start_server . "$lua")"
  pids+=("$base_pid" "$this_pid")
  rounds=build/run/compare-server-$lua.rounds
  : >"$rounds"
  for _ in $(seq "$ROUNDS"); do
    echo "$(server_round "$base_pid" "$base_port") $(server_round "$this_pid" "$this_port")" >>"$rounds"
  done
  row "copas server ($lua)" "$rounds"
  kill "$base_pid" "$this_pid" 2>/dev/null || true
  [ -n "$MANY" ] && continue
  for flavour in sync copas; do
    rounds=build/run/compare-$flavour-$lua.rounds
    : >"$rounds"
    for _ in $(seq "$ROUNDS"); do
      echo "$(client_round "$BASE" "$lua" "$flavour") $(client_round . "$lua" "$flavour")" >>"$rounds"
    done
    row "$flavour client ($lua)" "$rounds"
  done
done
