#!/usr/bin/env bash
# The demo: starts the copas echo server (examples/echo-server-copas.lua), then talks to it
# with the sync client and with two copas clients at once, on Lua 5.4 with the module that
# `luarocks make` built and installed. Installs what is missing on the way.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
LUA=${LUA:-lua5.4}

prepare_lua "$LUA"

port=$(free_port)
"$LUA" examples/echo-server-copas.lua "$port" >build/run/demo-server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q listening build/run/demo-server.log && break
  sleep 0.1
done
cat build/run/demo-server.log

log "the sync client talks to the copas echo server"
"$LUA" examples/echo-client-sync.lua "ws://127.0.0.1:$port/echo"
log "two copas clients talk to it at once"
"$LUA" examples/echo-client-copas.lua "ws://127.0.0.1:$port/echo"
