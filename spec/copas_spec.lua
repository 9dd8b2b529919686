--- The copas flavour (docs/api.md, "The copas flavour" and "Copas server"): copas
-- clients and copas servers in one copas loop, real sockets on 127.0.0.1.

local copas = require'copas'
local socket = require'socket'
local websocket = require'websocket'
local clients = require'spec.support.clients'
local copas_loop = require'spec.support.copas_loop'
local peers = require'spec.support.peers'
local process = require'spec.support.process'
local servers = require'spec.support.servers'

local run = copas_loop.run
local unpack = table.unpack or unpack

local echo_handler = require'spec.support.handlers'.echo

local start_server = servers.start
local raw_connection = servers.raw_connection

local copas_client = clients.copas

describe('copas server and copas client in one loop', function()
  local server, url, errors

  before_each(function()
    server, url, errors = start_server({
      protocols = {
        echo = echo_handler,
        chat = function(ws)
          while true do
            local message = ws:receive()
            if not message then
              return
            end
            ws:broadcast(message)
          end
        end,
        boom = function()
          error('deliberate handler failure')
        end,
      },
      default = function(ws)
        ws:send('goodbye strange client')
        ws:close()
      end,
    })
  end)

  after_each(function()
    server:close()
    copas_loop.step_until(function() return not require'websocket_native'.busy() end, 5)
  end)

  it('echoes TEXT and BINARY, 65537 bytes included', function()
    run(function()
      local client = copas_client(url, 'echo')
      assert.is_true(client:send('hello'))
      assert.are.same({ 'hello', websocket.TEXT }, { client:receive() })
      local big = ('0123456789'):rep(6554):sub(1, 65537)
      assert.is_true(client:send(big, websocket.BINARY))
      local echoed, opcode = client:receive()
      assert.are.equal(65537, #echoed)
      assert.is_true(echoed == big)
      assert.are.equal(websocket.BINARY, opcode)
      assert.are.same({ true, 1000, '' }, { client:close() })
    end)
  end)

  it('returns the chosen protocol and the response headers', function()
    run(function()
      local client = websocket.client.copas({ timeout = 5 })
      local ok, protocol, headers = client:connect(url, { 'unknown', 'echo' })
      assert.is_true(ok)
      assert.are.equal('echo', protocol)
      assert.are.equal('echo', headers['sec-websocket-protocol'])
      client:close()
    end)
  end)

  it('runs the default handler, whose close the client sees as clean', function()
    run(function()
      local client = copas_client(url)
      assert.are.equal('goodbye strange client', (client:receive()))
      local message, opcode, was_clean, code = client:receive()
      assert.is_nil(message)
      assert.is_nil(opcode)
      assert.is_true(was_clean)
      assert.are.equal(1000, code)
      assert.are.equal('CLOSED', client.state)
    end)
  end)

  it('broadcasts to every client of the same protocol, the sender included', function()
    local members, received = {}, {}
    run(function()
      for index = 1, 20 do
        members[index] = copas_client(url, 'chat')
      end
      members[7]:send('hello all')
      for index = 1, 20 do
        received[index] = members[index]:receive()
      end
      for index = 1, 20 do
        members[index]:close()
      end
    end)
    for index = 1, 20 do
      assert.are.equal('hello all', received[index])
    end
  end)

  it('wakes each of 200 clients waiting at once for its own echo', function()
    local bodies, echoed = {}, {}
    for index = 1, 200 do
      bodies[index] = function()
        local client = copas_client(url, 'echo')
        for round = 1, 10 do
          local message = index .. ':' .. round
          assert.is_true(client:send(message))
          assert.are.equal(message, (client:receive()))
        end
        client:close()
        echoed[#echoed + 1] = index
      end
    end
    run(unpack(bodies))
    assert.are.equal(200, #echoed)
  end)

  it('wakes 300 clients that one broadcast reaches at once (more than one step hands over)', function()
    -- Every client waits in its own coroutine; the last to connect sends, the server
    -- broadcasts to all, and the core raises every client in one step, more than the 256
    -- ids a step gives Lua: the rest must come with the next steps.
    local count, connected, received = 300, 0, {}
    local bodies = {}
    for index = 1, count do
      bodies[index] = function()
        local client = copas_client(url, 'chat')
        connected = connected + 1
        if connected == count then
          assert.is_true(client:send('hello all'))
        end
        received[index] = client:receive()
        client:close()
      end
    end
    run(unpack(bodies))
    for index = 1, count do
      assert.are.equal('hello all', received[index])
    end
  end)

  it('sends and receives the usual messages natively, and words what the native path declines', function()
    local native = require'websocket_native'.raw_functions()
    -- The native receive and send decline what is not theirs: not a handle, no such handle.
    assert.is_false(native.receive(nil))
    assert.is_false(native.receive(-1, true))
    assert.is_false(native.receive(1e9))
    assert.is_false(native.send(1e9, 'x'))
    run(function()
      local client = copas_client(url, 'echo')
      assert.is_true(client:send('text'))
      assert.are.same({ 'text', websocket.TEXT }, { client:receive() })
      assert.is_true(client:send('\255\0', websocket.BINARY))
      assert.are.same({ '\255\0', websocket.BINARY }, { client:receive() })
      assert.is_true(client:send('ping body', websocket.PING))
      assert.has_error(function() client:send('\255', websocket.TEXT) end,
        "bad argument #1 to 'send' (TEXT message is not valid UTF-8)")
      assert.has_error(function() client:send(42) end,
        "bad argument #1 to 'send' (string expected, got number)")
      assert.has_error(function() client:send('x', 3) end,
        "bad argument #2 to 'send' (unknown opcode 3 (TEXT, BINARY, PING or PONG expected))")
      -- Still usable after the refusals.
      assert.is_true(client:send('after'))
      assert.are.equal('after', (client:receive()))
      client:close()
    end)
  end)

  it('serves every message of a burst that came in one write', function()
    -- Masked with the zero key, so the payloads go as they are; a ping in the middle.
    local function frame(first_byte, payload)
      return string.char(first_byte, 0x80 + #payload) .. '\0\0\0\0' .. payload
    end
    local count = 100
    local burst = {}
    for index = 1, count do
      burst[#burst + 1] = frame(0x81, 'm-' .. index)
      if index == count / 2 then
        burst[#burst + 1] = frame(0x89, 'in the middle')
      end
    end
    local echoed, pongs = {}, 0
    local echo_server, _, _, port = start_server({ default = echo_handler })
    run(function()
      local connection, tcp = raw_connection(port)
      connection:send(servers.UPGRADE_REQUEST)
      repeat until assert(connection:receive('*l')) == ''
      connection:send(table.concat(burst))
      while #echoed < count do
        local head = assert(connection:receive(2))
        local payload = assert(connection:receive(head:byte(2)))
        if head:byte(1) == 0x8A then
          pongs = pongs + 1
        else
          echoed[#echoed + 1] = payload
        end
      end
      tcp:close()
    end)
    echo_server:close()
    for index = 1, count do
      assert.are.equal('m-' .. index, echoed[index])
    end
    assert.are.equal(1, pongs)
  end)

  it('receives every message that a peer wrote at once, each without waiting for more', function()
    run(function()
      clients.receive_burst(copas_client(peers.rust('/burst/200'), nil, { timeout = 2 }), 200)
    end)
  end)

  it('keeps messages whole and in order when sends outrun the reader, small and large mixed', function()
    -- Small messages are framed by the library and written straight to the socket when it
    -- takes them (client and server side alike), larger ones go through tungstenite, and a
    -- frame the socket takes only in part is finished before anything else: 40 MB one way
    -- while the other coroutine reads them back must arrive byte for byte, in order.
    local sizes = { 1, 125, 126, 1000, 8192, 16384, 16384, 16385, 40000 }
    local count = 3000
    local function message(index)
      local size = sizes[index % #sizes + 1]
      local stamp = ('%06d:'):format(index)
      return (stamp .. ('abcdefghij'):rep(math.floor(size / 10) + 1)):sub(1, math.max(size, #stamp))
    end
    local client, late
    run(function()
      client = copas_client(url, 'echo')
      late = copas_client(peers.rust('/later/1000'))
    end)
    local received, mismatch = 0, nil
    run(function()
      for index = 1, count do
        local opcode = index % 2 == 0 and websocket.BINARY or websocket.TEXT
        assert.is_true(client:send(message(index), opcode))
      end
    end, function()
      -- Not reading for a second (waiting for the peer that answers late) lets every
      -- buffer on the way fill up: the sender meets a full socket, and frames taken in part.
      assert.are.equal('late', (late:receive()))
      for index = 1, count do
        local echoed = client:receive()
        if echoed ~= message(index) and not mismatch then
          mismatch = ('message %d: %s'):format(index, tostring(echoed and echoed:sub(1, 20)))
        end
        received = received + 1
      end
    end)
    assert.is_nil(mismatch)
    assert.are.equal(count, received)
    client:close()
    late:close()
  end)

  it('lets two coroutines wait on one client, one receiving while the other sends', function()
    local client, got = nil, {}
    run(function()
      client = copas_client(url, 'echo')
    end)
    -- Each takes its index before receive yields.
    run(function()
      local message = client:receive()
      got[#got + 1] = message
    end, function()
      assert.is_true(client:send('one'))
      assert.is_true(client:send('two'))
      local message = client:receive()
      got[#got + 1] = message
    end)
    table.sort(got)
    assert.are.same({ 'one', 'two' }, got)
    client:close()
  end)

  it("reports a handler's error, closes that connection with 1011 and keeps the others", function()
    run(function()
      local survivor = copas_client(url, 'echo')
      local victim = copas_client(url, 'boom')
      local message, _, was_clean, code = victim:receive()
      assert.is_nil(message)
      assert.is_true(was_clean)
      assert.are.equal(1011, code)
      assert.is_true(survivor:send('still fine'))
      assert.are.equal('still fine', (survivor:receive()))
      survivor:close()
    end)
    assert.are.equal(1, #errors)
    assert.matches('deliberate handler failure', errors[1], 1, true)
  end)

  it('keeps running copas coroutines and plain luasocket sockets while websockets wait', function()
    local tcp_server = assert(socket.bind('127.0.0.1', 0))
    local _, tcp_port = tcp_server:getsockname()
    copas.addserver(tcp_server, function(connection)
      connection = copas.wrap(connection)
      while true do
        local line = connection:receive('*l')
        if not line then
          return
        end
        connection:send(line .. '\n')
      end
    end)
    local order = {}
    run(function()
      -- Waits about 400 ms for its message.
      local client = copas_client(peers.rust('/later/400'))
      assert.are.equal('late', (client:receive()))
      order[#order + 1] = 'websocket'
      client:close()
    end, function()
      local connection, tcp = raw_connection(tcp_port)
      for index = 1, 20 do
        connection:send('line ' .. index .. '\n')
        assert.are.equal('line ' .. index, connection:receive('*l'))
      end
      tcp:close()
      order[#order + 1] = 'tcp echo'
    end)
    if copas.removeserver then
      copas.removeserver(tcp_server)
    else
      -- copas 1.x cannot remove a server: it stays registered, idle, until the process ends.
      tcp_server:close()
    end
    assert.are.same({ 'tcp echo', 'websocket' }, order)
  end)

  it('counts copas timer ticks while a websocket waits (copas with sleep only)', function()
    if not copas.sleep then
      pending("this copas (" .. tostring(copas._VERSION) .. ") has no timers")
      return
    end
    local ticks, message = 0, nil
    run(function()
      local client = copas_client(peers.rust('/later/400'))
      message = client:receive()
      client:close()
    end, function()
      while message == nil do
        ticks = ticks + 1
        copas.sleep(0.02)
      end
    end)
    assert.are.equal('late', message)
    assert.is_true(ticks >= 5, 'only ' .. ticks .. ' ticks')
  end)
end)

describe('copas client timeouts inside copas', function()
  -- Each wait with a deadline leaves its alarm set for the next wait: after a run of quick
  -- echoes the alarm rings early for a later receive, which must still wait its whole
  -- timeout, time out, and leave the connection usable.
  it('times out a receive after many quick echoes, then echoes again', function()
    local echoed, timed_out, waited, after
    run(function()
      local client = websocket.client.copas({ timeout = 0.3 })
      assert.is_true((client:connect(peers.rust('/echo'))))
      echoed = 0
      for index = 1, 50 do
        assert.is_true(client:send('quick ' .. index))
        if client:receive() == 'quick ' .. index then
          echoed = echoed + 1
        end
      end
      local started = socket.gettime()
      timed_out = { client:receive() }
      waited = socket.gettime() - started
      assert.is_true(client:send('after the timeout'))
      after = client:receive()
      client:close()
    end)
    assert.are.equal(50, echoed)
    assert.are.same({ nil, nil, false, 1006, 'timeout' }, timed_out)
    -- Not before its deadline (an alarm left from an earlier receive rang first).
    assert.is_true(waited >= 0.29, 'timed out after ' .. waited .. ' s')
    assert.are.equal('after the timeout', after)
  end)
end)

describe('copas server handshakes', function()
  it('refuses a client whose protocols none match without a default, and says bad protocol', function()
    local server, url, errors = start_server({ protocols = { echo = echo_handler } })
    run(function()
      local client = websocket.client.copas({ timeout = 5 })
      local ok, err = client:connect(url, 'chat')
      assert.is_nil(ok)
      assert.are.equal('Websocket Handshake failed: HTTP status 400 Bad Request', err)
    end)
    server:close()
    assert.are.same({ 'bad protocol' }, errors)
  end)

  it('answers 400 Bad Request to a plain HTTP request and calls on_error', function()
    local server, _, errors, port = start_server({ default = echo_handler })
    local status_line
    run(function()
      local connection, tcp = raw_connection(port)
      connection:send('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
      status_line = connection:receive('*l')
      tcp:close()
    end)
    copas_loop.step_until(function() return #errors > 0 end, 5)
    server:close()
    assert.are.equal('HTTP/1.1 400 Bad Request', status_line)
    assert.are.equal(1, #errors)
  end)

  it('calls on_error for a request cut off in the middle', function()
    local server, _, errors, port = start_server({ default = echo_handler })
    run(function()
      local connection, tcp = raw_connection(port)
      connection:send('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n')
      tcp:close()
    end)
    assert.is_true(copas_loop.step_until(function() return #errors > 0 end, 5))
    server:close()
    assert.matches('incomplete handshake', errors[1], 1, true)
  end)
end)

describe('copas server:close', function()
  it('closes every connection cleanly with 1001 and frees the port at once', function()
    local server, url, _, port = start_server({ default = echo_handler })
    local endings = {}
    run(function()
      local connected = {}
      for index = 1, 5 do
        connected[index] = copas_client(url)
      end
      server:close()
      for index = 1, 5 do
        local _, _, was_clean, code = connected[index]:receive()
        endings[index] = { was_clean, code }
      end
    end)
    for index = 1, 5 do
      assert.are.same({ true, 1001 }, endings[index])
    end
    local rebound = assert(socket.bind('127.0.0.1', port))
    rebound:close()
  end)

  it('keeps the connections with keep_clients', function()
    local server, url = start_server({ default = echo_handler })
    run(function()
      local client = copas_client(url)
      server:close(true)
      assert.is_true(client:send('after close'))
      assert.are.equal('after close', (client:receive()))
      assert.is_true((client:close()))
    end)
  end)
end)

describe('copas server listen', function()
  it('raises for a port in use, with the reason', function()
    local taken = assert(socket.bind('127.0.0.1', 0))
    local _, port = taken:getsockname()
    assert.has_error(function()
      websocket.server.copas.listen({ port = port, interface = '127.0.0.1', default = echo_handler })
    end, 'cannot listen on 127.0.0.1 port ' .. port .. ': address already in use')
    taken:close()
  end)

  it('raises without handlers', function()
    assert.has_error(function()
      websocket.server.copas.listen({ port = process.free_port() })
    end, "bad argument #1 to 'listen' (config needs protocols or a default handler)")
  end)
end)

describe('copas client outside any coroutine', function()
  it('connects, echoes and closes from the main chunk', function()
    local client = websocket.client.copas({ timeout = 5 })
    assert.is_true((client:connect(peers.rust('/echo'))))
    assert.is_true(client:send('from the main chunk'))
    assert.are.equal('from the main chunk', (client:receive()))
    assert.are.same({ true, 1000, '' }, { client:close() })
  end)

  it('times out a receive and stays OPEN', function()
    local client = websocket.client.copas({ timeout = 0.1 })
    assert.is_true((client:connect(peers.rust('/later/300'))))
    assert.are.same({ nil, nil, false, 1006, 'timeout' }, { client:receive() })
    assert.are.equal('OPEN', client.state)
    client:close()
  end)
end)
