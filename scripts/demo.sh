#!/usr/bin/env bash
# The demo: starts the copas echo server (examples/echo-server-copas.lua), then talks to it
# with the sync client and with two copas clients at once, on Lua 5.4 with the module that
# `luarocks make` built and installed; the luv client (callbacks on libuv's loop) talks to
# it too; then starts the browser chat
# (examples/chat-server-browser.lua), fetches its page, is refused without the token and
# chats with it. DEMO_KEEP=1 keeps the chat running for a browser. Installs what is missing
# on the way.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
LUA=${LUA:-lua5.4}

prepare_lua "$LUA"

port=$(free_port)
"$LUA" examples/echo-server-copas.lua "$port" >build/run/demo-server.log 2>&1 &
server=$!
chat=
trap 'kill $server $chat 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q listening build/run/demo-server.log && break
  sleep 0.1
done
cat build/run/demo-server.log

log "the sync client talks to the copas echo server"
"$LUA" examples/echo-client-sync.lua "ws://127.0.0.1:$port/echo"
log "two copas clients talk to it at once"
"$LUA" examples/echo-client-copas.lua "ws://127.0.0.1:$port/echo"
log "the luv client (callbacks, luv's loop) talks to it while a luv timer ticks"
"$LUA" examples/echo-client-luv.lua "ws://127.0.0.1:$port/echo"

log "the browser chat: one port serves the page, a health check and the WebSocket"
chat_port=$(free_port)
"$LUA" examples/chat-server-browser.lua "$chat_port" demo >build/run/demo-chat.log 2>&1 &
chat=$!
for _ in $(seq 100); do
  grep -q listening build/run/demo-chat.log && break
  sleep 0.1
done
cat build/run/demo-chat.log
python3 - "$chat_port" <<'PY'
import sys, urllib.request, urllib.error
base = f"http://127.0.0.1:{sys.argv[1]}"
page = urllib.request.urlopen(base + "/")
print("GET /        ->", page.status, page.headers["content-type"], len(page.read()), "bytes")
print("GET /health  ->", urllib.request.urlopen(base + "/health").read().decode())
PY
"$LUA" -e "
  local client = require'websocket'.client.sync({ timeout = 5 })
  local _, err = client:connect('ws://127.0.0.1:$chat_port/chat', 'chat')
  print('upgrade without the token -> ' .. err)"
"$LUA" examples/chat-client-sync.lua demo "ws://127.0.0.1:$chat_port/chat?token=demo&name=demo"
if [ -n "${DEMO_KEEP:-}" ]; then
  log "open http://127.0.0.1:$chat_port/?token=demo&name=you in a browser; Ctrl-C stops"
  wait "$chat"
fi
