--- An echo server on copas: every message comes back as it was sent.
-- usage: lua examples/echo-server-copas.lua [port] [ping_interval] [deflate]
-- With a ping interval (seconds), peers that stop answering pings are dropped; with
-- `deflate`, peers that offer permessage-deflate get their messages compressed.

local copas = require'copas'
local websocket = require'websocket'

local port = tonumber(arg[1]) or 8080
local ping_interval = tonumber(arg[2])
local compression = arg[3] == 'deflate' and 'deflate' or nil

local function echo(ws)
  while true do
    local message, opcode = ws:receive()
    if not message then
      ws:close()
      return
    end
    ws:send(message, opcode)
  end
end

websocket.server.copas.listen({
  port = port,
  protocols = { echo = echo },
  default = echo,
  ping_interval = ping_interval,
  compression = compression,
})
print(('echo server listening on port %d%s'):format(port,
  ping_interval and (', keepalive every %g s'):format(ping_interval) or ''))

-- copas 1.x's loop never returns; copas 4's returns when nothing is left to serve.
copas.loop()
