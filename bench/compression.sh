#!/usr/bin/env bash
# Benchmark (not a test): permessage-deflate on a JSON corpus (about 200-byte chat messages
# and 4 KB documents, bench/deflate-client.py) echoed by three servers in the same run:
# this project's copas server (examples/echo-server-copas.lua PORT '' deflate, Lua 5.4), Node `ws` with
# perMessageDeflate (threshold 0: every message compressed) and Python `websockets`, each
# with its default compression settings (context takeover, 15-bit windows). The client is
# Python `websockets` through a relay that counts the bytes on the wire
# (spec/peers/python_probe.py relay). Per row: bytes on the wire per message each way and
# the server's CPU per message, medians of ROUNDS rounds with their spread.
# A second table: this project's server holding CONNECTIONS connections from Python
# (bench/deflate-connections.py) without compression, with it negotiated and idle, and
# after one message each (context takeover keeps each connection's deflate state), and after
# one message each without context takeover (the server's deflater is shared, the inflater
# dropped after each message): the server's RSS over its RSS before. ROUNDS=0 gives only the
# second table.
#   bash bench/compression.sh        ROUNDS=3 CHATS=3000 DOCS=600 CONNECTIONS=1000
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
CHATS=${CHATS:-3000}
DOCS=${DOCS:-600}
CONNECTIONS=${CONNECTIONS:-1000}
source scripts/lib/setup.sh
source bench/lib/server-cpu.sh

ensure_system_packages
ensure_rust
ensure_python_websockets
ensure_node_ws
install_rock lua5.4
use_rock lua5.4
mkdir -p build/run

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
python=build/venv/bin/python
wait_file() { for _ in $(seq 100); do [ -s "$1" ] && return; sleep 0.1; done; }

# Starts the server named $1; prints "pid port".
start_server() {
  local port_file
  port_file=$(mktemp -u)
  case "$1" in
    ours)
      local port
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
      lua5.4 examples/echo-server-copas.lua "$port" '' deflate >"$port_file.log" 2>&1 &
      echo "$! $port"
      sleep 0.5
      return ;;
    node)
      NODE_PATH=build/node/node_modules node spec/peers/node_server.cjs "$port_file" >/dev/null 2>&1 & ;;
    python)
      "$python" spec/peers/python_peer.py "$port_file" >/dev/null 2>&1 & ;;
  esac
  local pid=$!
  wait_file "$port_file"
  echo "$pid $(cut -d= -f2 "$port_file")"
}

# One round for server $1 and corpus $2 with $3 messages: "wire_down wire_up cpu_us" per message.
round() {
  local pid port relay_log relay_pid relay_port before after
  read -r pid port <<<"$(start_server "$1")"
  pids+=("$pid")
  relay_log=$(mktemp)
  "$python" spec/peers/python_probe.py relay "$port" >"$relay_log" 2>&1 &
  relay_pid=$!
  pids+=("$relay_pid")
  for _ in $(seq 100); do grep -q '^port' "$relay_log" && break; sleep 0.1; done
  relay_port=$(awk '/^port/ { print $2 }' "$relay_log")
  SERVERS=$pid
  before=$(servers_cpu_ns)
  local said
  said=$("$python" bench/deflate-client.py "ws://127.0.0.1:$relay_port/echo" "$2" "$3")
  after=$(servers_cpu_ns)
  sleep 0.3
  [[ "$said" == "echoed $3 extensions permessage-deflate"* ]] || { echo "bad run of $1: $said" >&2; exit 1; }
  awk -v n="$3" -v cpu=$((after - before)) '/^total/ { up = $3; down = $5 }
    END { printf "%.1f %.1f %.2f\n", down / n, up / n, cpu / n / 1000 }' "$relay_log"
  kill "$pid" "$relay_pid" 2>/dev/null || true
  wait "$pid" "$relay_pid" 2>/dev/null || true
  rm -f "$relay_log"
}

median() { sort -n | awk '{ v[NR] = $1 } END { printf "%s (%s-%s)", v[int((NR + 1) / 2)], v[1], v[NR] }'; }

[ "$ROUNDS" -gt 0 ] && echo "| server | corpus | wire bytes/message to client | from client | server CPU µs/message |"
[ "$ROUNDS" -gt 0 ] && echo "|---|---|---|---|---|"
for corpus in chat doc; do
  [ "$ROUNDS" -gt 0 ] || break
  count=$([ "$corpus" = chat ] && echo "$CHATS" || echo "$DOCS")
  for server in ours node python; do
    rows=$(mktemp)
    for _ in $(seq "$ROUNDS"); do round "$server" "$corpus" "$count" >>"$rows"; done
    printf "| %s | %s | %s | %s | %s |\n" "$server" "$corpus" \
      "$(cut -d' ' -f1 "$rows" | median)" "$(cut -d' ' -f2 "$rows" | median)" "$(cut -d' ' -f3 "$rows" | median)"
    rm -f "$rows"
  done
done

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# One descriptor per connection on each side.
ulimit -n "$(ulimit -Hn)"
echo
echo "| $CONNECTIONS connections to this project's server | server RSS growth, MiB | KiB per connection |"
echo "|---|---|---|"
for mode in plain idle busy alone; do
  read -r pid port <<<"$(start_server ours)"
  pids+=("$pid")
  before=$(rss_kib "$pid")
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  "$python" bench/deflate-connections.py "ws://127.0.0.1:$port/" "$CONNECTIONS" "$mode" <"$fifo" >"$fifo.out" &
  client=$!
  exec 9>"$fifo"
  for _ in $(seq 3000); do grep -q '^open' "$fifo.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1
  after=$(rss_kib "$pid")
  exec 9>&-
  wait "$client" 2>/dev/null || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$fifo" "$fifo.out"
  label=$(case "$mode" in plain) echo "no compression";; idle) echo "compression negotiated, idle";; busy) echo "compression, one message each";;
    alone) echo "compression without context takeover, one message each";; esac)
  awk -v label="$label" -v grown=$((after - before)) -v n="$CONNECTIONS" \
    'BEGIN { printf "| %s | %.1f | %.1f |\n", label, grown / 1024, grown / n }'
done
