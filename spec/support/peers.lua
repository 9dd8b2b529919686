--- Where the peers that scripts/test.sh started listen, read from the environment.
-- Every spec needs them: a missing one is an error that says how to run the specs.

local getenv = os.getenv
local error = error

local function required_env(name)
  local value = getenv(name)
  if not value or value == '' then
    error(name .. ' is not set: run the specs with scripts/test.sh, which starts the peers', 2)
  end
  return value
end

local peers = {}

--- `ws://127.0.0.1:<port><path>` on the tokio-tungstenite peer.
function peers.rust(path)
  return 'ws://127.0.0.1:' .. required_env('WS_TEST_RUST_PORT') .. (path or '/echo')
end

--- The same peer over TLS, reached as `host` (default 'localhost').
function peers.rust_tls(path, host)
  return 'wss://' .. (host or 'localhost') .. ':' .. required_env('WS_TEST_RUST_TLS_PORT') .. (path or '/echo')
end

--- The tokio-tungstenite peer on [::1], or nil when the host has no IPv6 loopback.
function peers.rust_ipv6(path)
  local port = getenv('WS_TEST_RUST_IPV6_PORT')
  if not port or port == '' then
    return nil
  end
  return 'ws://[::1]:' .. port .. (path or '/echo')
end

--- Whether the tokio-tungstenite peer has seen its `/track/<name>` connection's socket
-- close, asking up to `attempts` times (default 50, 50 ms apart).
function peers.rust_saw_close(name, attempts)
  local websocket = require'websocket'
  local socket = require'socket'
  for _ = 1, attempts or 50 do
    local probe = websocket.client.sync({ timeout = 5 })
    assert(probe:connect(peers.rust('/closed/' .. name)))
    local answer = probe:receive()
    probe:close()
    if answer == 'yes' then
      return true
    end
    socket.sleep(0.05)
  end
  return false
end

--- A port that accepts TCP connections and never answers.
function peers.silent()
  return 'ws://127.0.0.1:' .. required_env('WS_TEST_SILENT_PORT') .. '/'
end

--- A port that accepts TCP connections and closes them at once.
function peers.hangup()
  return 'ws://127.0.0.1:' .. required_env('WS_TEST_HANGUP_PORT') .. '/'
end

--- The interpreter running the specs, for specs that start another Lua process.
function peers.lua_interpreter()
  return required_env('WS_TEST_LUA')
end

--- The Python `websockets` peer.
--- The shell command running spec/peers/python_probe.py with `arguments`.
function peers.python_probe(arguments)
  return peers.python_interpreter() .. ' spec/peers/python_probe.py ' .. arguments
end

function peers.python(path)
  return 'ws://127.0.0.1:' .. required_env('WS_TEST_PYTHON_PORT') .. (path or '/echo')
end

--- Node's `ws` server.
function peers.node(path)
  return 'ws://127.0.0.1:' .. required_env('WS_TEST_NODE_PORT') .. (path or '/echo')
end

--- The raw-frame conformance server (spec/peers/conformance_server.py).
function peers.conformance(path)
  return 'ws://127.0.0.1:' .. required_env('WS_TEST_CONFORMANCE_PORT') .. path
end

--- The Python that has `websockets` installed.
function peers.python_interpreter()
  return required_env('WS_TEST_PYTHON')
end

--- The node_modules folder that has Node's `ws`.
function peers.node_modules()
  return required_env('WS_TEST_NODE_MODULES')
end

--- The self-signed certificate the TLS peer uses, as a CA file.
function peers.ca_file()
  return required_env('WS_TEST_CA_FILE')
end

--- A file that scripts/test.sh made for the TLS specs: `cert.pem`/`key.pem` (the server's,
-- self-signed for localhost and 127.0.0.1), `client-ca.pem`, `client-cert.pem`,
-- `client-key.pem` (a client certificate that client CA signed).
function peers.tls_file(name)
  return required_env('WS_TEST_TLS_DIR') .. '/' .. name
end

return peers
