--- Where the peers that scripts/test.sh started listen, read from the environment.
-- Every spec needs them: a missing one is an error that says how to run the specs.

local getenv = os.getenv
local error = error

local function port_of(name)
  local port = getenv(name)
  if not port or port == '' then
    error(name .. ' is not set: run the specs with scripts/test.sh, which starts the peers', 2)
  end
  return port
end

local peers = {}

--- `ws://127.0.0.1:<port><path>` on the tokio-tungstenite peer.
function peers.rust(path)
  return 'ws://127.0.0.1:' .. port_of('WS_TEST_RUST_PORT') .. (path or '/echo')
end

--- The same peer over TLS, reached as `host` (default 'localhost').
function peers.rust_tls(path, host)
  return 'wss://' .. (host or 'localhost') .. ':' .. port_of('WS_TEST_RUST_TLS_PORT') .. (path or '/echo')
end

--- The tokio-tungstenite peer on [::1], or nil when the host has no IPv6 loopback.
function peers.rust_ipv6(path)
  local port = getenv('WS_TEST_RUST_IPV6_PORT')
  if not port or port == '' then
    return nil
  end
  return 'ws://[::1]:' .. port .. (path or '/echo')
end

--- A port that accepts TCP connections and never answers.
function peers.silent()
  return 'ws://127.0.0.1:' .. port_of('WS_TEST_SILENT_PORT') .. '/'
end

--- The Python `websockets` peer.
function peers.python(path)
  return 'ws://127.0.0.1:' .. port_of('WS_TEST_PYTHON_PORT') .. (path or '/echo')
end

--- The self-signed certificate the TLS peer uses, as a CA file.
function peers.ca_file()
  return port_of('WS_TEST_CA_FILE')
end

return peers
