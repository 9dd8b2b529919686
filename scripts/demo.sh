#!/usr/bin/env bash
# The demo: starts an echo server and runs examples/echo-client-sync.lua against it, on
# Lua 5.4 with the module built and installed by `luarocks make`. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
LUA=${LUA:-lua5.4}

ensure_system_packages
ensure_rust
mkdir -p build/run
install_rock "$LUA"
log "building the echo server (tools/testpeer, on tokio-tungstenite)"
cargo build --locked --release -q -p testpeer

rm -f build/run/demo.ports
target/release/testpeer build/run/demo.ports &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s build/run/demo.ports ] && break; sleep 0.1; done
port=$(sed -n 's/^plain=//p' build/run/demo.ports)

log "echo server on 127.0.0.1:$port; the sync client on $LUA talks to it"
use_rock "$LUA"
"$LUA" examples/echo-client-sync.lua "ws://127.0.0.1:$port/echo"
