#!/usr/bin/env bash
# The benchmark (not a test): every workload against every peer, three rounds each, written
# to bench/RESULTS.md as medians and spreads, with ratios to plain tokio-tungstenite
# measured in the same run. LUA_WEBSOCKETS_DIR, when set to a checkout of lua-websockets
# (never committed), adds it on Lua 5.1 and LuaJIT (it needs `bit`, which 5.4 lacks).
#
#   bash bench/run.sh
#   LUA_WEBSOCKETS_DIR=/tmp/lua-websockets bash bench/run.sh
#   PARTS=clients bash bench/run.sh      (some of: servers clients idle; default all three)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
ROUNDS=${ROUNDS:-3}
LUAS=${LUAS:-"lua5.1 lua5.4 luajit"}
PARTS=${PARTS:-"servers clients idle"}

ensure_system_packages
ensure_rust
mkdir -p build/run
for lua in $LUAS; do install_rock "$lua"; done
cargo build --locked --release -q -p loadgen -p testpeer
[ -n "${LUA_WEBSOCKETS_DIR:-}" ] && ! dpkg -s lua-bitop >/dev/null 2>&1 && \
  { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq lua-bitop >/dev/null || true; }

results=build/run/bench-results.tsv
peaks=build/run/bench-peak-rss.tsv
: >"$results"
: >"$peaks"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

# Lua environment for a peer: ours from its rock tree, or lua-websockets from its checkout.
lua_env() {
  case $1 in
    lua-websockets/*)
      export LUA_PATH="$LUA_WEBSOCKETS_DIR/src/?.lua;;" LUA_CPATH=";;"
      unset LUA_PATH_5_4 LUA_CPATH_5_4 ;;
    *) use_rock "${1#*/}" ;;
  esac
}

# Whether part $1 is to run.
wants() { [[ " $PARTS " == *" $1 "* ]]; }

# CPU time (ns) process $1 has used so far, all its threads together.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ total += $1 } END { printf "%.0f", total }'; }

# Peak RSS (MiB) of process $1 so far.
peak_rss_mib() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' /proc/"$1"/status; }

# One measurement: ROUNDS runs of `command`, each giving its field `field` and the CPU time
# per message over `messages` messages: the server's when SERVER_PID is set, else the
# command's own when it prints `cpu_us_per_message` (the clients, over their echoes only).
measure() {
  local workload=$1 peer=$2 field=$3 messages=$4
  shift 4
  local values=() cpu=() round output before
  for round in $(seq "$ROUNDS"); do
    if [ -n "${SERVER_PID:-}" ]; then before=$(cpu_ns "$SERVER_PID"); fi
    if output=$("$@" 2>&1); then
      values+=("$(awk -v f="$field" '{ for (i = 1; i < NF; i++) if ($i == f) print $(i + 1) }' <<<"$output")")
      if [ -n "${SERVER_PID:-}" ]; then
        cpu+=("$(awk -v ns="$(($(cpu_ns "$SERVER_PID") - before))" -v n="$messages" \
          'BEGIN { printf "%.2f", ns / 1000 / n }')")
      elif grep -q '^cpu_us_per_message ' <<<"$output"; then
        cpu+=("$(awk '/^cpu_us_per_message / { printf "%.2f", $2 }' <<<"$output")")
      fi
    else
      values+=("failed")
    fi
  done
  printf '%s\t%s\t%s\t%s\t%s\n' "$workload" "$peer" "$field" "${values[*]}" "${cpu[*]:-}" | tee -a "$results"
}

# Every server workload against the server process SERVER_PID, then its peak RSS.
server_workloads() {
  local peer=$1 url=$2 pin=$3
  measure "echo 16 B" "$peer" messages/s 20000 taskset -c "$pin" target/release/loadgen echo "$url" 20000 16
  measure "echo 1 KiB" "$peer" messages/s 20000 taskset -c "$pin" target/release/loadgen echo "$url" 20000 1024
  measure "binary echo 1 MiB" "$peer" MB/s 50 taskset -c "$pin" target/release/loadgen echo "$url" 50 1048576 binary
  measure "binary echo 16 MiB" "$peer" MB/s 5 taskset -c "$pin" target/release/loadgen echo "$url" 5 16777216 binary
  measure "100 connections x 64 B" "$peer" messages/s 20000 taskset -c 1 target/release/loadgen many "$url" 100 200 64
  measure "1,000 connections x 64 B" "$peer" messages/s 50000 taskset -c 1 target/release/loadgen many "$url" 1000 50 64
  printf '%s\t%s\n' "$peer" "$(peak_rss_mib "$SERVER_PID")" >>"$peaks"
}

# Servers: single-connection workloads share core 0 with the server, as in
# docs/design.md; many-connection workloads run the load on core 1.
port=$(free_port)
rm -f build/run/bench-plain.ports
taskset -c 0 target/release/testpeer build/run/bench-plain.ports >/dev/null 2>&1 &
plain_server=$!
pids+=("$plain_server")
until [ -s build/run/bench-plain.ports ]; do sleep 0.1; done
plain_url="ws://127.0.0.1:$(sed -n 's/^plain=//p' build/run/bench-plain.ports)/echo"
peers=()
for lua in $LUAS; do peers+=("lua-websockets-rs/$lua"); done
if [ -n "${LUA_WEBSOCKETS_DIR:-}" ]; then
  for lua in $LUAS; do [ "$lua" != lua5.4 ] && peers+=("lua-websockets/$lua"); done
fi

if wants servers; then
SERVER_PID=$plain_server server_workloads "tokio-tungstenite (plain Rust)" "$plain_url" 0
# The same with the 4 KiB read buffer this project gives tungstenite (the default 128 KiB
# is zero-filled before every read).
rm -f build/run/bench-plain-4k.ports
TESTPEER_READ_BUFFER=4096 taskset -c 0 target/release/testpeer build/run/bench-plain-4k.ports \
  >/dev/null 2>&1 &
plain_4k_server=$!
pids+=("$plain_4k_server")
until [ -s build/run/bench-plain-4k.ports ]; do sleep 0.1; done
SERVER_PID=$plain_4k_server server_workloads "tokio-tungstenite, 4 KiB read buffer" \
  "ws://127.0.0.1:$(sed -n 's/^plain=//p' build/run/bench-plain-4k.ports)/echo" 0
kill "$plain_4k_server" 2>/dev/null || true

for peer in "${peers[@]}"; do
  lua=${peer#*/}
  port=$(free_port)
  (lua_env "$peer"; exec taskset -c 0 "$lua" examples/echo-server-copas.lua "$port" >/dev/null 2>&1) &
  server=$!
  wait_port "$port"
  SERVER_PID=$server server_workloads "$peer copas server" "ws://127.0.0.1:$port/" 0
  kill "$server" 2>/dev/null || true
done

# Keepalive at 1 s (and read-ahead, always on): the small-message and 1,000-connection
# workloads again, against this project's server on the last Lua of LUAS.
keepalive_lua=${LUAS##* }
port=$(free_port)
(use_rock "$keepalive_lua"; exec taskset -c 0 "$keepalive_lua" examples/echo-server-copas.lua "$port" 1 >/dev/null 2>&1) &
server=$!
wait_port "$port"
keepalive_peer="lua-websockets-rs/$keepalive_lua copas server, keepalive 1 s"
SERVER_PID=$server measure "echo 16 B" "$keepalive_peer" messages/s 20000 taskset -c 0 target/release/loadgen echo "ws://127.0.0.1:$port/" 20000 16
SERVER_PID=$server measure "echo 1 KiB" "$keepalive_peer" messages/s 20000 taskset -c 0 target/release/loadgen echo "ws://127.0.0.1:$port/" 20000 1024
SERVER_PID=$server measure "1,000 connections x 64 B" "$keepalive_peer" messages/s 50000 taskset -c 1 target/release/loadgen many "ws://127.0.0.1:$port/" 1000 50 64
kill "$server" 2>/dev/null || true
fi

# Clients, all against plain tokio-tungstenite with the 4 KiB read buffer, with their own
# CPU per message. (Sharing core 0 with a server that zero-fills 128 KiB before each read
# evicts the client's caches every message: a copas client's user time then doubles, which
# says more about the server than the client.) Their floor: the same echo of 16-byte lines
# over plain TCP (testpeer's tcpecho port), by plain Rust and by luasocket, blocking and in
# copas: what a Lua client costs before any WebSocket work.
if wants clients; then
rm -f build/run/bench-client-peer.ports
TESTPEER_READ_BUFFER=4096 taskset -c 0 target/release/testpeer build/run/bench-client-peer.ports \
  >/dev/null 2>&1 &
pids+=("$!")
until [ -s build/run/bench-client-peer.ports ]; do sleep 0.1; done
plain_url="ws://127.0.0.1:$(sed -n 's/^plain=//p' build/run/bench-client-peer.ports)/echo"
tcp_echo="127.0.0.1:$(sed -n 's/^tcpecho=//p' build/run/bench-client-peer.ports)"
measure "client echo 16 B" "tokio-tungstenite (plain Rust)" messages/s 100000 taskset -c 0 target/release/loadgen echo "$plain_url" 100000 16
measure "client echo 1 KiB" "tokio-tungstenite (plain Rust)" messages/s 20000 taskset -c 0 target/release/loadgen echo "$plain_url" 20000 1024
measure "client echo 1 MiB" "tokio-tungstenite (plain Rust)" MB/s 50 taskset -c 0 target/release/loadgen echo "$plain_url" 50 1048576 binary
measure "client TCP line echo 16 B (no WebSocket)" "plain Rust (tokio)" messages/s 100000 taskset -c 0 target/release/loadgen tcp-echo "$tcp_echo" 100000 16
for peer in "${peers[@]}"; do
  lua=${peer#*/}
  for flavour in sync copas; do
    measure "client echo 16 B" "$peer $flavour client" messages/s 100000 \
      bash -c "$(declare -f lua_env use_rock); LUA_WEBSOCKETS_DIR='${LUA_WEBSOCKETS_DIR:-}'; lua_env $peer; exec taskset -c 0 $lua bench/client.lua $flavour $plain_url 100000 16"
    measure "client echo 1 KiB" "$peer $flavour client" messages/s 20000 \
      bash -c "$(declare -f lua_env use_rock); LUA_WEBSOCKETS_DIR='${LUA_WEBSOCKETS_DIR:-}'; lua_env $peer; exec taskset -c 0 $lua bench/client.lua $flavour $plain_url 20000 1024"
    measure "client echo 1 MiB" "$peer $flavour client" MB/s 50 \
      bash -c "$(declare -f lua_env use_rock); LUA_WEBSOCKETS_DIR='${LUA_WEBSOCKETS_DIR:-}'; lua_env $peer; exec taskset -c 0 $lua bench/client.lua $flavour $plain_url 50 1048576 binary"
  done
done
for lua in $LUAS; do
  for flavour in sync copas; do
    measure "client TCP line echo 16 B (no WebSocket)" "luasocket ($lua) $flavour" messages/s 100000 \
      bash -c "$(declare -f use_rock); use_rock $lua; exec taskset -c 0 $lua bench/tcp-client.lua $flavour $tcp_echo 100000 16"
  done
done

fi

: >build/run/bench-idle.txt
if wants idle; then
  bash bench/idle-connections.sh >build/run/bench-idle.txt 2>&1 || true
  PING_INTERVAL=20 IDLE_SECONDS=45 bash bench/idle-connections.sh >>build/run/bench-idle.txt 2>&1 || true
fi
python3 bench/report.py "$results" "$peaks" build/run/bench-idle.txt >bench/RESULTS.md
echo "wrote bench/RESULTS.md"
