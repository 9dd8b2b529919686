#!/bin/sh
# Builds the native module for the Lua interpreter given as $1 and leaves it at
# target/rock/websocket_native.so, where the rockspec's install table picks it up.
# The cargo feature follows the interpreter's ABI: lua51, lua52, lua53, lua54 or luajit.
set -eu
lua=${1:?usage: build-native.sh LUA_INTERPRETER}
feature=$("$lua" -e 'print(jit and "luajit" or ("lua" .. _VERSION:sub(5):gsub("%.", "")))')
case $feature in
  lua51|lua52|lua53|lua54|luajit) ;;
  *) echo "build-native.sh: unsupported Lua ($feature)" >&2; exit 1 ;;
esac
cargo build --release --locked --lib --features "$feature"
# Cargo builds under CARGO_TARGET_DIR when it is set (many set it globally); the rockspec
# installs from this checkout's target/rock either way.
built=${CARGO_TARGET_DIR:-target}/release/libwebsocket_native.so
mkdir -p target/rock
cp "$built" target/rock/websocket_native.so
echo "built websocket_native.so for $feature"
