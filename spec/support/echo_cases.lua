--- Cases every echo peer must pass, whatever implements it (tokio-tungstenite, Python
-- `websockets`). `echo_cases(url_of)` returns a list of `{name = ..., run = function}`;
-- `url_of(path)` gives the peer's URL for a path (see spec/peers and tools/testpeer).

local assert = require'luassert'
local websocket = require'websocket'
local clients = require'spec.support.clients'

local ipairs = ipairs
local string = string
local table = table

local SIZES = { 0, 1, 125, 126, 127, 65535, 65536, 1024 * 1024, 16 * 1024 * 1024 }

--- `size` bytes of printable ASCII that differ along the message (so an offset error shows).
local function text_of_size(size)
  local pattern = 'abcdefghijklmnopqrstuvwxyz0123456789'
  local repeated = pattern:rep(math.floor(size / #pattern) + 1)
  return repeated:sub(1, size)
end

local function connected_client(url, protocol)
  return clients.connected('sync', url, protocol)
end

local function assert_echoes(client, message, opcode)
  assert.is_true(client:send(message, opcode))
  local echoed, echoed_opcode = client:receive()
  assert.are.equal(opcode, echoed_opcode)
  assert.are.equal(#message, #echoed)
  assert.is_true(echoed == message, 'echoed payload differs')
end

return function(url_of)
  local cases = {}
  local function case(name, run)
    cases[#cases + 1] = { name = name, run = run }
  end

  for _, size in ipairs(SIZES) do
    case('echoes a TEXT and a BINARY message of ' .. size .. ' bytes', function()
      local client = connected_client(url_of('/echo'))
      local message = text_of_size(size)
      assert_echoes(client, message, websocket.TEXT)
      assert_echoes(client, message, websocket.BINARY)
      client:close()
    end)
  end

  case('echoes BINARY with all 256 byte values', function()
    local bytes = {}
    for value = 0, 255 do
      bytes[#bytes + 1] = string.char(value)
    end
    local client = connected_client(url_of('/echo'))
    assert_echoes(client, table.concat(bytes):rep(3), websocket.BINARY)
    client:close()
  end)

  case('returns the protocol the server chose from a single offer', function()
    local client = websocket.client.sync({ timeout = 10 })
    local ok, protocol, headers = client:connect(url_of('/report'), 'chat')
    assert.is_true(ok)
    assert.are.equal('chat', protocol)
    assert.are.equal('chat', headers['sec-websocket-protocol'])
    assert.are.equal('sec-websocket-protocol: chat', (client:receive()))
    client:close()
  end)

  case('offers a list of protocols in order and returns the chosen one', function()
    local client = websocket.client.sync({ timeout = 10 })
    local ok, protocol = client:connect(url_of('/report'), { 'unknown-one', 'superchat', 'chat' })
    assert.is_true(ok)
    assert.are.equal('superchat', protocol)
    assert.are.equal('sec-websocket-protocol: unknown-one, superchat, chat', (client:receive()))
    client:close()
  end)

  case('sends no Sec-WebSocket-Protocol header when no protocol is given', function()
    local client = websocket.client.sync({ timeout = 10 })
    local ok, protocol = client:connect(url_of('/report'))
    assert.is_true(ok)
    assert.is_nil(protocol)
    assert.are.equal('sec-websocket-protocol: <none>', (client:receive()))
    client:close()
  end)

  case('reports a close started by the server with its code and reason', function()
    local client = connected_client(url_of('/close/4002/server-says-bye'))
    local message, opcode, was_clean, code, reason = client:receive()
    assert.is_nil(message)
    assert.is_nil(opcode)
    assert.is_true(was_clean)
    assert.are.equal(4002, code)
    assert.are.equal('server-says-bye', reason)
    assert.are.equal('CLOSED', client.state)
  end)

  case('answers a server ping without returning it', function()
    local client = connected_client(url_of('/ping/are-you-there'))
    -- The peer sends this only after it got our pong with the same payload.
    local message, opcode = client:receive()
    assert.are.equal('pong:are-you-there', message)
    assert.are.equal(websocket.TEXT, opcode)
    client:close()
  end)

  case('delivers a fragmented message whole', function()
    local client = connected_client(url_of('/fragments/5'))
    local message, opcode = client:receive()
    assert.are.equal('fragment-0;fragment-1;fragment-2;fragment-3;fragment-4;', message)
    assert.are.equal(websocket.TEXT, opcode)
    assert_echoes(client, 'still in sync', websocket.TEXT)
    client:close()
  end)

  case('closes with a code and reason that the peer echoes back', function()
    local client = connected_client(url_of('/echo'))
    local was_clean, code, reason = client:close(4001, 'lost interest')
    assert.is_true(was_clean)
    assert.are.equal(4001, code)
    assert.are.equal('lost interest', reason)
    assert.are.equal('CLOSED', client.state)
  end)

  return cases
end
