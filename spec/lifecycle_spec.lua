--- The process around the core: a Lua process that ends (normally, by os.exit, by an error)
-- with an OPEN client, or with a running copas server and open connections, must exit at
-- once with its own status, never a crash.

local peers = require'spec.support.peers'
local process = require'spec.support.process'

-- What the script has set up before its ending.
local PRELUDES = {
  ['an OPEN sync client'] = function()
    return ([[
local client = require'websocket'.client.sync({ timeout = 5 })
assert(client:connect(%q))
assert(client:send('hi'))
assert(client:receive() == 'hi')
]]):format(peers.rust('/echo'))
  end,
  ['a running copas server with open connections'] = function()
    local port = process.free_port()
    return ([[
local copas = require'copas'
local websocket = require'websocket'
local server = websocket.server.copas.listen({ port = %d, interface = '127.0.0.1',
  default = function(ws) while ws:receive() do end end })
local clients, connected = {}, 0
for index = 1, 3 do
  copas.addthread(function()
    clients[index] = websocket.client.copas({ timeout = 5 })
    assert(clients[index]:connect('ws://127.0.0.1:%d/'))
    connected = connected + 1
  end)
end
while connected < 3 do copas.step(0.05) end
]]):format(port, port)
  end,
}

--- Runs the prelude then `ending` as a Lua script; returns its output and exit status
-- (128 + signal for a crash).
local function run_script(prelude, ending)
  local script = os.tmpname()
  local file = assert(io.open(script, 'w'))
  file:write(prelude, ending, '\n')
  file:close()
  local run = assert(io.popen(peers.lua_interpreter() .. ' ' .. script .. ' 2>&1; echo "status=$?"'))
  local output = run:read('*a')
  run:close()
  os.remove(script)
  return output, tonumber(output:match('status=(%d+)%s*$'))
end

for situation, prelude_of in pairs(PRELUDES) do
  describe('a process with ' .. situation, function()
    it('ends normally with status 0', function()
      local output, status = run_script(prelude_of(), "print('end of script')")
      assert.are.equal(0, status, output)
      assert.matches('end of script', output)
    end)

    it('ends with os.exit and its status', function()
      local output, status = run_script(prelude_of(), 'os.exit(3)')
      assert.are.equal(3, status, output)
    end)

    it('ends with os.exit(0, true), which closes the Lua state first on 5.2+', function()
      local output, status = run_script(prelude_of(), 'os.exit(0, true)')
      assert.are.equal(0, status, output)
    end)

    it('ends with an uncaught error and status 1', function()
      local output, status = run_script(prelude_of(), "error('deliberate failure')")
      assert.are.equal(1, status, output)
      assert.matches('deliberate failure', output)
      assert.is_nil(output:find('panicked', 1, true))
    end)
  end)
end

describe('a process with an OPEN sync client', function()
  it('ends normally after collecting the client', function()
    local output, status = run_script(PRELUDES['an OPEN sync client'](), [[
client = nil
collectgarbage()
collectgarbage()
print('collected')]])
    assert.are.equal(0, status, output)
    assert.matches('collected', output)
  end)
end)

describe('loading the library', function()
  it('starts no core until a client or server is made, so a program may fork after it', function()
    -- The epoll instances of the process (a core has four) after loading, then after a
    -- copas server started.
    local output, status = run_script([[
local function epolls()
  local listing = io.popen('ls -l /proc/' .. io.open('/proc/self/stat'):read('*l'):match('^%d+') .. '/fd')
  local count = select(2, listing:read('*a'):gsub('eventpoll', ''))
  listing:close()
  return count
end
local websocket = require'websocket'
require'websocket_native'
print('loaded', epolls())
websocket.server.copas.listen({ port = 0, interface = '127.0.0.1', default = function() end })
print('listening', epolls())
]], '')
    assert.are.equal(0, status, output)
    assert.matches('loaded\t0\n', output)
    assert.is_nil(output:match('listening\t0\n'), output)
    assert.matches('listening\t%d+\n', output)
  end)
end)
