--- The copas server over TLS (`config.ssl`, docs/api.md "The server for production"), with
-- certificates scripts/test.sh made with openssl: this project's copas client, Python
-- `websockets` and Node `ws` as clients; bad files, plain text, silence and wrong client
-- certificates.

local socket = require'socket'
local websocket = require'websocket'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local servers = require'spec.support.servers'

local run = copas_loop.run
local echo_handler = require'spec.support.handlers'.echo

local tls_file = peers.tls_file

local function server_ssl(extra)
  local ssl = { certificate = tls_file('cert.pem'), key = tls_file('key.pem'), mode = 'server' }
  for key, value in pairs(extra or {}) do
    ssl[key] = value
  end
  return ssl
end

local function start_tls_server(extra_ssl, config)
  config = config or {}
  config.ssl = server_ssl(extra_ssl)
  config.protocols = config.protocols or { echo = echo_handler }
  local server, _, errors, port = servers.start(config)
  return server, 'wss://localhost:' .. port .. '/', errors, port
end

--- A copas client's echo over wss://, or the connect error.
local function echo_over_tls(url, ssl_params)
  local client = websocket.client.copas({ timeout = 5 })
  local ok, err = client:connect(url, 'echo', ssl_params)
  if not ok then
    return nil, err
  end
  client:send('over tls')
  local echoed = client:receive()
  client:close()
  return echoed
end

describe('the copas server over TLS', function()
  it('serves the copas client, by host name and by IP, and tells the hook it is secure', function()
    local secure
    local server, url, errors, port = start_tls_server(nil, {
      on_request = function(request) secure = request.secure end,
    })
    local echoed = {}
    run(function()
      echoed[1] = assert(echo_over_tls(url, { cafile = tls_file('cert.pem') }))
      echoed[2] = assert(echo_over_tls('wss://127.0.0.1:' .. port .. '/', { cafile = tls_file('cert.pem') }))
    end)
    server:close()
    assert.are.same({ 'over tls', 'over tls' }, echoed)
    assert.is_true(secure)
    assert.are.same({}, errors)
  end)

  it("serves Python websockets' and Node ws' clients", function()
    local server, url, errors = start_tls_server()
    local python_output, python_status = copas_loop.run_process(
      peers.python_interpreter() .. ' spec/peers/python_probe.py tls ' .. url .. ' ' .. tls_file('cert.pem'), 20)
    local node_output, node_status = copas_loop.run_process(
      'NODE_EXTRA_CA_CERTS=' .. tls_file('cert.pem') .. ' NODE_PATH=' .. peers.node_modules()
        .. ' node spec/peers/node_client.cjs ' .. url, 20)
    server:close()
    assert.are.equal(0, python_status, python_output)
    assert.matches('echo over tls', python_output, 1, true)
    assert.are.equal(0, node_status, node_output)
    assert.matches('protocol echo\n', node_output, 1, true)
    assert.matches('\nbig 70000 true\n', node_output, 1, true)
    assert.matches('\nclosed 4001 done\n', node_output, 1, true)
    assert.are.same({}, errors)
  end)

  it('raises from listen for files that cannot be read or do not fit', function()
    local port = require'spec.support.process'.free_port()
    local function listen_with(ssl)
      return function()
        websocket.server.copas.listen({ port = port, interface = '127.0.0.1', default = echo_handler, ssl = ssl })
      end
    end
    assert.has_error(listen_with({ certificate = '/nonexistent/cert.pem', key = tls_file('key.pem') }))
    local ok, err = pcall(listen_with({ certificate = '/nonexistent/cert.pem', key = tls_file('key.pem') }))
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'listen' (ssl: ", err, 1, true)
    assert.matches('/nonexistent/cert.pem', err, 1, true)
    ok, err = pcall(listen_with({ certificate = tls_file('cert.pem'), key = tls_file('client-key.pem') }))
    assert.is_false(ok)
    assert.matches('certificate and key do not fit', err, 1, true)
    ok, err = pcall(listen_with({ certificate = tls_file('cert.pem') }))
    assert.is_false(ok)
    assert.matches('key: file name expected, got nil', err, 1, true)
  end)

  it('costs a plain-text client and a silent one on_error only', function()
    local server, url, errors, port = start_tls_server(nil, { handshake_timeout = 0.5 })
    local plain_answer, echoed
    local silent = assert(socket.connect('127.0.0.1', port))
    run(function()
      local connection, tcp = servers.raw_connection(port)
      connection:send('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
      plain_answer = connection:receive('*a')
      tcp:close()
      echoed = echo_over_tls(url, { cafile = tls_file('cert.pem') })
    end)
    assert.is_true(copas_loop.step_until(function() return #errors >= 2 end, 5))
    silent:close()
    server:close()
    assert.are.equal('over tls', echoed)
    assert.is_falsy(plain_answer and plain_answer:find('HTTP/1.1 101', 1, true))
    local all_errors = table.concat(errors, '\n')
    assert.are.equal(2, #errors, all_errors)
    assert.matches('handshake timed out', all_errors, 1, true)
    assert.matches('TLS handshake failed', all_errors, 1, true)
  end)

  it('asks for client certificates and refuses the wrong ones', function()
    local server, url, errors = start_tls_server({
      verify = { 'peer', 'fail_if_no_peer_cert' },
      cafile = tls_file('client-ca.pem'),
    })
    local outcomes = {}
    run(function()
      outcomes.good = { echo_over_tls(url, {
        cafile = tls_file('cert.pem'),
        certificate = tls_file('client-cert.pem'),
        key = tls_file('client-key.pem'),
      }) }
      outcomes.none = { echo_over_tls(url, { cafile = tls_file('cert.pem') }) }
      -- Signed by nobody the server trusts.
      outcomes.wrong = { echo_over_tls(url, {
        cafile = tls_file('cert.pem'),
        certificate = tls_file('cert.pem'),
        key = tls_file('key.pem'),
      }) }
    end)
    assert.is_true(copas_loop.step_until(function() return #errors >= 2 end, 5))
    server:close()
    assert.are.same({ 'over tls' }, outcomes.good)
    assert.is_nil(outcomes.none[1])
    assert.is_nil(outcomes.wrong[1])
    assert.are.equal(2, #errors)
  end)

  it('needs a cafile to ask for client certificates', function()
    local ok, err = pcall(websocket.server.copas.listen, {
      port = require'spec.support.process'.free_port(),
      default = echo_handler,
      ssl = server_ssl({ verify = 'peer' }),
    })
    assert.is_false(ok)
    assert.matches('needs a cafile', err, 1, true)
  end)
end)
