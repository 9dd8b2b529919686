# Shared by scripts/test.sh and scripts/demo.sh: install what is missing, build, install.
# Source it from the repository root.

# Debian packages the project needs: the Lua interpreters and their headers, LuaRocks,
# busted, luasocket/luasec/copas for the specs, openssl for test certificates, Python's venv
# and Node.js with npm for the peers written in those languages, chromium as the browser
# the specs drive, luacheck for the Lua lint, redis-server, nginx and tinyproxy, which
# the specs start on free ports of their own (never as system services), and luv (for
# every Lua) and Neovim for the luv flavour.
SYSTEM_PACKAGES="lua5.1 lua5.2 lua5.3 lua5.4 luajit liblua5.1-0-dev liblua5.2-dev
  liblua5.3-dev liblua5.4-dev libluajit-5.1-dev luarocks lua-busted lua-socket lua-sec
  lua-copas openssl ca-certificates pkg-config python3 python3-venv nodejs npm chromium
  lua-check redis-server nginx tinyproxy lua-luv neovim"

log() { printf '== %s\n' "$*" >&2; }

# Installs the Debian packages that are missing (as root), or says the exact command.
ensure_system_packages() {
  local missing=()
  local package
  for package in $SYSTEM_PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' \
      || missing+=("$package")
  done
  # A Python that is not Debian's (pyenv, a venv) may bring its own venv module.
  if python3 -m venv --help >/dev/null 2>&1; then
    missing=("${missing[@]/python3-venv/}")
    missing=("${missing[@]/python3/}")
  fi
  # Likewise a Node.js from elsewhere (nodesource) that brings npm.
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    missing=("${missing[@]/nodejs/}")
    missing=("${missing[@]/npm/}")
  fi
  missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages; install them with:"
    echo "sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  apt-get update -qq
  # The daemons among them (redis-server, nginx, tinyproxy) are not started as services:
  # the specs run their own. policy-rc.d tells Debian's maintainer scripts so.
  local policy=/usr/sbin/policy-rc.d made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || status=$?
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
  return $status
}

# Cargo must be new enough for the crates (Rust 1.88); Debian's own is older.
ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: install Rust 1.88 or newer with rustup, then run this again"
    exit 1
  fi
  # luarocks runs the build with CC set to its own C compiler; crates that build C (ring)
  # rebuild whenever CC changes, so every cargo call here uses the same one.
  export CC="${CC:-$(luarocks config variables.CC 2>/dev/null || echo cc)}"
}

# The luarocks arguments that target one interpreter (lua5.1 … lua5.4, luajit).
luarocks_target() {
  case $1 in
    luajit) echo "--lua-version=5.1 --tree=build/rocks/luajit" ;;
    lua5.*) echo "--lua-version=${1#lua} --tree=build/rocks/$1" ;;
    *) log "unknown Lua '$1'"; exit 1 ;;
  esac
}

# Installs the rock from this checkout into build/rocks/<lua>, with `luarocks make`.
install_rock() {
  local lua=$1
  local extra=()
  [ "$lua" = luajit ] && extra=(LUA="$(command -v luajit)")
  log "luarocks make for $lua"
  # shellcheck disable=SC2046
  luarocks $(luarocks_target "$lua") make rockspec/lua-websockets-rs-scm-1.rockspec \
    "${extra[@]}" >build/luarocks-"$lua".log 2>&1 || {
    cat build/luarocks-"$lua".log >&2
    return 1
  }
}

# Everything a demo or benchmark on <lua> needs: packages, Rust, the rock built, installed
# and on LUA_PATH/LUA_CPATH.
prepare_lua() {
  ensure_system_packages
  ensure_rust
  mkdir -p build/run
  install_rock "$1"
  use_rock "$1"
}

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# LUA_PATH / LUA_CPATH that find the rock installed for <lua>, then the system's modules.
use_rock() {
  local lua=$1
  local abi=${lua#lua}
  [ "$lua" = luajit ] && abi=5.1
  local tree=build/rocks/$lua
  local path="$PWD/$tree/share/lua/$abi/?.lua;$PWD/$tree/share/lua/$abi/?/init.lua"
  # COPAS_DIR: a checkout of another copas (e.g. 4.x) to use instead of Debian's.
  if [ -n "${COPAS_DIR:-}" ]; then
    path="$COPAS_DIR/src/?.lua;$COPAS_DIR/src/?/init.lua;$path"
  fi
  # LUA_EXTRA_PATH: more Lua directories to search last (copas 4's binaryheap, timerwheel).
  export LUA_PATH="./?.lua;$path;;${LUA_EXTRA_PATH:+;$LUA_EXTRA_PATH}"
  export LUA_CPATH="$PWD/$tree/lib/lua/$abi/?.so;;"
  # Lua 5.2+ read LUA_PATH_5_x first; Debian's copas (1.x) for 5.3 and 5.4 lives in 5.2's tree.
  local versioned=${abi/./_}
  if [ "$abi" != 5.1 ]; then
    export "LUA_PATH_$versioned=$LUA_PATH;/usr/share/lua/5.2/?.lua"
    export "LUA_CPATH_$versioned=$LUA_CPATH"
  fi
}

# emmylua_check: a checker that reads lua-language-server's annotations (LuaLS itself is in
# none of the registries this project may use). Installed with cargo into ~/.cargo/bin.
ensure_emmylua_check() {
  command -v emmylua_check >/dev/null 2>&1 && return 0
  log "installing emmylua_check with cargo (a few minutes, once)"
  cargo install --quiet --locked emmylua_check --version 0.25.1 >build/emmylua-install.log 2>&1 || {
    tail -5 build/emmylua-install.log >&2
    return 1
  }
}

# Python's websockets in build/venv, for the Python peers.
ensure_python_websockets() {
  if [ ! -x build/venv/bin/python ] || ! build/venv/bin/python -c 'import websockets' 2>/dev/null; then
    log "Python websockets into build/venv"
    python3 -m venv build/venv
    build/venv/bin/pip install --quiet --disable-pip-version-check websockets
  fi
}

# Node's ws in build/node, for the Node peers.
ensure_node_ws() {
  if [ ! -d build/node/node_modules/ws ]; then
    log "Node ws into build/node"
    npm install --prefix build/node --no-audit --no-fund --silent ws@8
  fi
}
