--- Benchmark client (not a test): the sync client echoes COUNT messages of SIZE bytes one at
-- a time and prints `messages/s N MB/s N`. The same file measures lua-websockets, whose API
-- is the same, when LUA_PATH finds it first.
-- usage: lua bench/sync-client.lua URL COUNT SIZE [binary]

local socket = require'socket'
local websocket = require'websocket'

local url, count, size = arg[1], tonumber(arg[2]), tonumber(arg[3])
local opcode = arg[4] == 'binary' and websocket.BINARY or websocket.TEXT
local payload = ('x'):rep(size)

local client = websocket.client.sync({ timeout = 30 })
assert(client:connect(url))
local started = socket.gettime()
for _ = 1, count do
  assert(client:send(payload, opcode))
  local echoed = assert(client:receive())
  assert(#echoed == size)
end
local elapsed = socket.gettime() - started
client:close()
print(('messages/s %.0f MB/s %.1f'):format(count / elapsed, 2 * count * size / elapsed / 1e6))
