--- ws:ping() and client:ping(): the round trip to real peers (tokio-tungstenite, Python
-- websockets, Node ws), from the sync, copas and luv clients and from the copas and luv
-- servers' connections, and what a ping returns when the connection is gone.

local uv = require'luv'
local websocket = require'websocket'
local copas_loop = require'spec.support.copas_loop'
local luv_run = require'spec.support.luv_run'
local peers = require'spec.support.peers'
local servers = require'spec.support.servers'

local PEERS = { rust = peers.rust('/echo'), python = peers.python('/echo'), node = peers.node('/echo') }

local function assert_round_trip(seconds, err, what)
  assert.is_nil(err, what)
  assert.are.equal('number', type(seconds), what)
  assert.is_true(seconds > 0 and seconds < 5, what .. ': ' .. tostring(seconds))
end

describe('a client ping', function()
  it('measures the round trip to each peer in the sync client, and keeps the messages before the pong', function()
    for name, url in pairs(PEERS) do
      local client = websocket.client.sync({ timeout = 5 })
      assert(client:connect(url))
      assert_round_trip(client:ping(), nil, name)
      -- An echo on its way when the ping goes: the ping keeps it for receive.
      assert(client:send('before the ping'))
      assert_round_trip(client:ping('with a payload'), nil, name)
      assert.are.equal('before the ping', (client:receive()))
      assert.has_error(function() client:ping(('x'):rep(126)) end,
        "bad argument #1 to 'ping' (PING payload is 126 bytes, at most 125 allowed)")
      client:close()
      local seconds, err = client:ping()
      assert.is_nil(seconds)
      assert.are.equal('wrong state', err)
    end
  end)

  it('yields to copas while it waits in the copas client', function()
    local results = {}
    copas_loop.run(function()
      for name, url in pairs(PEERS) do
        local client = websocket.client.copas({ timeout = 5 })
        assert(client:connect(url))
        assert(client:send('before the ping'))
        results[name] = { client:ping() }
        results[name].echo = client:receive()
        client:close()
      end
    end)
    for name in pairs(PEERS) do
      assert_round_trip(results[name][1], results[name][2], name)
      assert.are.equal('before the ping', results[name].echo, name)
    end
  end)

  it('calls back with the round trip in the luv client', function()
    for name, url in pairs(PEERS) do
      local client = websocket.client.luv({ timeout = 5 })
      local got, echoed, closed
      client:on_open(function(ws)
        ws:send('before the ping')
        ws:ping(function(_, seconds, err) got = { seconds, err } end)
      end)
      client:on_message(function(_, message) echoed = message end)
      client:on_close(function() closed = true end)
      client:connect(url)
      luv_run.until_done(function() return got and echoed end)
      assert_round_trip(got[1], got[2], name)
      assert.are.equal('before the ping', echoed)
      client:close()
      luv_run.until_done(function() return closed end)
    end
  end)
end)

describe('a server connection ping', function()
  local PROBE = [[
import asyncio, sys
from websockets.asyncio.client import connect
async def main():
    async with connect(sys.argv[1]) as ws:
        await ws.send("ping me")
        print(await ws.recv(), flush=True)
asyncio.run(main())
]]

  local function python_asks(url)
    local script = os.tmpname()
    local file = assert(io.open(script, 'w'))
    file:write(PROBE)
    file:close()
    return peers.python_interpreter() .. ' ' .. script .. ' ' .. url, script
  end

  it("measures the round trip to Python's client from a copas handler", function()
    local server, url = servers.start({
      default = function(ws)
        if ws:receive() == 'ping me' then
          local seconds, err = ws:ping()
          ws:send(seconds and ('round trip ' .. seconds) or ('failed ' .. tostring(err)))
        end
      end,
    })
    local command, script = python_asks(url)
    local output, status = copas_loop.run_process(command, 20)
    os.remove(script)
    server:close()
    assert.are.equal(0, status, output)
    local seconds = tonumber(output:match('^round trip (%S+)'))
    assert_round_trip(seconds, nil, output)
  end)

  it("measures the round trip to Node's client from a luv handler", function()
    local port = require'spec.support.process'.free_port()
    local server = websocket.server.luv.listen({
      port = port,
      interface = '127.0.0.1',
      default = function(ws)
        ws:on_message(function(self)
          self:ping('from luv', function(_, seconds, err)
            self:send(seconds and ('round trip ' .. seconds) or ('failed ' .. tostring(err)))
          end)
        end)
      end,
    })
    local output, status = luv_run.process('NODE_PATH=' .. peers.node_modules() .. [[ node -e "
      const ws = new (require('ws'))(process.argv[1]);
      ws.on('open', () => ws.send('ping me'));
      ws.on('message', (m) => { console.log(m.toString()); ws.close(); });
    " ws://127.0.0.1:]] .. port .. '/')
    server:close()
    uv.run('nowait')
    assert.are.equal(0, status, output)
    assert_round_trip(tonumber(output:match('^round trip (%S+)')), nil, output)
  end)
end)
