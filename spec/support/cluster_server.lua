--- A server process for the cluster specs: a `chat` protocol whose messages are broadcast,
-- except `whoami` (answers this process's id), `xff` (answers the X-Forwarded-For header
-- the handler saw) and the topic commands `sub TOPIC` (answers `subscribed TOPIC`),
-- `unsub TOPIC` (answers `unsubscribed TOPIC`), `pub TOPIC TEXT` (ws:publish: every
-- subscriber but the sender) and `spub TOPIC TEXT` (server:publish: every subscriber).
-- Prints `listening <pid>` once it listens and `error <message>` for each on_error. It
-- agrees to permessage-deflate when a client offers it (Python's `websockets` does):
-- broadcasts from other processes reach such members compressed.
--   lua spec/support/cluster_server.lua PORT REDIS_URL|none CHANNEL REUSE_PORT(0|1) PING_INTERVAL(0: off)

local copas = require'copas'
local websocket = require'websocket'
local topic_command = require'spec.support.topic_commands'

local port, redis, channel, reuse_port, ping_interval = arg[1], arg[2], arg[3], arg[4], arg[5]

local process = require'spec.support.process'

local pid = process.pid()
local say = process.say

local server

local config = {
  port = tonumber(port),
  interface = '127.0.0.1',
  reuse_port = reuse_port == '1',
  compression = 'deflate',
  ping_interval = tonumber(ping_interval) > 0 and tonumber(ping_interval) or nil,
  on_error = function(message)
    say('error ', tostring(message))
  end,
  protocols = {
    chat = function(ws)
      while true do
        local message, opcode = ws:receive()
        if not message then
          return
        end
        if message == 'whoami' then
          ws:send(tostring(pid))
        elseif message == 'xff' then
          ws:send(ws.request.headers['x-forwarded-for'] or 'none')
        elseif not topic_command(server, ws, message) then
          ws:broadcast(message, opcode)
        end
      end
    end,
  },
}
if redis ~= 'none' then
  config.cluster = { redis = redis, channel = channel }
end
server = websocket.server.copas.listen(config)
say('listening ', tostring(pid))
copas.loop()
