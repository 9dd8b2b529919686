--- The luv flavour (lua-websockets' callback API on libuv) against real peers: the luv
-- client with tokio-tungstenite, Python websockets and Node ws servers (wss:// too), the
-- luv server with Python, Node and this project's own clients, many connections at once,
-- callbacks that raise, server:close with and without keep_clients, and a luv timer that
-- keeps ticking while a large message goes both ways.

local uv = require'luv'
local websocket = require'websocket'
local luv_run = require'spec.support.luv_run'
local peers = require'spec.support.peers'
local assert_echoed = require'spec.support.conversation'.assert_echoed
local process = require'spec.support.process'

local echo_handler = function(ws)
  ws:on_message(function(self, message, opcode)
    self:send(message, opcode)
  end)
end

-- A luv server on a free port; `config` adds to or overrides the defaults.
local function luv_server(config)
  config = config or {}
  config.port = config.port or process.free_port()
  config.interface = config.interface or '127.0.0.1'
  if config.protocols == nil and config.default == nil then
    config.protocols = { echo = echo_handler }
    config.default = echo_handler
  end
  return websocket.server.luv.listen(config), 'ws://127.0.0.1:' .. config.port .. '/'
end

-- Connects a luv client to `url` and records what its callbacks hear, in order.
local function recorded_client(url, protocol, ssl_params, opts)
  local client = websocket.client.luv(opts or { timeout = 5 })
  local heard = { messages = {} }
  client:on_open(function(ws, selected, headers)
    heard.open = { ws = ws, protocol = selected, headers = headers }
  end)
  client:on_message(function(_, message, opcode)
    heard.messages[#heard.messages + 1] = { message, opcode }
  end)
  client:on_close(function(_, was_clean, code, reason)
    heard.close = { was_clean, code, reason }
  end)
  client:on_error(function(_, err)
    heard.error = err
  end)
  client:connect(url, protocol, ssl_params)
  return client, heard
end

-- Runs the loop until `client` has `count` messages.
local function until_messages(heard, count)
  luv_run.until_done(function()
    return #heard.messages >= count or heard.close ~= nil or heard.error ~= nil
  end)
  assert.are.equal(count, #heard.messages, 'messages: ' .. tostring(heard.error))
end

local function exchange_and_close(url, protocol, ssl_params)
  local client, heard = recorded_client(url, protocol, ssl_params)
  assert.are.equal('CONNECTING', client.state)
  luv_run.until_done(function() return heard.open or heard.error end)
  assert.is_nil(heard.error)
  assert.are.equal(client, heard.open.ws)
  assert.are.equal('OPEN', client.state)
  assert.is_true(client:send('hello luv'))
  assert.is_true(client:send('\0\1\255', websocket.BINARY))
  until_messages(heard, 2)
  assert.are.same({ 'hello luv', websocket.TEXT }, heard.messages[1])
  assert.are.same({ '\0\1\255', websocket.BINARY }, heard.messages[2])
  client:close(4000, 'bye')
  assert.are.equal('CLOSING', client.state)
  luv_run.until_done(function() return heard.close end)
  assert.are.same({ true, 4000, 'bye' }, heard.close)
  assert.are.equal('CLOSED', client.state)
  local ok, err = client:send('after')
  assert.is_nil(ok)
  assert.are.equal('wrong state', err)
  return heard
end

describe('the luv client', function()
  it('talks to tokio-tungstenite, Python websockets and Node ws', function()
    exchange_and_close(peers.rust('/echo'))
    exchange_and_close(peers.python('/echo'))
    exchange_and_close(peers.node('/echo'))
  end)

  it('talks over wss:// with a CA file', function()
    exchange_and_close(peers.rust_tls('/echo'), nil,
      { mode = 'client', protocol = 'any', verify = 'peer', cafile = peers.ca_file() })
  end)

  it('reports what a connect finds through on_error, without blocking the loop', function()
    local _, refused = recorded_client('ws://127.0.0.1:' .. process.free_port() .. '/')
    local _, unknown_scheme = recorded_client('http://127.0.0.1/')
    local slow, silent = recorded_client(peers.silent(), nil, nil, { timeout = 0.3 })
    local ticks = 0
    local ticker = uv.new_timer()
    ticker:start(20, 20, function() ticks = ticks + 1 end)
    luv_run.until_done(function() return refused.error and unknown_scheme.error and silent.error end)
    ticker:stop()
    ticker:close()
    assert.are.equal('connection refused', refused.error)
    assert.are.equal('bad protocol', unknown_scheme.error)
    assert.are.equal('timeout', silent.error)
    assert.are.equal('CLOSED', slow.state)
    assert.is_true(ticks >= 5, 'the loop ticked ' .. ticks .. ' times')
    assert.has_error(function()
      slow:connect(peers.rust('/echo'), nil, nil, { ['Sec-WebSocket-Key'] = 'x' })
    end)
  end)

  it('gives a server-closed connection to on_close, and may connect again', function()
    local server, url = luv_server({
      default = function(ws)
        ws:on_message(function(self) self:close(4002, 'server says bye') end)
      end,
    })
    local client, heard = recorded_client(url)
    luv_run.until_done(function() return heard.open end)
    client:send('close me')
    luv_run.until_done(function() return heard.close end)
    assert.are.same({ true, 4002, 'server says bye' }, heard.close)
    heard.open, heard.close = nil, nil
    client:connect(url)
    luv_run.until_done(function() return heard.open end)
    assert.are.equal('OPEN', client.state)
    client:close()
    luv_run.until_done(function() return heard.close end)
    server:close()
  end)
end)

describe('the luv server', function()
  it("serves Python websockets' and Node ws' clients", function()
    local errors = {}
    local server, url = luv_server({ on_error = function(m) errors[#errors + 1] = m end })
    local output, status = luv_run.process(peers.python_interpreter() .. ' spec/peers/python_client.py ' .. url)
    assert.are.equal(0, status, output)
    assert_echoed(output, '\nbinary 0001ff\n')
    output, status = luv_run.process('NODE_PATH=' .. peers.node_modules() .. ' node spec/peers/node_client.cjs ' .. url)
    assert.are.equal(0, status, output)
    assert_echoed(output, '\nbinary 0001ff true\n')
    server:close()
    assert.are.same({}, errors)
  end)

  it('serves the luv client example', function()
    local server, url = luv_server()
    local output, status = luv_run.process(peers.lua_interpreter() .. ' examples/echo-client-luv.lua ' .. url .. 'echo')
    assert.are.equal(0, status, output)
    assert.matches('connected, protocol echo\necho', output, 1, true)
    assert.matches('echoed "how are you?"\necho', output, 1, true)
    assert.matches('closed: clean=true code=1000', output, 1, true)
    server:close()
  end)

  it("serves this project's sync and copas clients from another process", function()
    local server, url = luv_server()
    local script = os.tmpname()
    local file = assert(io.open(script, 'w'))
    file:write([[
      local websocket = require'websocket'
      local flavour = ...
      local client = websocket.client[flavour]({ timeout = 5 })
      assert(client:connect(']] .. url .. [[', 'echo'))
      for i = 1, 100 do
        assert(client:send('message ' .. i))
        assert(client:receive() == 'message ' .. i)
      end
      print(flavour, 'closed', client:close())
    ]])
    file:close()
    for _, flavour in ipairs({ 'sync', 'copas' }) do
      local output, status = luv_run.process(peers.lua_interpreter() .. ' ' .. script .. ' ' .. flavour)
      assert.are.equal(0, status, output)
      assert.matches(flavour .. '\tclosed\ttrue\t1000', output, 1, true)
    end
    os.remove(script)
    server:close()
  end)

  it('serves 300 connections at once, broadcasts to them, and knows each request', function()
    local opened, paths = 0, {}
    local server, url = luv_server({
      default = function(ws)
        opened = opened + 1
        paths[#paths + 1] = ws.request.path
        ws:on_message(function(self, message)
          if message == 'everyone' then
            self:broadcast('to all')
          else
            self:send(message)
          end
        end)
      end,
    })
    local clients = {}
    for index = 1, 300 do
      clients[index] = { recorded_client(url .. 'n' .. index) }
    end
    luv_run.until_done(function() return opened == 300 end)
    for index = 1, 300 do
      clients[index][1]:send('echo ' .. index)
    end
    luv_run.until_done(function()
      for index = 1, 300 do
        if #clients[index][2].messages < 1 then return false end
      end
      return true
    end)
    clients[1][1]:send('everyone')
    luv_run.until_done(function()
      for index = 1, 300 do
        if #clients[index][2].messages < 2 then return false end
      end
      return true
    end)
    for index = 1, 300 do
      local heard = clients[index][2]
      assert.are.same({ 'echo ' .. index, websocket.TEXT }, heard.messages[1])
      assert.are.same({ 'to all', websocket.TEXT }, heard.messages[2])
    end
    table.sort(paths)
    assert.are.equal('/n1', paths[1])
    assert.are.equal(300, #paths)
    server:close()
    luv_run.until_done(function()
      for index = 1, 300 do
        if not clients[index][2].close then return false end
      end
      return true
    end)
    assert.are.same({ true, 1001, 'going away' }, clients[300][2].close)
  end)

  it('closes with 1011 a connection whose callback raised, and nothing else', function()
    local ws_errors, server_errors = {}, {}
    local server, url = luv_server({
      on_error = function(m) server_errors[#server_errors + 1] = m end,
      protocols = {
        -- Errors of a ws without on_error go to the server's.
        plain = function(ws)
          ws:on_message(function(_, message)
            if message == 'raise' then error('handler broke') end
          end)
        end,
        -- Errors of a ws with on_error go to it.
        own = function(ws)
          ws:on_error(function(_, err) ws_errors[#ws_errors + 1] = err end)
          ws:on_message(function() error({ code = 'a table' }) end)
        end,
        opening = function() error('handler raised at once') end,
      },
      default = echo_handler,
    })
    local plain, plain_heard = recorded_client(url, 'plain')
    local own, own_heard = recorded_client(url, 'own')
    local _, opening_heard = recorded_client(url, 'opening')
    local bystander, bystander_heard = recorded_client(url)
    luv_run.until_done(function() return plain_heard.open and own_heard.open and bystander_heard.open end)
    plain:send('raise')
    own:send('anything')
    luv_run.until_done(function() return plain_heard.close and own_heard.close and opening_heard.close end)
    assert.are.same({ true, 1011, 'internal error' }, plain_heard.close)
    assert.are.same({ true, 1011, 'internal error' }, own_heard.close)
    assert.are.same({ true, 1011, 'internal error' }, opening_heard.close)
    assert.are.equal(2, #server_errors)
    local reported = table.concat(server_errors, '\n')
    assert.matches('handler broke', reported, 1, true)
    assert.matches('handler raised at once', reported, 1, true)
    assert.are.same({ { code = 'a table' } }, ws_errors)
    bystander:send('still here')
    until_messages(bystander_heard, 1)
    -- A client's callback that raises: its on_error hears, and it closes with 1011.
    local client_errors = {}
    bystander:on_error(function(_, err) client_errors[#client_errors + 1] = err end)
    bystander:on_message(function() error('client callback broke') end)
    bystander:send('once more')
    luv_run.until_done(function() return bystander_heard.close end)
    assert.matches('client callback broke', client_errors[1])
    assert.are.same({ true, 1011, 'internal error' }, bystander_heard.close)
    server:close()
  end)

  it('server:close(true) keeps the connections; server:close() ends them', function()
    local server, url = luv_server()
    local client, heard = recorded_client(url)
    luv_run.until_done(function() return heard.open end)
    server:close(true)
    local refused = select(2, recorded_client(url))
    luv_run.until_done(function() return refused.error end)
    assert.are.equal('connection refused', refused.error)
    client:send('still served')
    until_messages(heard, 1)
    client:close()
    luv_run.until_done(function() return heard.close end)
    assert.are.same({ true, 1000, '' }, heard.close)
  end)

  it('keeps a luv timer ticking while a 5 MB message goes both ways', function()
    local server, url = luv_server()
    local client, heard = recorded_client(url)
    luv_run.until_done(function() return heard.open end)
    local big = string.rep('0123456789abcdef', 5 * 65536)
    local ticks = 0
    local ticker = uv.new_timer()
    ticker:start(1, 1, function() ticks = ticks + 1 end)
    client:send(big)
    client:send('after the big one')
    until_messages(heard, 2)
    ticker:stop()
    ticker:close()
    assert.is_true(heard.messages[1][1] == big)
    assert.are.equal('after the big one', heard.messages[2][1])
    assert.is_true(ticks > 0)
    client:close()
    luv_run.until_done(function() return heard.close end)
    server:close()
  end)

  it('raises for a bad config, a port in use and bad sends, and loads no copas', function()
    assert.has_error(function() websocket.server.luv.listen({ port = 1 }) end,
      "bad argument #1 to 'listen' (config needs protocols or a default handler)")
    local server, url = luv_server()
    local port = tonumber(url:match(':(%d+)/'))
    assert.has_error(function() luv_server({ port = port }) end)
    local client, heard = recorded_client(url)
    luv_run.until_done(function() return heard.open end)
    assert.has_error(function() client:send('\255', websocket.TEXT) end)
    assert.has_error(function() client:send({}) end)
    assert.has_error(function() client:close(999) end)
    client:close()
    luv_run.until_done(function() return heard.close end)
    server:close()
    local output, status = luv_run.process(peers.lua_interpreter() .. [[ -e "local w = require'websocket';]]
      .. [[ local _ = w.client.luv; local _ = w.server.luv; print('copas', package.loaded.copas)"]])
    assert.are.equal(0, status, output)
    assert.are.equal('copas\tnil\n', output)
    output, status = luv_run.process(peers.lua_interpreter() .. [[ -e "local w = require'websocket';]]
      .. [[ local _ = w.client.copas; local _ = w.server.copas; print('luv', package.loaded.luv)"]])
    assert.are.equal(0, status, output)
    assert.are.equal('luv\tnil\n', output)
  end)
end)
