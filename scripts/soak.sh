#!/usr/bin/env bash
# A soak run by hand (not part of the tests): one server process with the default limits
# (spec/support/target_server.lua) under rounds of every attack of spec/peers/attacker.py
# (ping floods, 60 MB floods to a handler that never receives and to an echo whose client
# never reads, 1,000 connections, resets while queued), one after another for SECONDS,
# while a normal client echoes small messages the whole time. Every 5 s it prints the
# server's RSS and peak; at the end the largest RSS of the first and of the last third, so
# that memory that creeps up shows.
#   bash scripts/soak.sh [SECONDS=600] [LUA=lua5.4]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-600}
LUA=${2:-lua5.4}
source scripts/lib/setup.sh
prepare_lua "$LUA"
ensure_python_websockets

port=$(free_port)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
ulimit -n 8192 2>/dev/null || true
"$LUA" spec/support/target_server.lua "$port" 0 >build/run/soak-server.log 2>&1 &
server=$!
pids+=("$server")
for _ in $(seq 100); do grep -q listening build/run/soak-server.log && break; sleep 0.1; done
python=build/venv/bin/python
$python spec/peers/attacker.py normal "$port" echo 1 "$SECONDS_TOTAL" >build/run/soak-normal.log 2>&1 &
normal=$!
pids+=("$normal")

attacks=(
  "pings $port echo 4 300000"
  "flood $port sink 5 16 60000000"
  "flood $port echo 3 16 60000000"
  "flood $port gone 1000 16 1000000"
  "reset $port gone 20 16 16000000"
)
memory() { awk '/^VmRSS/ { rss = $2 } /^VmHWM/ { peak = $2 } END { printf "%d %d", rss / 1024, peak / 1024 }' "/proc/$server/status"; }
samples=build/run/soak-samples
: >"$samples"
started=$(date +%s)
round=0
while [ $(( $(date +%s) - started )) -lt "$SECONDS_TOTAL" ]; do
  attack=${attacks[$((round % ${#attacks[@]}))]}
  ATTACK_STALL=1 ATTACK_HOLD=5 $python spec/peers/attacker.py $attack >/dev/null 2>&1 &
  attacker=$!
  while kill -0 "$attacker" 2>/dev/null; do
    read -r rss peak <<<"$(memory)"
    elapsed=$(( $(date +%s) - started ))
    echo "$elapsed $rss" >>"$samples"
    printf "%5d s  %-34s RSS %4d MiB  peak %4d MiB\n" "$elapsed" "$attack" "$rss" "$peak"
    sleep 5
  done
  round=$((round + 1))
done
wait "$normal" || { echo "the normal client failed:"; cat build/run/soak-normal.log; exit 1; }
cat build/run/soak-normal.log
awk -v total="$SECONDS_TOTAL" '
  $1 < total / 3 && $2 > first { first = $2 }
  $1 >= 2 * total / 3 && $2 > last { last = $2 }
  END { printf "largest RSS, first third %d MiB, last third %d MiB\n", first, last }' "$samples"
echo "server peak: $(memory | cut -d" " -f2) MiB; server still alive: $(kill -0 "$server" && echo yes)"
