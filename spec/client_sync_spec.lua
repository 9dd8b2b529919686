--- The sync client's contract (docs/api.md, "Client") beyond plain echo: module
-- shape, connect results and errors, timeouts, states, argument errors, headers, GC.

local websocket = require'websocket'
local clients = require'spec.support.clients'
local peers = require'spec.support.peers'
local process = require'spec.support.process'

local function connected_client(url, opts)
  return clients.connected('sync', url, nil, opts)
end

describe('the websocket module', function()
  it('has the opcodes of lua-websockets', function()
    assert.are.same(
      { 0, 1, 2, 8, 9, 10 },
      { websocket.CONTINUATION, websocket.TEXT, websocket.BINARY,
        websocket.CLOSE, websocket.PING, websocket.PONG })
  end)

  it('makes client.new the same function as client.sync', function()
    assert.are.equal(websocket.client.sync, websocket.client.new)
    assert.are.equal('function', type(websocket.client.sync))
  end)

  it('loads under the lua-websockets module names', function()
    assert.are.equal(websocket.client.sync, require'websocket.client_sync')
    assert.are.equal(websocket.client, require'websocket.client')
  end)

  it('does not load copas (checked in a fresh Lua process)', function()
    local command = peers.lua_interpreter()
      .. [[ -e "require'websocket'; io.write(tostring(package.loaded.copas))"]]
    local run = assert(io.popen(command))
    local output = run:read('*a')
    run:close()
    assert.are.equal('nil', output)
  end)
end)

describe('sync client connect', function()
  it('returns true, the protocol and the response headers, names lower-cased', function()
    local client = websocket.client.sync({ timeout = 10 })
    local ok, protocol, headers = client:connect(peers.rust('/headers'), 'echo')
    assert.is_true(ok)
    assert.are.equal('echo', protocol)
    assert.are.equal('websocket', headers['upgrade']:lower())
    assert.are.equal('Value', headers['x-custom'])
    assert.are.equal('one,two', headers['x-repeated'])
    assert.are.equal('OPEN', client.state)
    client:close()
  end)

  it('answers bad protocol for another scheme, with no third value', function()
    local client = websocket.client.sync()
    assert.are.equal(2, select('#', client:connect('http://127.0.0.1/')))
    local first, second = client:connect('http://127.0.0.1/')
    assert.is_nil(first)
    assert.are.equal('bad protocol', second)
    assert.are.equal('CLOSED', client.state)
  end)

  it('says connection refused for a port nobody listens on', function()
    local client = websocket.client.sync({ timeout = 5 })
    local ok, err = client:connect('ws://127.0.0.1:' .. process.free_port() .. '/')
    assert.is_nil(ok)
    assert.are.equal('connection refused', err)
  end)

  it('uses luasocket wording for an unknown host', function()
    local client = websocket.client.sync({ timeout = 5 })
    local ok, err = client:connect('ws://no-such-host.invalid/')
    assert.is_nil(ok)
    assert.are.equal('host or service not provided, or not known', err)
  end)

  it('times out on a server that never answers the handshake', function()
    local client = websocket.client.sync({ timeout = 0.3 })
    local ok, err = client:connect(peers.silent())
    assert.is_nil(ok)
    assert.are.equal('timeout', err)
    assert.are.equal('CLOSED', client.state)
  end)

  it('reports a refused handshake with the HTTP status and the headers', function()
    local client = websocket.client.sync({ timeout = 5 })
    local ok, err, headers = client:connect(peers.rust('/status/404'))
    assert.is_nil(ok)
    assert.are.equal('Websocket Handshake failed: HTTP status 404 Not Found', err)
    assert.are.equal('table', type(headers))
    assert.are.equal('CLOSED', client.state)
  end)

  it('says closed when the server hangs up during the handshake', function()
    local client = websocket.client.sync({ timeout = 5 })
    local ok, err = client:connect(peers.hangup())
    assert.is_nil(ok)
    assert.are.equal('closed', err)
  end)

  it('connects with protocol nil when the server selects none of the offered protocols', function()
    local client = websocket.client.sync({ timeout = 5 })
    local ok, protocol, headers = client:connect(peers.rust('/echo'), { 'not-known', 'either' })
    assert.is_true(ok, protocol)
    assert.is_nil(protocol)
    assert.is_nil(headers['sec-websocket-protocol'])
    assert.are.equal('OPEN', client.state)
    assert.is_true(client:send('still talks'))
    assert.are.equal('still talks', (client:receive()))
    client:close()
  end)

  it('still fails when the server selects a protocol that was not offered', function()
    local client = websocket.client.sync({ timeout = 5 })
    local ok, err = client:connect(peers.rust('/protocol/imposed'), 'offered')
    assert.is_nil(ok)
    assert.matches('Websocket Handshake failed: SubProtocol error', err, 1, true)
    assert.are.equal('CLOSED', client.state)
  end)

  it('answers wrong state to a second connect and keeps the connection', function()
    local client = connected_client(peers.rust('/echo'))
    local ok, err = client:connect(peers.rust('/echo'))
    assert.is_nil(ok)
    assert.are.equal('wrong state', err)
    assert.is_true(client:send('still here'))
    assert.are.equal('still here', (client:receive()))
    client:close()
  end)

  it('can connect again after a close', function()
    local client = connected_client(peers.rust('/echo'))
    client:close()
    assert.is_true((client:connect(peers.rust('/echo'))))
    assert.is_true(client:send('again'))
    assert.are.equal('again', (client:receive()))
    client:close()
  end)

  it('reaches an IPv6 literal in brackets', function()
    local url = peers.rust_ipv6('/echo')
    if not url then
      pending('this host has no IPv6 loopback')
      return
    end
    local client = connected_client(url)
    assert.is_true(client:send('over v6'))
    assert.are.equal('over v6', (client:receive()))
    client:close()
  end)

  it('raises an error naming the argument for a URL that is not a string', function()
    local client = websocket.client.sync()
    assert.has_error(function() client:connect(42) end,
      "bad argument #1 to 'connect' (string expected, got number)")
  end)

  it('raises an error for a protocol that is not a string or list', function()
    local client = websocket.client.sync()
    assert.has_error(function() client:connect(peers.rust('/echo'), 42) end,
      "bad argument #2 to 'connect' (string or table expected, got number)")
  end)
end)

describe('sync client receive', function()
  it('keeps the connection OPEN when it times out, and a later message arrives', function()
    local client = connected_client(peers.rust('/later/400'), { timeout = 0.1 })
    local message, opcode, was_clean, code, reason = client:receive()
    assert.is_nil(message)
    assert.is_nil(opcode)
    assert.is_false(was_clean)
    assert.are.equal(1006, code)
    assert.are.equal('timeout', reason)
    assert.are.equal('OPEN', client.state)
    local timeouts = 1
    repeat
      local answer = { client:receive() }
      message, opcode, reason = answer[1], answer[2], answer[5]
      if reason == 'timeout' then
        timeouts = timeouts + 1
      end
    until message or reason ~= 'timeout' or timeouts > 100
    assert.are.equal('late', message)
    assert.are.equal(websocket.TEXT, opcode)
    assert.is_true(client:send('after the wait'))
    assert.are.equal('after the wait', (client:receive()))
    client:close()
  end)

  it('receives every message that arrived in one read, each without waiting for more', function()
    -- The peer writes 200 messages at once, right after its handshake response: they come
    -- in with the response head and in batches, and each receive must find the next one.
    clients.receive_burst(connected_client(peers.rust('/burst/200'), { timeout = 2 }), 200)
  end)

  it('reports a connection dropped without a close frame as unclean 1006', function()
    local client = connected_client(peers.rust('/drop'))
    local message, opcode, was_clean, code, reason = client:receive()
    assert.is_nil(message)
    assert.is_nil(opcode)
    assert.is_false(was_clean)
    assert.are.equal(1006, code)
    assert.are.equal('closed', reason)
    assert.are.equal('CLOSED', client.state)
  end)
end)

describe('sync client send', function()
  it('sends PING and PONG frames, which the peer does not echo', function()
    local client = connected_client(peers.rust('/echo'))
    assert.is_true(client:send('ping payload', websocket.PING))
    assert.is_true(client:send('unsolicited pong', websocket.PONG))
    assert.is_true(client:send('marker'))
    assert.are.same({ 'marker', websocket.TEXT }, { client:receive() })
    client:close()
  end)

  it('returns only true on success', function()
    local client = connected_client(peers.rust('/echo'))
    assert.are.equal(1, select('#', client:send('x')))
    client:close()
  end)

  it('raises for a TEXT message that is not valid UTF-8 and stays usable', function()
    local client = connected_client(peers.rust('/echo'))
    assert.has_error(function() client:send('bad \255 text') end,
      "bad argument #1 to 'send' (TEXT message is not valid UTF-8)")
    assert.is_true(client:send('bad \255 text', websocket.BINARY))
    assert.are.equal('bad \255 text', (client:receive()))
    -- Long text goes through the vectorised check: a bad byte deep inside one, a cut
    -- multi-byte sequence at its end, and long valid text with multi-byte characters.
    local long = ('x'):rep(700)
    assert.has_error(function() client:send(long .. '\255' .. long) end,
      "bad argument #1 to 'send' (TEXT message is not valid UTF-8)")
    assert.has_error(function() client:send(long .. '\226\130') end,
      "bad argument #1 to 'send' (TEXT message is not valid UTF-8)")
    local accented = ('caf\195\169 \226\130\172 '):rep(200)
    assert.is_true(client:send(accented))
    assert.are.equal(accented, (client:receive()))
    assert.are.equal('OPEN', client.state)
    client:close()
  end)

  it('raises for a message that is not a string', function()
    local client = connected_client(peers.rust('/echo'))
    assert.has_error(function() client:send(42) end,
      "bad argument #1 to 'send' (string expected, got number)")
    assert.has_error(function() client:send({}) end,
      "bad argument #1 to 'send' (string expected, got table)")
    client:close()
  end)

  it("words a bad argument at the program's line, like luaL_argerror", function()
    -- send is a C function that hands what it does not serve to Lua: the error must
    -- still name this file, not the library.
    local client = connected_client(peers.rust('/echo'))
    local ok, err = pcall(function() client:send(42) end)
    assert.is_false(ok)
    assert.matches("^[^:]*client_sync_spec%.lua:%d+: bad argument #1 to 'send'", err)
    ok, err = pcall(function() client:send('x', websocket.CLOSE) end)
    assert.is_false(ok)
    assert.matches("^[^:]*client_sync_spec%.lua:%d+: bad argument #2 to 'send'", err)
    client:close()
  end)

  it('serves receive and send as C functions kept on the client object', function()
    local client = connected_client(peers.rust('/echo'))
    assert.are.equal('function', type(rawget(client, 'receive')))
    assert.are.equal('function', type(rawget(client, 'send')))
    -- Called without the method syntax as well, as lua-websockets' methods may be.
    local send, receive = client.send, client.receive
    assert.is_true(send(client, 'plain call'))
    assert.are.same({ 'plain call', websocket.TEXT }, { receive(client) })
    client:close()
  end)

  it('raises for an opcode it cannot send', function()
    local client = connected_client(peers.rust('/echo'))
    assert.has_error(function() client:send('x', websocket.CLOSE) end,
      "bad argument #2 to 'send' (unknown opcode 8 (TEXT, BINARY, PING or PONG expected))")
    assert.has_error(function() client:send('x', 77) end)
    assert.has_error(function() client:send(('x'):rep(126), websocket.PING) end)
    client:close()
  end)
end)

describe('sync client against a peer that stops reading', function()
  it('times out a send that cannot be written and stays OPEN', function()
    local client = connected_client(peers.rust('/stall'), { timeout = 0.2 })
    local chunk = ('x'):rep(1024 * 1024)
    local ok, was_clean, code, reason
    for _ = 1, 512 do
      ok, was_clean, code, reason = client:send(chunk, websocket.BINARY)
      if not ok then
        break
      end
    end
    assert.is_nil(ok)
    assert.are.same({ false, 1006, 'timeout' }, { was_clean, code, reason })
    assert.are.equal('OPEN', client.state)
  end)

  it('times out small sends too once the socket is full, and stays OPEN', function()
    -- Small messages are framed by the library and written straight to the socket: the
    -- one that meets a nearly full socket is taken in part, and waiting for room for its
    -- rest is what times out.
    local client = connected_client(peers.rust('/stall'), { timeout = 0.2 })
    local chunk = ('y'):rep(16 * 1024)
    local ok, was_clean, code, reason
    local sent = 0
    for _ = 1, 100000 do
      ok, was_clean, code, reason = client:send(chunk, websocket.BINARY)
      if not ok then
        break
      end
      sent = sent + 1
    end
    assert.is_nil(ok)
    assert.is_true(sent > 0)
    assert.are.same({ false, 1006, 'timeout' }, { was_clean, code, reason })
    assert.are.equal('OPEN', client.state)
  end)

  it('bounds close by the timeout when the peer never answers', function()
    local client = connected_client(peers.rust('/stall'), { timeout = 0.2 })
    assert.are.same({ false, 1006, 'timeout' }, { client:close() })
    assert.are.equal('CLOSED', client.state)
  end)
end)

describe('sync client close', function()
  it('raises for an invalid close code', function()
    local client = connected_client(peers.rust('/echo'))
    for _, code in ipairs({ 999, 1005, 1006, 1015, 2000, 5000 }) do
      assert.has_error(function() client:close(code) end,
        "bad argument #1 to 'close' (invalid close code " .. code .. ')')
    end
    assert.are.equal('OPEN', client.state)
    assert.is_true((client:close(1000)))
  end)

  it('defaults to code 1000 and an empty reason', function()
    local client = connected_client(peers.rust('/echo'))
    assert.are.same({ true, 1000, '' }, { client:close() })
  end)
end)

describe('sync client state', function()
  local function assert_wrong_state(client)
    assert.are.same({ nil, nil, false, 1006, 'wrong state' }, { client:receive() })
    assert.are.same({ nil, false, 1006, 'wrong state' }, { client:send('x') })
    assert.are.same({ false, 1006, 'wrong state' }, { client:close() })
  end

  it('answers wrong state before connect', function()
    local client = websocket.client.sync()
    assert.are.equal('CLOSED', client.state)
    assert_wrong_state(client)
  end)

  it('answers wrong state after close', function()
    local client = connected_client(peers.rust('/echo'))
    client:close()
    assert.are.equal('CLOSED', client.state)
    assert_wrong_state(client)
  end)

  it('keeps fields that the program sets on the client', function()
    local client = websocket.client.sync()
    client.name = 'mine'
    assert.are.equal('mine', client.name)
  end)
end)

describe('sync client options', function()
  it('raises for a timeout that is not a number', function()
    assert.has_error(function() websocket.client.sync({ timeout = 'soon' }) end,
      "bad argument #1 to 'sync' (timeout: number expected, got string)")
  end)

  it('raises for options that are not a table', function()
    assert.has_error(function() websocket.client.sync(5) end,
      "bad argument #1 to 'sync' (table expected, got number)")
  end)
end)

describe('a garbage-collected OPEN client', function()
  it('closes its socket', function()
    local name = 'collected-' .. tostring(os.time()) .. '-' .. tostring(math.random(1e9))
    local client = connected_client(peers.rust('/track/' .. name))
    assert.is_true(client:send('still here'))
    assert.are.equal('still here', (client:receive()))
    assert.is_false(peers.rust_saw_close(name, 1), 'closed before it was collected')
    client = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.is_true(peers.rust_saw_close(name))
  end)
end)
