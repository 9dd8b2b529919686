--- The fan-out benchmark's server: every message any connection sends is broadcast to all
-- connections (the default handler's group), except the topic commands `sub TOPIC`
-- (subscribes the sender), `pub TOPIC BODY` (publishes BODY to TOPIC's subscribers) and
-- `wpub TOPIC BODY` (to TOPIC's subscribers but the sender: a chat room).
-- bench/fanout.sh and bench/scale-out.sh run it.
--   lua bench/fanout-server.lua PORT [REDIS_URL [CHANNEL]]
-- (with a Redis URL: as a cluster on CHANNEL, default 'fanout-bench', with reuse_port)
-- With FANOUT_DEFLATE set in the environment, it agrees to permessage-deflate; with
-- FANOUT_MAX_BUFFERED (bytes), members over it miss messages (on_backpressure = 'drop').

local copas = require'copas'
local websocket = require'websocket'

local redis = arg[2]
local server
server = websocket.server.copas.listen({
  port = tonumber(arg[1]),
  interface = '127.0.0.1',
  reuse_port = redis ~= nil,
  cluster = redis and { redis = redis, channel = arg[3] or 'fanout-bench' } or nil,
  compression = os.getenv('FANOUT_DEFLATE') and 'deflate' or nil,
  max_buffered = tonumber(os.getenv('FANOUT_MAX_BUFFERED') or ''),
  default = function(ws)
    while true do
      local message = ws:receive()
      if not message then
        return
      end
      local command, topic, body = message:sub(1, 4), message:match('^%a+ (%S+) ?(.*)$')
      if command == 'sub ' then
        ws:subscribe(topic)
      elseif command == 'pub ' then
        server:publish(topic, body)
      elseif command == 'wpub' then
        ws:publish(topic, body)
      else
        ws:broadcast(message)
      end
    end
  end,
})
print('listening')
io.stdout:flush()
copas.loop()
