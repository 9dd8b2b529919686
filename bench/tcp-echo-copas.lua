--- A copas server that echoes lines over plain TCP (luasocket, no WebSocket): what copas'
-- own loop costs per message, the floor under any copas server's. bench/instructions.sh
-- counts it beside the WebSocket servers.
-- usage: lua bench/tcp-echo-copas.lua PORT

local copas = require'copas'
local socket = require'socket'

local port = assert(tonumber(arg[1]), 'usage: lua bench/tcp-echo-copas.lua PORT')
local server = assert(socket.bind('127.0.0.1', port))

local function echo_lines(client)
  -- copas 1.x hands the handler a raw socket, copas 4 a wrapped one already.
  if copas.wrap and not client.socket then
    client = copas.wrap(client)
  end
  while true do
    local line = client:receive('*l')
    if not line then
      return
    end
    client:send(line .. '\n')
  end
end

copas.addserver(server, echo_lines)
copas.loop()
