#!/usr/bin/env bash
# Runs every test: the Rust unit tests, then the busted specs on each Lua version against
# real peers that this script starts on 127.0.0.1 (tools/testpeer on tokio-tungstenite,
# spec/peers/python_peer.py on Python's websockets). Installs what is missing on the way.
# The last line is "N passed, N failed".
#
#   LUAS="lua5.1 lua5.4 luajit" scripts/test.sh    # a subset of interpreters
#   SPECS="spec/copas_spec.lua" scripts/test.sh      # a subset of spec files
#   COPAS_DIR=/path/to/copas LUA_EXTRA_PATH='/path/to/timerwheel/src/?/init.lua;/usr/share/lua/5.3/?.lua' \
#     scripts/test.sh                                # another copas (a checkout of 4.x, with its deps)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh

LUAS=${LUAS:-"lua5.1 lua5.2 lua5.3 lua5.4 luajit"}
passed=0
failed=0
mkdir -p build/run

ensure_system_packages
ensure_rust

log "Rust unit tests"
cargo test --locked --lib --no-default-features --features lua54 2>&1 | tee build/cargo-test.log
rust_summary=$(grep -E '^test result:' build/cargo-test.log | head -1)
passed=$((passed + $(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$rust_summary")))
failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$rust_summary")))

log "type definitions (types/) against spec/types/ with emmylua_check"
# good/ must check clean; bad/ must get exactly its four planted mistakes.
if ensure_emmylua_check; then
  for case in good bad; do
    rm -rf "build/types/$case" && mkdir -p "build/types/$case"
    cp "spec/types/$case/usage.lua" "build/types/$case/"
    printf '{ "workspace": { "library": ["%s/types"] }, "diagnostics": { "disable": ["unresolved-require"] } }\n' \
      "$PWD" >"build/types/$case/.emmyrc.json"
    (cd "build/types/$case" && emmylua_check . >../$case.log 2>&1 || true)
    found=$(grep -oE '\[[a-z-]+\]$' "build/types/$case.log" | sort | tr '\n' ' ' || true)
    expected=""
    [ "$case" = bad ] && expected="[assign-type-mismatch] [param-type-mismatch] [undefined-field] [undefined-field] "
    if [ "$found" = "$expected" ]; then
      passed=$((passed + 1))
    else
      log "types: $case/usage.lua expected '${expected}', got '${found}'"
      cat "build/types/$case.log"
      failed=$((failed + 1))
    fi
  done
else
  log "types: SKIPPED, emmylua_check could not be installed here"
fi

log "building the test peer"
cargo build --locked --release -p testpeer

for lua in $LUAS; do
  install_rock "$lua"
done

ensure_python_websockets
ensure_node_ws

log "a self-signed certificate for the TLS peer"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
  -addext 'basicConstraints=critical,CA:FALSE' \
  -keyout build/run/key.pem -out build/run/cert.pem 2>/dev/null
log "a client CA and a client certificate it signed, for TLS servers that ask for one"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=test-client-ca -addext 'basicConstraints=critical,CA:TRUE' \
  -addext 'keyUsage=critical,keyCertSign' \
  -keyout build/run/client-ca-key.pem -out build/run/client-ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=test-client \
  -keyout build/run/client-key.pem -out build/run/client.csr 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n' >build/run/client.ext
openssl x509 -req -in build/run/client.csr -CA build/run/client-ca.pem \
  -CAkey build/run/client-ca-key.pem -CAcreateserial -days 2 -extfile build/run/client.ext \
  -out build/run/client-cert.pem 2>/dev/null

peer_pids=()
stop_peers() { kill "${peer_pids[@]}" 2>/dev/null || true; }
trap stop_peers EXIT
rm -f build/run/*.ports
target/release/testpeer build/run/rust.ports build/run/cert.pem build/run/key.pem &
peer_pids+=($!)
build/venv/bin/python spec/peers/python_peer.py build/run/python.ports &
peer_pids+=($!)
build/venv/bin/python spec/peers/conformance_server.py build/run/conformance.ports &
peer_pids+=($!)
NODE_PATH=build/node/node_modules node spec/peers/node_server.cjs build/run/node.ports &
peer_pids+=($!)
for file in build/run/{rust,python,conformance,node}.ports; do
  for _ in $(seq 100); do [ -s "$file" ] && break; sleep 0.1; done
  [ -s "$file" ] || { log "a test peer did not start ($file)"; exit 1; }
done
port() { sed -n "s/^$2=//p" "build/run/$1.ports"; }
export WS_TEST_RUST_PORT=$(port rust plain)
export WS_TEST_RUST_IPV6_PORT=$(port rust ipv6)
export WS_TEST_SILENT_PORT=$(port rust silent)
export WS_TEST_HANGUP_PORT=$(port rust hangup)
export WS_TEST_RUST_TLS_PORT=$(port rust tls)
export WS_TEST_PYTHON_PORT=$(port python python)
export WS_TEST_CONFORMANCE_PORT=$(port conformance conformance)
export WS_TEST_NODE_PORT=$(port node node)
export WS_TEST_CA_FILE=$PWD/build/run/cert.pem
export WS_TEST_TLS_DIR=$PWD/build/run
export WS_TEST_PYTHON=$PWD/build/venv/bin/python
export WS_TEST_NODE_MODULES=$PWD/build/node/node_modules
# The clients take their proxy from the environment, as curl does; the specs talk to
# 127.0.0.1 directly, and set these themselves where they test them.
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

for lua in $LUAS; do
  log "busted specs on $lua"
  use_rock "$lua"
  export WS_TEST_LUA=$(command -v "$lua")
  set +e
  # shellcheck disable=SC2086
  busted --lua="$(command -v "$lua")" --output=plainTerminal ${SPECS:-spec} 2>&1 | tee "build/busted-$lua.log"
  set -e
  summary=$(grep -E '^[0-9]+ successes / [0-9]+ failures / [0-9]+ errors' "build/busted-$lua.log" | tail -1)
  if [ -z "$summary" ]; then
    log "busted on $lua printed no summary"
    failed=$((failed + 1))
    continue
  fi
  read -r ok _ _ bad _ _ errors _ <<<"$summary"
  [ "$ok" -gt 0 ] || { log "busted on $lua ran no test"; failed=$((failed + 1)); }
  passed=$((passed + ok))
  failed=$((failed + bad + errors))
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
