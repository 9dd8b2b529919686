--- Benchmark client (not a test): the copas client echoes COUNT messages of SIZE bytes one
-- at a time from a copas coroutine and prints `messages/s N MB/s N`. The same file measures
-- lua-websockets, whose API is the same, when LUA_PATH finds it first.
-- usage: lua bench/copas-client.lua URL COUNT SIZE [binary]

local copas = require'copas'
local socket = require'socket'
local websocket = require'websocket'

local url, count, size = arg[1], tonumber(arg[2]), tonumber(arg[3])
local opcode = arg[4] == 'binary' and websocket.BINARY or websocket.TEXT
local payload = ('x'):rep(size)
-- PUC Lua 5.1 cannot yield across pcall; coxpcall (a dependency of copas) can.
local pcall = (_VERSION == 'Lua 5.1' and not rawget(_G, 'jit')) and require'coxpcall'.pcall or pcall

local elapsed, failure
copas.addthread(function()
  local ok, err = pcall(function()
    local client = websocket.client.copas({ timeout = 30 })
    assert(client:connect(url))
    local started = socket.gettime()
    for _ = 1, count do
      assert(client:send(payload, opcode))
      local echoed = assert(client:receive())
      assert(#echoed == size)
    end
    elapsed = socket.gettime() - started
    client:close()
  end)
  if not ok then
    failure = err
  end
end)
-- copas 1.x's loop never returns: step until the coroutine is done.
while not (elapsed or failure) do
  copas.step(1)
end
assert(not failure, failure)
print(('messages/s %.0f MB/s %.1f'):format(count / elapsed, 2 * count * size / elapsed / 1e6))
