--- The scale-out benchmark's server: an echo server that shares its port (reuse_port), so
-- that bench/scale-out.sh can start one or two of them on one port.
--   lua bench/reuse-port-echo.lua PORT

local copas = require'copas'
local websocket = require'websocket'

local function echo(ws)
  while true do
    local message, opcode = ws:receive()
    if not message then
      return
    end
    ws:send(message, opcode)
  end
end

websocket.server.copas.listen({
  port = tonumber(arg[1]),
  interface = '127.0.0.1',
  reuse_port = true,
  default = echo,
})
copas.loop()
