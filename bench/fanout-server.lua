--- The fan-out benchmark's server: every message any connection sends is broadcast to all
-- connections (the default handler's group). bench/fanout.sh runs it.
--   lua bench/fanout-server.lua PORT [REDIS_URL]   (with a Redis URL: as a cluster, reuse_port)
-- With FANOUT_DEFLATE set in the environment, it agrees to permessage-deflate.

local copas = require'copas'
local websocket = require'websocket'

local redis = arg[2]
websocket.server.copas.listen({
  port = tonumber(arg[1]),
  interface = '127.0.0.1',
  reuse_port = redis ~= nil,
  compression = os.getenv('FANOUT_DEFLATE') and 'deflate' or nil,
  cluster = redis and { redis = redis, channel = 'fanout-bench' } or nil,
  default = function(ws)
    while true do
      local message = ws:receive()
      if not message then
        return
      end
      ws:broadcast(message)
    end
  end,
})
print('listening')
io.stdout:flush()
copas.loop()
