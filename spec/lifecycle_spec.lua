--- The process around the client: a Lua process that ends (normally, by os.exit, by an
-- error) while a client is OPEN must exit at once with its own status, never a crash.

local peers = require'spec.support.peers'

--- Runs `body` as a Lua script with an OPEN client in `client`; returns its output and
-- exit status (128 + signal for a crash).
local function run_with_open_client(body)
  local script = os.tmpname()
  local file = assert(io.open(script, 'w'))
  file:write(([[
local client = require'websocket'.client.sync({ timeout = 5 })
assert(client:connect(%q))
assert(client:send('hi'))
assert(client:receive() == 'hi')
]]):format(peers.rust('/echo')), body, '\n')
  file:close()
  local run = assert(io.popen(peers.lua_interpreter() .. ' ' .. script .. ' 2>&1; echo "status=$?"'))
  local output = run:read('*a')
  run:close()
  os.remove(script)
  return output, tonumber(output:match('status=(%d+)%s*$'))
end

describe('a process with an OPEN client', function()
  it('ends normally with status 0', function()
    local output, status = run_with_open_client("print('end of script')")
    assert.are.equal(0, status, output)
    assert.matches('end of script', output)
  end)

  it('ends with os.exit and its status', function()
    local output, status = run_with_open_client('os.exit(3)')
    assert.are.equal(3, status, output)
  end)

  it('ends with os.exit(0, true), which closes the Lua state first on 5.2+', function()
    local output, status = run_with_open_client('os.exit(0, true)')
    assert.are.equal(0, status, output)
  end)

  it('ends with an uncaught error and status 1', function()
    local output, status = run_with_open_client("error('deliberate failure')")
    assert.are.equal(1, status, output)
    assert.matches('deliberate failure', output)
    assert.is_nil(output:find('panicked', 1, true))
  end)

  it('ends normally after collecting an OPEN client', function()
    local output, status = run_with_open_client([[
client = nil
collectgarbage()
collectgarbage()
print('collected')]])
    assert.are.equal(0, status, output)
    assert.matches('collected', output)
  end)
end)
