--- The server for production (docs/api.md, "The server for production"): closing, handlers
-- that returned, the request hook, request info, keepalive, read-ahead, client request
-- headers (server:broadcast has broadcast_spec.lua). Real sockets on 127.0.0.1, copas
-- clients in the same loop, Python `websockets` and raw luasocket peers.

local copas = require'copas'
local socket = require'socket'
local websocket = require'websocket'
local clients = require'spec.support.clients'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local process = require'spec.support.process'
local servers = require'spec.support.servers'

local run = copas_loop.run
local echo_handler = require'spec.support.handlers'.echo

local copas_client = clients.copas

local python_probe = peers.python_probe

--- A raw upgrade that is never read from again: the server's pings go unanswered.
local function mute_client(port)
  local tcp = assert(socket.connect('127.0.0.1', port))
  tcp:send(servers.UPGRADE_REQUEST)
  return tcp
end

describe('server:close()', function()
  it('returns once every client is closed, in a coroutine', function()
    local handlers_done = 0
    local server, url = servers.start({
      default = function(ws)
        while ws:receive() do end
        handlers_done = handlers_done + 1
      end,
    })
    local states = {}
    run(function()
      local connected = {}
      for index = 1, 5 do
        connected[index] = copas_client(url)
      end
      server:close()
      for index = 1, 5 do
        states[index] = connected[index].state
      end
    end)
    assert.are.same({ 'CLOSED', 'CLOSED', 'CLOSED', 'CLOSED', 'CLOSED' }, states)
    if copas.sleep then
      assert.are.equal(5, handlers_done)
    end
  end)

  it('returns once every client is closed, blocking outside coroutines', function()
    local server, url = servers.start({ default = echo_handler })
    local connected = {}
    run(function()
      for index = 1, 3 do
        connected[index] = copas_client(url)
      end
    end)
    server:close()
    for index = 1, 3 do
      assert.are.equal('CLOSED', connected[index].state)
    end
  end)

  it('leaves the dispatcher and the program running (lua-websockets-style program)', function()
    local script = [[
      local copas = require'copas'
      local websocket = require'websocket'
      local port = tonumber(arg[1])
      local server = websocket.server.copas.listen({ port = port, interface = '127.0.0.1',
        default = function(ws) while ws:receive() do end end })
      local finished = false
      copas.addthread(function()
        local client = websocket.client.copas({ timeout = 5 })
        assert(client:connect('ws://127.0.0.1:' .. port .. '/'))
        server:close()
        print('client after close: ' .. client.state)
        local again = websocket.client.copas({ timeout = 1 })
        print('connect after close: ' .. tostring((again:connect('ws://127.0.0.1:' .. port .. '/'))))
        finished = true
      end)
      local deadline = os.time() + 10
      while not finished and os.time() < deadline do copas.step(0.05) end
      for _ = 1, 20 do copas.step(0.01) end
      print('finished ' .. tostring(finished))
    ]]
    local file = os.tmpname()
    local handle = assert(io.open(file, 'w'))
    handle:write(script)
    handle:close()
    local output, status = copas_loop.run_process(
      peers.lua_interpreter() .. ' ' .. file .. ' ' .. process.free_port(), 30)
    os.remove(file)
    assert.are.equal(0, status, output)
    assert.matches('client after close: CLOSED', output, 1, true)
    assert.matches('connect after close: nil', output, 1, true)
    assert.matches('finished true', output, 1, true)
    assert.not_matches('attempt to', output, 1, true)
    assert.not_matches('traceback', output, 1, true)
  end)
end)

describe('a connection whose handler returned', function()
  local server, url, port, kept

  before_each(function()
    kept = {}
    local _
    server, url, _, port = servers.start({
      default = function(ws)
        kept[#kept + 1] = ws
      end,
    })
  end)

  after_each(function()
    server:close()
  end)

  it('still answers pings (Python websockets)', function()
    local output, status = copas_loop.run_process(python_probe('ping ws://127.0.0.1:' .. port .. '/'), 20)
    assert.are.equal(0, status, output)
    assert.matches('pong received', output, 1, true)
  end)

  it('completes a close by the peer cleanly', function()
    run(function()
      local client = copas_client(url)
      assert.are.same({ true, 1000, '' }, { client:close() })
    end)
  end)

  it('keeps what arrived for a later receive, and sends and broadcasts still reach it', function()
    run(function()
      local client = copas_client(url)
      assert.is_true(client:send('one'))
      assert.is_true(client:send('two', websocket.BINARY))
      assert.is_true(copas_loop.step_until(function() return #kept == 1 end, 5))
      local ws = kept[1]
      assert.are.same({ 'one', websocket.TEXT }, { ws:receive() })
      assert.are.same({ 'two', websocket.BINARY }, { ws:receive() })
      assert.is_true(ws:send('from the server'))
      assert.are.equal('from the server', (client:receive()))
      ws:broadcast('to the group')
      assert.are.equal('to the group', (client:receive()))
      client:close()
    end)
  end)
end)

describe('protocols', function()
  it('connects a client offering a protocol that only the default handler serves', function()
    local seen_protocol = 'unset'
    local server, url = servers.start({
      protocols = { echo = echo_handler },
      default = function(ws)
        seen_protocol = ws.protocol
        ws:send('default here')
      end,
    })
    run(function()
      local client = websocket.client.copas({ timeout = 5 })
      local ok, protocol = client:connect(url, 'unknown')
      assert.is_true(ok, protocol)
      assert.is_nil(protocol)
      assert.are.equal('default here', (client:receive()))
      client:close()
      local echo = copas_client(url, { 'unknown', 'echo' })
      echo:close()
    end)
    server:close()
    assert.is_nil(seen_protocol)
  end)

  it('gives the handler ws.protocol', function()
    local seen
    local server, url = servers.start({
      protocols = { chat = function(ws) seen = ws.protocol end },
    })
    run(function()
      copas_client(url, 'chat'):close()
    end)
    server:close()
    assert.are.equal('chat', seen)
  end)
end)

describe('on_request', function()
  local server, url, errors, port, requests

  before_each(function()
    requests = {}
    server, url, errors, port = servers.start({
      on_request = function(request)
        requests[#requests + 1] = request
        if request.path == '/health' then
          return 200, { ['content-type'] = 'text/plain' }, 'ok'
        elseif request.path == '/boom' then
          error('deliberate hook failure')
        elseif request.path == '/nonsense' then
          return 'not a status'
        elseif request.path:find('^/slow') then
          -- Yields to copas: a websocket round trip to another server.
          local lookup = websocket.client.copas({ timeout = 5 })
          assert(lookup:connect(peers.rust('/later/100')))
          request.user = lookup:receive()
          lookup:close()
          return
        elseif request.headers.authorization ~= 'Bearer good' then
          return 401, { ['WWW-Authenticate'] = 'Bearer' }, 'no token'
        end
        request.user = 'alice'
      end,
      default = function(ws)
        ws:send(ws.request.user .. ' ' .. ws.request.path)
      end,
    })
  end)

  after_each(function()
    server:close()
  end)

  it('refuses with 401, its headers and body, and runs no handler', function()
    run(function()
      local client = websocket.client.copas({ timeout = 5 })
      local ok, err, headers = client:connect(url)
      assert.is_nil(ok)
      assert.are.equal('Websocket Handshake failed: HTTP status 401 Unauthorized', err)
      assert.are.equal('Bearer', headers['www-authenticate'])
      assert.are.equal('close', headers['connection'])
    end)
    assert.are.same({}, errors)
  end)

  it('lets the upgrade go on, and fields it sets reach the handler', function()
    run(function()
      local client = websocket.client.copas({ timeout = 5 })
      assert.is_true((client:connect(url .. 'room?id=7', nil, nil, { Authorization = 'Bearer good' })))
      assert.are.equal('alice /room?id=7', (client:receive()))
      client:close()
    end)
    local request = requests[1]
    assert.are.equal('GET', request.method)
    assert.are.equal('/room?id=7', request.path)
    assert.are.equal('websocket', request.headers.upgrade)
    assert.are.same({}, request.protocols)
    assert.are.equal('127.0.0.1', request.address)
    assert.are.equal('number', type(request.port))
    assert.is_false(request.secure)
  end)

  it('may yield to copas', function()
    run(function()
      local client = copas_client(url .. 'slow')
      assert.are.equal('late /slow', (client:receive()))
      client:close()
    end)
  end)

  it('serves plain HTTP on the WebSocket port', function()
    local status, headers, body
    run(function()
      status, headers, body = servers.http(port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
    end)
    assert.are.equal(200, status)
    assert.are.equal('text/plain', headers['content-type'])
    assert.are.equal('2', headers['content-length'])
    assert.are.equal('ok', body)
  end)

  it('answers 500 and calls on_error when the hook fails or answers nonsense', function()
    local statuses = {}
    run(function()
      statuses[1] = servers.http(port, 'GET /boom HTTP/1.1\r\nHost: x\r\n\r\n')
      statuses[2] = servers.http(port, 'GET /nonsense HTTP/1.1\r\nHost: x\r\n\r\n')
      -- The server still serves.
      local client = websocket.client.copas({ timeout = 5 })
      assert.is_true((client:connect(url, nil, nil, { Authorization = 'Bearer good' })))
      client:close()
    end)
    assert.are.same({ 500, 500 }, statuses)
    assert.are.equal(2, #errors)
    assert.matches('deliberate hook failure', errors[1], 1, true)
    assert.matches('bad response', errors[2], 1, true)
  end)

  it('sees the offered protocols and a header list', function()
    run(function()
      local client = websocket.client.copas({ timeout = 5 })
      client:connect(url, { 'one', 'two' }, nil, { ['X-Tag'] = 'a' })
    end)
    assert.are.same({ 'one', 'two' }, requests[1].protocols)
    assert.are.equal('a', requests[1].headers['x-tag'])
  end)
end)

describe('ws:getpeername()', function()
  it('tells the IPv4 address and port, and IPv6 where the host has it', function()
    local peers_seen = {}
    local server, url, _, port = servers.start({
      interface = '*',
      default = function(ws)
        peers_seen[#peers_seen + 1] = { ws:getpeername() }
      end,
    })
    run(function()
      local client = copas_client(url)
      client:close()
      if peers.rust_ipv6() then
        copas_client('ws://[::1]:' .. port .. '/'):close()
      end
    end)
    server:close()
    assert.are.equal('127.0.0.1', peers_seen[1][1])
    assert.are.equal('number', type(peers_seen[1][2]))
    assert.are.equal('inet', peers_seen[1][3])
    if peers.rust_ipv6() then
      assert.are.same('::1', peers_seen[2][1])
      assert.are.equal('inet6', peers_seen[2][3])
    end
  end)
end)

describe('keepalive', function()
  it('drops a server connection whose peer stops answering pings, and keeps the others', function()
    local endings, talker_state = {}, nil
    local server, url, _, port = servers.start({
      ping_interval = 0.2,
      ping_timeout = 0.2,
      default = function(ws)
        local message, _, was_clean, code, reason = ws:receive()
        endings[#endings + 1] = { message, was_clean, code, reason }
      end,
    })
    local mute
    run(function()
      local talker = copas_client(url)
      mute = mute_client(port)
      -- interval + timeout is 0.4 s: wait well past it.
      local deadline = copas_loop.gettime() + 1.2
      copas_loop.step_until(function() return copas_loop.gettime() > deadline end, 5)
      talker_state = talker.state
      talker:send('bye')
      talker:close()
    end)
    mute:close()
    server:close()
    assert.are.equal('OPEN', talker_state)
    assert.are.same({ nil, false, 1006, 'keepalive ping timeout' }, endings[1])
    assert.are.equal('bye', endings[2][1])
  end)

  it('fails a copas client whose server stops answering, with no receive waiting', function()
    local client
    run(function()
      client = copas_client(peers.rust('/stall'), nil, { timeout = 5, ping_interval = 0.1, ping_timeout = 0.1 })
    end)
    assert.is_true(copas_loop.step_until(function() return client.state == 'CLOSED' end, 5))
    assert.are.same({ nil, nil, false, 1006, 'keepalive ping timeout' }, { client:receive() })
  end)

  it('fails a sync client whose server stops answering while it receives', function()
    local client = clients.connected('sync', peers.rust('/stall'), nil,
      { timeout = 5, ping_interval = 0.1, ping_timeout = 0.1 })
    local started = socket.gettime()
    assert.are.same({ nil, nil, false, 1006, 'keepalive ping timeout' }, { client:receive() })
    assert.is_true(socket.gettime() - started < 2)
    assert.are.equal('CLOSED', client.state)
  end)

  it('keeps a quiet connection open through many intervals', function()
    -- Python's server answers pings while it waits to send.
    local client = clients.connected('sync', peers.python('/later/700'), nil,
      { timeout = 5, ping_interval = 0.05 })
    assert.are.equal('late', (client:receive()))
    client:close()
    run(function()
      local copas_one = copas_client(peers.python('/later/700'), nil, { timeout = 5, ping_interval = 0.05 })
      assert.are.equal('late', (copas_one:receive()))
      copas_one:close()
    end)
  end)

  it('rejects bad settings with errors that name them', function()
    assert.has_error(function() websocket.client.sync({ ping_interval = 'soon' }) end,
      "bad argument #1 to 'sync' (ping_interval: number expected, got string)")
    assert.has_error(function() websocket.client.copas({ ping_interval = 0 }) end,
      "bad argument #1 to 'copas' (ping_interval: must be positive)")
    assert.has_error(function() websocket.client.copas({ max_queue = 0 }) end,
      "bad argument #1 to 'copas' (max_queue: positive whole number expected)")
  end)
end)

describe('read-ahead', function()
  it('holds a flooding peer back with TCP once max_queue is full, and loses nothing', function()
    local count, size = 120, 256 * 1024
    local received, ws_ready, order_ok = 0, false, true
    local server, _, _, port = servers.start({
      max_queue = 2,
      max_message_size = size,
      default = function(ws)
        ws_ready = ws
      end,
    })
    local rss_before = process.rss_kib()
    local output_file = os.tmpname()
    os.execute(python_probe(('flood ws://127.0.0.1:%d/ %d %d > %s 2>&1 &'):format(port, count, size, output_file)))
    assert.is_true(copas_loop.step_until(function() return ws_ready end, 10))
    -- Nobody reads for a second.
    local deadline = copas_loop.gettime() + 1
    copas_loop.step_until(function() return copas_loop.gettime() > deadline end, 5)
    local rss_held = process.rss_kib()
    local function sent_so_far()
      local file = io.open(output_file)
      local text = file and file:read('*a') or ''
      if file then file:close() end
      local last = 0
      for n in text:gmatch('sent (%d+) at') do last = tonumber(n) end
      return last, text
    end
    local sent_while_held = sent_so_far()
    run(function()
      for index = 0, count - 1 do
        local message = ws_ready:receive()
        assert.are.equal(size, #message)
        local number = 0
        for byte = 1, 8 do
          number = number * 256 + message:byte(byte)
        end
        order_ok = order_ok and number == index
        received = received + 1
      end
      ws_ready:close()
    end)
    local _, text = sent_so_far()
    os.remove(output_file)
    server:close()
    assert.is_true(sent_while_held < count, 'the peer sent everything while nobody read: ' .. text)
    assert.are.equal(count, received)
    assert.is_true(order_ok)
    -- 30 MiB went through; what was held while nobody read stays far below it.
    assert.is_true(rss_held - rss_before < 16 * 1024,
      ('RSS grew by %d KiB while the peer was held back'):format(rss_held - rss_before))
  end)
end)

describe('client request headers', function()
  local server, url, requests

  before_each(function()
    requests = {}
    server, url = servers.start({
      on_request = function(request) requests[#requests + 1] = request end,
      default = function() end,
    })
  end)

  after_each(function()
    server:close()
  end)

  it("sends opts.headers and connect's, connect's winning", function()
    run(function()
      local client = websocket.client.copas({
        timeout = 5,
        headers = { ['X-From-Opts'] = 'a', ['X-Both'] = 'opts' },
      })
      assert.is_true((client:connect(url, nil, nil, { ['X-Both'] = 'connect', Cookie = 'k=v' })))
      client:close()
    end)
    local headers = requests[1].headers
    assert.are.equal('a', headers['x-from-opts'])
    assert.are.equal('connect', headers['x-both'])
    assert.are.equal('k=v', headers.cookie)
  end)

  it('sends them from the sync client too (in a process of its own)', function()
    local script = "local ws = require'websocket'.client.sync({ timeout = 5,"
      .. " headers = { Origin = 'http://example.test' } })"
      .. "; assert(ws:connect('" .. url .. "')); ws:close()"
    local output, status = copas_loop.run_process(peers.lua_interpreter() .. ' -e "' .. script .. '"', 20)
    assert.are.equal(0, status, output)
    assert.are.equal('http://example.test', requests[1].headers.origin)
  end)

  it('raises for bad names, bad values and the handshake\'s own headers', function()
    local client = websocket.client.copas({ timeout = 5 })
    assert.has_error(function() client:connect(url, nil, nil, { ['Bad Name'] = 'x' }) end,
      "bad argument #4 to 'connect' (headers: invalid header name 'Bad Name')")
    assert.has_error(function() client:connect(url, nil, nil, { ['X-Evil'] = 'a\r\nInjected: 1' }) end,
      "bad argument #4 to 'connect' (headers: invalid value for header 'X-Evil')")
    assert.has_error(function() client:connect(url, nil, nil, { Upgrade = 'h2c' }) end,
      "bad argument #4 to 'connect' (headers: 'Upgrade' is set by the WebSocket handshake itself)")
    assert.has_error(function() websocket.client.sync({ headers = { ['Sec-WebSocket-Protocol'] = 'x' } }) end,
      "bad argument #1 to 'sync' (headers: 'Sec-WebSocket-Protocol' is set by the WebSocket handshake itself)")
    assert.are.equal('CLOSED', client.state)
  end)
end)
