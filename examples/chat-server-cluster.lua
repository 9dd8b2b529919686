--- A chat room served by several processes: each shares the port with the others
-- (reuse_port), and every broadcast reaches the clients of every process through Redis
-- (cluster). Start as many as you have cores, on one port:
--
--   redis-server --port 6379 &
--   lua examples/chat-server-cluster.lua 8080 redis://127.0.0.1:6379 &
--   lua examples/chat-server-cluster.lua 8080 redis://127.0.0.1:6379 &
--   lua examples/chat-client-sync.lua alice ws://127.0.0.1:8080/
--
-- The kernel spreads the connections over the processes; a message sent to one reaches the
-- room in all of them. docs/scaling.md has nginx in front and several machines.

local copas = require'copas'
local websocket = require'websocket'

local port = tonumber(arg[1]) or 8080
local redis = arg[2] or 'redis://127.0.0.1:6379'

local stat = assert(io.open('/proc/self/stat'))
local pid = stat:read('*n')
stat:close()

websocket.server.copas.listen({
  port = port,
  reuse_port = true,
  cluster = { redis = redis, channel = 'chat-example' },
  ping_interval = 20,
  protocols = {
    chat = function(ws)
      ws:broadcast('someone joined (served by process ' .. pid .. ')')
      while true do
        local message = ws:receive()
        if not message then
          ws:broadcast('someone left')
          return
        end
        ws:broadcast(message)
      end
    end,
  },
  on_error = function(message)
    io.stderr:write('chat ', pid, ': ', tostring(message), '\n')
  end,
})
print(('chat process %d listening on port %d, cluster on %s'):format(pid, port, redis))
copas.loop()
