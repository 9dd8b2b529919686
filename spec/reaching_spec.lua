--- Reaching and guarding servers (docs/api.md, "Reaching servers"): clients through an HTTP
-- proxy (Debian's tinyproxy, started here on free ports), servers and clients on unix
-- sockets (with Debian's nginx in front, and Python `websockets`' unix_connect),
-- `config.origins` against this project's clients and Python `websockets`.

local websocket = require'websocket'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local process = require'spec.support.process'
local servers = require'spec.support.servers'
local services = require'spec.support.services'
local echo_handler = require'spec.support.handlers'.echo

local run = copas_loop.run

local python_probe = peers.python_probe

describe('config.origins', function()
  local server, url, errors, port, hook_calls

  before_each(function()
    hook_calls = 0
    server, url, errors, port = servers.start({
      origins = { 'https://app.example', 'http://LOCAL.example:8080' },
      on_request = function()
        hook_calls = hook_calls + 1
      end,
      protocols = { echo = echo_handler },
      default = echo_handler,
    })
  end)

  after_each(function()
    server:close()
  end)

  --- Connects a copas client with `origin` (nil: no Origin header): `ok, err` of connect.
  local function connect_from(origin)
    local ok, err
    run(function()
      local client = websocket.client.copas({ timeout = 5 })
      ok, err = client:connect(url, 'echo', nil, { Origin = origin })
      if ok then
        client:send('hi')
        assert.are.equal('hi', (client:receive()))
        client:close()
      end
    end)
    return ok, err
  end

  it('admits a listed origin, whatever its case', function()
    assert.is_true((connect_from('https://app.example')))
    assert.is_true((connect_from('http://local.example:8080')))
    assert.are.same({}, errors)
    assert.are.equal(2, hook_calls)
  end)

  it('answers 403 to another origin before on_request, and tells on_error', function()
    local ok, err = connect_from('https://evil.example')
    assert.is_nil(ok)
    assert.are.equal('Websocket Handshake failed: HTTP status 403 Forbidden', err)
    assert.are.same({ 'origin not allowed: https://evil.example' }, errors)
    assert.are.equal(0, hook_calls)
    -- A listed origin with another port is another origin.
    assert.is_nil((connect_from('https://app.example:8443')))
  end)

  it('refuses plain HTTP requests from another origin too', function()
    local status
    run(function()
      status = servers.http(port, 'GET / HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n')
    end)
    assert.are.equal(403, status)
    assert.are.equal(0, hook_calls)
  end)

  it('refuses a request without Origin unless false is listed', function()
    local ok, err = connect_from(nil)
    assert.is_nil(ok)
    assert.matches('403', err, 1, true)
    assert.are.same({ 'origin not allowed: (no Origin header)' }, errors)
    local lenient, lenient_url = servers.start({ origins = { false }, default = echo_handler })
    local lenient_ok, lenient_err
    run(function()
      local client = websocket.client.copas({ timeout = 5 })
      lenient_ok, lenient_err = client:connect(lenient_url)
      client:close()
    end)
    lenient:close()
    assert.is_true(lenient_ok, lenient_err)
  end)

  it('judges Python websockets clients with and without an Origin', function()
    local admitted = copas_loop.run_process(python_probe('origin ' .. url .. ' https://app.example'))
    assert.are.equal('echo from python\n', admitted)
    local refused = copas_loop.run_process(python_probe('origin ' .. url .. ' https://evil.example'))
    assert.are.equal('refused 403\n', refused)
    local without = copas_loop.run_process(python_probe('origin ' .. url))
    assert.are.equal('refused 403\n', without)
    -- The last refusal reaches on_error once its answer is written.
    copas_loop.step_until(function() return #errors == 2 end, 5)
    assert.are.same({ 'origin not allowed: https://evil.example', 'origin not allowed: (no Origin header)' }, errors)
  end)

  it('rejects bad lists with errors that name them', function()
    local function listen_with(origins)
      return pcall(websocket.server.copas.listen, { port = 0, origins = origins, default = echo_handler })
    end
    local ok, err = listen_with('https://app.example')
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'listen' (origins: table expected, got string)", err, 1, true)
    ok, err = listen_with({ 'https://app.example', true })
    assert.is_false(ok)
    assert.matches('origins: origin string or false expected, got boolean', err, 1, true)
    ok, err = listen_with({ 42 })
    assert.is_false(ok)
    assert.matches('origins: origin string or false expected, got number', err, 1, true)
  end)
end)

describe('clients through an HTTP proxy', function()
  local proxy, server, url, port, errors

  setup(function()
    proxy = services.tinyproxy()
    server, url, errors, port = servers.start({ protocols = { echo = echo_handler }, default = echo_handler })
  end)

  teardown(function()
    server:close()
    proxy.stop()
  end)

  --- How many tunnels `through` (a tinyproxy) opened to the server so far.
  local function tunnels(through)
    return services.count_lines(through, 'Established connection to host "127.0.0.1"')
  end

  --- A copas client's echo of `message` to `target` with `opts`; or nil and the error.
  local function echo_with(opts, target, message, ssl_params)
    local echoed, problem
    run(function()
      opts.timeout = 5
      local client = websocket.client.copas(opts)
      local ok, err = client:connect(target or url, 'echo', ssl_params)
      if not ok then
        problem = err
        return
      end
      client:send(message or 'through the proxy')
      echoed = client:receive()
      client:close()
    end)
    return echoed, problem
  end

  --- Runs a sync client in a process of its own with the environment `env` (a shell
  -- prefix) and `opts` (Lua source); returns what it printed: its echo, or its error.
  local function sync_process(env, opts, target)
    local script = "local ws = require'websocket'.client.sync(" .. opts .. ")"
      .. "; local ok, err = ws:connect('" .. (target or url) .. "', 'echo')"
      .. "; if not ok then print(err) return end"
      .. "; ws:send('from the environment'); print((ws:receive())); ws:close()"
    local output = copas_loop.run_process(env .. ' ' .. peers.lua_interpreter() .. ' -e "' .. script .. '"', 20)
    return output
  end

  it('tunnels ws:// with CONNECT (copas and sync clients)', function()
    local before = tunnels(proxy)
    assert.are.equal('through the proxy', (echo_with({ proxy = proxy.url })))
    -- The sync client blocks this process: it runs in one of its own.
    assert.are.equal('from the environment\n', sync_process('', "{ timeout = 5, proxy = '" .. proxy.url .. "' }"))
    assert.are.equal(before + 2, tunnels(proxy))
    assert.matches('CONNECT 127.0.0.1:' .. port, proxy.output(), 1, true)
  end)

  it('runs TLS to the server inside the tunnel, verifying it as without a proxy', function()
    local tls_file = peers.tls_file
    local tls_server, _, _, tls_port = servers.start({
      ssl = { certificate = tls_file('cert.pem'), key = tls_file('key.pem'), mode = 'server' },
      protocols = { echo = echo_handler },
    })
    local tls_url = 'wss://127.0.0.1:' .. tls_port .. '/'
    local echoed = echo_with({ proxy = proxy.url }, tls_url, 'over tls', { cafile = tls_file('cert.pem') })
    local _, unverified = echo_with({ proxy = proxy.url }, tls_url, 'x')
    tls_server:close()
    assert.are.equal('over tls', echoed)
    -- The platform's roots do not know the test certificate.
    assert.matches('certificate', unverified, 1, true)
    assert.matches('CONNECT 127.0.0.1:' .. tls_port, proxy.output(), 1, true)
  end)

  it('takes the proxy from the environment as curl does, and proxy = false ignores it', function()
    local via = 'http_proxy=' .. proxy.url .. ' no_proxy=example.test'
    local before = tunnels(proxy)
    assert.are.equal('from the environment\n', sync_process(via, '{ timeout = 5 }'))
    assert.are.equal(before + 1, tunnels(proxy))
    -- ALL_PROXY in upper case serves ws:// too; https_proxy alone does not.
    assert.are.equal('from the environment\n', sync_process('ALL_PROXY=' .. proxy.url, '{ timeout = 5 }'))
    assert.are.equal(before + 2, tunnels(proxy))
    assert.are.equal('from the environment\n', sync_process('https_proxy=' .. proxy.url, '{ timeout = 5 }'))
    -- no_proxy names the host, or *; proxy = false.
    assert.are.equal('from the environment\n', sync_process(via .. ',127.0.0.1', '{ timeout = 5 }'))
    local plain = 'http_proxy=' .. proxy.url
    assert.are.equal('from the environment\n', sync_process(plain .. ' NO_PROXY="*"', '{ timeout = 5 }'))
    assert.are.equal('from the environment\n', sync_process(plain, '{ timeout = 5, proxy = false }'))
    assert.are.equal(before + 2, tunnels(proxy))
  end)

  it('sends Basic credentials from the proxy URL (407 without them)', function()
    local guarded = services.tinyproxy({ 'BasicAuth user s3cret' })
    local _, refused = echo_with({ proxy = guarded.url })
    local _, wrong = echo_with({ proxy = 'http://user:wrong@127.0.0.1:' .. guarded.port })
    local echoed = echo_with({ proxy = 'http://user:s3cret@127.0.0.1:' .. guarded.port })
    guarded.stop()
    assert.are.equal('proxy refused: 407 Proxy Authentication Required', refused)
    -- tinyproxy's word for wrong credentials.
    assert.are.equal('proxy refused: 401 Unauthorized', wrong)
    assert.are.equal('through the proxy', echoed)
  end)

  it('says so when the proxy is down or refuses the port, and the client stays usable', function()
    local down_port = process.free_port()
    local _, down = echo_with({ proxy = 'http://127.0.0.1:' .. down_port })
    assert.are.equal('proxy 127.0.0.1:' .. down_port .. ': connection refused', down)
    local strict = services.tinyproxy({ 'ConnectPort 443' })
    local _, forbidden = echo_with({ proxy = strict.url })
    strict.stop()
    assert.are.equal('proxy refused: 403 Access violation', forbidden)
    -- The sync client's connect fails the same way, and the client stays CLOSED.
    local sync = websocket.client.sync({ timeout = 5, proxy = 'http://127.0.0.1:' .. down_port })
    local ok, err = sync:connect(url, 'echo')
    assert.is_nil(ok)
    assert.are.equal('proxy 127.0.0.1:' .. down_port .. ': connection refused', err)
    assert.are.equal('CLOSED', sync.state)
    -- A failed connect may be tried again.
    ok, err = sync:connect(url, 'echo')
    assert.is_nil(ok)
    assert.matches('connection refused', err, 1, true)
    assert.are.same({}, errors)
  end)

  it('gives up on a proxy that never answers within the timeout, as on a direct connect', function()
    -- A listening socket nobody accepts from: the kernel completes the TCP handshake.
    local mute = assert(require'socket'.bind('127.0.0.1', 0))
    local _, mute_port = mute:getsockname()
    local mute_url = 'http://127.0.0.1:' .. mute_port
    local sync = websocket.client.sync({ timeout = 0.3, proxy = mute_url })
    local sync_ok, sync_err = sync:connect(url, 'echo')
    local copas_ok, copas_err
    run(function()
      copas_ok, copas_err = websocket.client.copas({ timeout = 0.3, proxy = mute_url }):connect(url, 'echo')
    end)
    mute:close()
    assert.are.same({ nil, 'timeout' }, { sync_ok, sync_err })
    assert.are.same({ nil, 'timeout' }, { copas_ok, copas_err })
  end)

  it('rejects a bad proxy option with an error that names it', function()
    assert.has_error(function() websocket.client.sync({ proxy = 'socks5://127.0.0.1:1080' }) end,
      "bad argument #1 to 'sync' (proxy: unsupported proxy scheme 'socks5' (http:// expected))")
    assert.has_error(function() websocket.client.copas({ proxy = true }) end,
      "bad argument #1 to 'copas' (proxy: URL or false expected, got boolean)")
  end)
end)

describe('unix sockets', function()
  local directory, path, server, errors, seen

  --- A fresh directory for socket files (removed by teardown).
  setup(function()
    directory = os.tmpname()
    os.remove(directory)
    assert(os.execute('mkdir -p ' .. directory))
  end)

  teardown(function()
    os.execute('rm -rf ' .. directory)
  end)

  before_each(function()
    path = directory .. '/app.sock'
    seen = {}
    errors = {}
    local function recording_echo(ws)
      seen[#seen + 1] = { ws.request.headers.host, ws.request.path, ws:getpeername() }
      echo_handler(ws)
    end
    server = websocket.server.copas.listen({
      unix = path,
      on_error = function(message) errors[#errors + 1] = message end,
      protocols = { echo = recording_echo },
      default = recording_echo,
    })
  end)

  after_each(function()
    server:close()
  end)

  --- A copas client's echo of `message` over the socket, with `url` giving Host and
  -- resource.
  local function echo_on_socket(url, message)
    local echoed
    run(function()
      local client = websocket.client.copas({ timeout = 5, unix = path })
      assert(client:connect(url, 'echo'))
      client:send(message)
      echoed = client:receive()
      client:close()
    end)
    return echoed
  end

  local function file_type(of)
    local listing = io.popen('stat -c %F ' .. of .. ' 2>/dev/null')
    local kind = listing:read('*l')
    listing:close()
    return kind
  end

  it('serves copas and sync clients on the socket, the URL giving Host and resource', function()
    assert.are.equal('socket', file_type(path))
    assert.are.equal('over unix', echo_on_socket('ws://app.local/chat?room=7', 'over unix'))
    assert.are.same({ 'app.local', '/chat?room=7', path, nil, 'unix' }, seen[1])
    local script = "local ws = require'websocket'.client.sync({ timeout = 5, unix = '" .. path .. "' })"
      .. "; assert(ws:connect('ws://app.local/', 'echo')); ws:send('sync'); print((ws:receive())); ws:close()"
    local output = copas_loop.run_process(peers.lua_interpreter() .. ' -e "' .. script .. '"', 20)
    assert.are.equal('sync\n', output)
    assert.are.same({}, errors)
  end)

  it('serves Python websockets\' unix_connect', function()
    local output = copas_loop.run_process(python_probe('unix ' .. path .. ' ws://app.local/'), 20)
    assert.are.equal('echo over unix\n', output)
  end)

  it('serves clients through nginx with the socket as its upstream', function()
    if not services.find('nginx') then
      pending('nginx is not installed (scripts/test.sh installs it as root)')
      return
    end
    local nginx = services.nginx({ app = { 'unix:' .. path } })
    local echoed
    local ok, failure = pcall(run, function()
      local client = websocket.client.copas({ timeout = 5 })
      assert(client:connect('ws://127.0.0.1:' .. nginx.port .. '/app/', 'echo'))
      client:send('through nginx')
      echoed = client:receive()
      client:close()
    end)
    local python = copas_loop.run_process(python_probe('origin ws://127.0.0.1:' .. nginx.port .. '/app/'), 20)
    nginx.stop()
    assert.is_true(ok, failure)
    assert.are.equal('through nginx', echoed)
    assert.are.equal('echo from python\n', python)
    -- nginx names the upstream in Host unless told otherwise; the socket answers getpeername.
    assert.are.same({ 'app', '/', path, nil, 'unix' }, seen[1])
  end)

  it('removes its socket file at close, replaces a stale one and refuses one in use', function()
    assert.has_error(function()
      websocket.server.copas.listen({ unix = path, default = echo_handler })
    end, 'cannot listen on unix socket ' .. path .. ': address already in use')
    server:close()
    assert.is_nil(file_type(path))
    -- A socket file left by a process that ended without removing it.
    local leave_stale = 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])'
    assert(os.execute(peers.python_interpreter() .. ' -c "' .. leave_stale .. '" ' .. path))
    assert.are.equal('socket', file_type(path))
    server = websocket.server.copas.listen({ unix = path, protocols = { echo = echo_handler } })
    assert.are.equal('after a stale file', echo_on_socket('ws://app.local/', 'after a stale file'))
  end)

  it('says what is wrong with a path it cannot listen on or connect to', function()
    local function listen_error(config)
      config.default = echo_handler
      local ok, err = pcall(websocket.server.copas.listen, config)
      assert.is_false(ok)
      return err
    end
    local plain_file = directory .. '/plain'
    io.open(plain_file, 'w'):close()
    assert.matches('cannot listen on unix socket ' .. plain_file .. ': the path exists and is not a socket',
      listen_error({ unix = plain_file }), 1, true)
    assert.matches(': no such file or directory', listen_error({ unix = directory .. '/none/app.sock' }), 1, true)
    assert.matches("bad argument #1 to 'listen' (unix: unix socket path too long (200 bytes, at most 107))",
      listen_error({ unix = '/' .. ('x'):rep(199) }), 1, true)
    assert.matches("bad argument #1 to 'listen' (unix: a unix socket takes the place of port and interface)",
      listen_error({ unix = path .. '2', port = 8080 }), 1, true)
    local missing = directory .. '/missing.sock'
    local ok, err
    run(function()
      ok, err = websocket.client.copas({ timeout = 5, unix = missing }):connect('ws://app.local/')
    end)
    assert.is_nil(ok)
    assert.are.equal(missing .. ': no such file or directory', err)
    assert.has_error(function() websocket.client.sync({ unix = 42 }) end,
      "bad argument #1 to 'sync' (unix: socket path expected, got number)")
  end)
end)
