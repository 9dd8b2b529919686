--- The copas echo server with permessage-deflate, for bench/compression.sh.
--   lua bench/deflate-echo-server.lua PORT
local copas = require'copas'
local websocket = require'websocket'

websocket.server.copas.listen({
  port = tonumber(arg[1]),
  interface = '127.0.0.1',
  compression = 'deflate',
  default = function(ws)
    while true do
      local message, opcode = ws:receive()
      if not message then
        return
      end
      ws:send(message, opcode)
    end
  end,
})
print('listening')
io.stdout:flush()
copas.loop()
