--- An echo server on copas: every message comes back as it was sent.
-- usage: lua examples/echo-server-copas.lua [port]

local copas = require'copas'
local websocket = require'websocket'

local port = tonumber(arg[1]) or 8080

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
})
print(('echo server listening on port %d'):format(port))

-- copas 1.x's loop never returns; copas 4's returns when nothing is left to serve.
copas.loop()
