--- An echo server on luv's loop (lua-websockets' callback API): every message comes back
-- as it was sent.
-- usage: lua examples/echo-server-luv.lua [port]

local uv = require'luv'
local websocket = require'websocket'

local port = tonumber(arg[1]) or 8080

local function echo(ws)
  ws:on_message(function(self, message, opcode)
    self:send(message, opcode)
  end)
  ws:on_close(function(_, was_clean, code)
    print(('a client left: clean=%s code=%d'):format(tostring(was_clean), code))
  end)
end

websocket.server.luv.listen({
  port = port,
  protocols = { echo = echo },
  default = echo,
})
print(('echo server listening on port %d'):format(port))
io.stdout:flush()

uv.run()
